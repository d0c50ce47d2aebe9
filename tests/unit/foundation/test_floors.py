"""The layering in README.md's "Design notes" is enforced: every top-level module or
package of appliance/ sits on one floor, and an import (anywhere in a file, including
imports inside functions) may only reach the same floor or a lower one. Within a floor
the package graph has no cycle, so each floor can be read bottom-up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.harness import REPO

APPLIANCE = REPO / "appliance"

# Bottom (0) to top (4); the same table is drawn in README.md, Design notes.
FLOORS: dict[str, int] = {
    # 0 foundation: values, formats and plumbing with no mail policy
    "__init__": 0,
    "config": 0,
    "configfields": 0,
    "atomicfile": 0,
    "pids": 0,
    "log": 0,
    "events": 0,
    "mutf7": 0,
    "tls": 0,
    "sasl": 0,
    "address": 0,
    "dns": 0,
    "mime": 0,
    "runtime": 0,
    "listeners": 0,
    "cliconfig": 0,
    # 1 data: accounts, the message store, message authentication
    "accounts": 1,
    "store": 1,
    "mailauth": 1,
    "hardware": 1,
    # 2 policy: what happens to a message
    "queue": 2,
    "filters": 2,
    "delivery": 2,
    "dnsrecords": 2,
    # 3 services: protocols and jobs the daemon runs
    "ctl": 3,
    "smtp": 3,
    "imap": 3,
    "pop3": 3,
    "managesieve": 3,
    "backup": 3,
    "migrate": 3,
    "webmail": 3,
    # 4 entry points: wiring and the command line
    "daemon": 4,
    "devrun": 4,
    "cli": 4,
    "setupsecret": 4,
}


def _unit(path: Path) -> str:
    return path.relative_to(APPLIANCE).with_suffix("").parts[0]


def _imported_units(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "appliance":
                names = [f"appliance.{a.name}" for a in node.names]
            else:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "appliance" and len(parts) > 1:
                target = parts[1]
                if (APPLIANCE / target).is_dir() or (APPLIANCE / f"{target}.py").exists():
                    found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(APPLIANCE.rglob("*.py")):
        unit = _unit(path)
        graph.setdefault(unit, set()).update(_imported_units(path) - {unit})
    return graph


def test_every_module_has_a_floor() -> None:
    assert set(_graph()) <= set(FLOORS), set(_graph()) - set(FLOORS)


def test_no_import_reaches_a_higher_floor() -> None:
    upward = sorted(
        (unit, target)
        for unit, targets in _graph().items()
        for target in targets
        if FLOORS[target] > FLOORS[unit]
    )
    assert upward == []


@pytest.mark.parametrize("floor", range(5))
def test_no_cycle_within_a_floor(floor: int) -> None:
    graph = {u: {t for t in ts if FLOORS[t] == floor} for u, ts in _graph().items()}
    on_floor = [u for u in graph if FLOORS[u] == floor]
    state: dict[str, int] = {}

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for target in sorted(graph[unit]):
            if state.get(target) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, unit, target])}")
            if target not in state:
                visit(target, [*path, unit])
        state[unit] = 2

    for unit in on_floor:
        if unit not in state:
            visit(unit, [])


def test_the_web_ui_is_never_imported_by_the_daemon_package() -> None:
    for path in APPLIANCE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "webui" for a in node.names), path
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert node.module.split(".")[0] != "webui", path
