"""Writing a model folder so that readers never see half of it, and reading its JSON files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any]:
    """A model folder's JSON object file, or {} when the file is missing or holds no object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return value if isinstance(value, dict) else {}


def copy_model_files(source: Path, scratch: Path, skip: Iterable[str]) -> None:
    """Copy ``source``'s files and folders into ``scratch``, except ``skip`` and hidden ones (locks,
    scratch folders): what a model folder assembled from another keeps unchanged."""
    skipped = set(skip)
    for item in source.iterdir():
        if item.name in skipped or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, scratch / item.name)
        else:
            shutil.copy2(item, scratch / item.name)


def publish_folder(scratch: Path, out_dir: Path) -> None:
    """Make the finished ``scratch`` folder ``out_dir``: world-readable files, then a rename, the old
    folder kept aside until the new one is in place (a reader sees the old or the new, never a mix)."""
    for path in scratch.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    scratch.chmod(0o755)
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    scratch.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
