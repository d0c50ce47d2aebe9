"""The import graph of the `appliance` package, read from the source with ast (imports
inside functions count too): the daemon never imports the web UI, and the CLI modules
import shared plumbing from below instead of from each other."""

from __future__ import annotations

import ast
from pathlib import Path

from appliance import cli

ROOT = Path(__file__).resolve().parents[3]
CLI_SIDE = ("appliance.cli", "appliance.devrun", "appliance.backup.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports: ``from a import b`` counts as a.b when a.b is a
    module of ours, else as a."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in sorted((ROOT / "appliance").rglob("*.py"))}
    ours = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        imported = _imports(path, name)
        graph[name] = {m for m in imported if m in ours or m.split(".")[0] == "webui"}
    # Subcommand modules are imported by name (importlib) from cli.CLI_MODULES.
    graph["appliance.cli"] |= set(cli.CLI_MODULES)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "appliance.cliconfig" in graph["appliance.backup.cli"]
    assert "appliance.backup.cli" in graph["appliance.cli"]
    assert "appliance.daemon" in graph["appliance.devrun"]
    # A function-local import is seen (cmd_run imports devrun when it runs).
    assert "appliance.devrun" in graph["appliance.cli"]


def test_appliance_never_imports_the_web_ui() -> None:
    graph = _graph()
    offenders = {
        name: sorted(m for m in deps if m.split(".")[0] == "webui") for name, deps in graph.items()
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_no_cycle_among_the_cli_modules() -> None:
    graph = _graph()
    for name in CLI_SIDE:
        reach = _reachable(graph, name)
        assert name not in reach, f"{name} imports itself through {sorted(reach & set(CLI_SIDE))}"
    # appliance.cli is the top: nothing it uses imports it back.
    for name in (
        "appliance.devrun",
        "appliance.backup.cli",
        "appliance.cliconfig",
        "appliance.setupsecret",
    ):
        assert "appliance.cli" not in _reachable(graph, name), name
