"""The two processes' code stays apart: what Rasa loads (channels, tracker store) never imports the
action side (retrieval, knowledge, embedding, tickets, actions), which lives in another virtual
environment with other pins. Read from the source (every import, also inside functions), so a
lazy import cannot hide a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: The action side, by layer: the knowledge (schema, importers, index, embedding), answering (retrieval,
#: decisions, wording), tickets and the servers that run them.
ACTION_SIDE = ("actions", "bot.knowledge", "bot.answering", "bot.tickets", "bot.servers", "ops")


def _module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path, package: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*parts, module] if module else parts)
            out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names if _module_path(f"{module}.{a.name}")}
    return {name for name in out if name.split(".")[0] in ("bot", "actions")}


def rasa_side() -> dict[str, set[str]]:
    """Every project module Rasa loads, with what it imports."""
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    roots = [name.rsplit(".", 1)[0] for name in credentials if name.startswith("bot.")]
    roots.append(endpoints["tracker_store"]["type"].rsplit(".", 1)[0])
    seen: dict[str, set[str]] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        seen[name] = _imports(path, package)
        todo += [n for n in seen[name] if n not in seen]
        parent = name.rsplit(".", 1)[0]
        if "." in name and parent not in seen:
            todo.append(parent)  # importing a.b runs a/__init__.py
    return seen


def test_rasa_side_never_imports_the_action_side():
    graph = rasa_side()
    assert "bot.channels.rest" in graph and "bot.channels.tracker_store" in graph
    for module, imported in graph.items():
        bad = sorted(n for n in imported if n.startswith(ACTION_SIDE))
        assert not bad, f"{module} imports {bad}: the Rasa server does not have the action side's packages"


def test_the_graph_sees_lazy_imports(tmp_path):
    """The check itself: an import inside a function counts."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from bot.answering.service import get_service\n", encoding="utf-8")
    assert "bot.answering.service" in _imports(module, "bot")


def test_the_reply_contract_and_the_errors_are_standard_library_only():
    """Both processes import them, from two virtual environments with different pins."""
    import sys

    for name in ("bot.contract", "bot.errors", "bot.sqlite"):
        path = _module_path(name)
        assert path is not None
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert all(n.split(".")[0] in sys.stdlib_module_names for n in names), (name, names)


def _package_imports(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` (a folder of bot/) with the project modules it imports."""
    folder = ROOT.joinpath(*package.split("."))
    out = {}
    for path in folder.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[module] = _imports(path, module if path.name == "__init__.py" else module.rsplit(".", 1)[0])
    return out


def test_layers_only_import_downwards():
    """knowledge < answering < servers; tickets beside answering; nothing in bot/ imports ops/ or actions/."""
    above = {
        "bot.knowledge": ("bot.answering", "bot.tickets", "bot.servers", "bot.channels", "ops", "actions"),
        "bot.answering": ("bot.servers", "bot.channels", "ops", "actions"),
        "bot.tickets": ("bot.answering", "bot.servers", "bot.channels", "ops", "actions"),
        "bot.servers": ("ops", "actions"),
    }
    for package, forbidden in above.items():
        for module, imported in _package_imports(package).items():
            bad = sorted(n for n in imported if n.startswith(forbidden))
            assert not bad, f"{module} imports {bad}, a layer above it"
