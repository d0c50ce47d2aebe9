"""The DNS layer is a bottom floor, and mailauth sits on it without reaching up: checked
on the source's import statements, so a new upward import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.harness import REPO


def imported(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (top level or inside a
    function, TYPE_CHECKING blocks included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def upward(package: str, allowed: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((REPO / "appliance" / package).glob("*.py")):
        for name in imported(path):
            if name.startswith("appliance") and not name.startswith(allowed):
                found.append(f"{path.name}: {name}")
    return found


def test_dns_imports_nothing_of_the_box() -> None:
    assert upward("dns", ("appliance.dns",)) == []


@pytest.mark.parametrize(
    ("package", "allowed"),
    [("mailauth", ("appliance.dns", "appliance.mailauth")), ("mime", ("appliance.mime",))],
)
def test_lower_floors_stay_below_queue_and_filters(package: str, allowed: tuple[str, ...]) -> None:
    assert upward(package, allowed) == []


def test_one_dnspython_adapter() -> None:
    """Only appliance/dns talks to dnspython's resolver; the rest asks appliance.dns."""
    users = []
    for root in ("appliance", "webui"):
        for path in sorted((REPO / root).rglob("*.py")):
            if any(n.startswith("dns.") and "resolver" in n for n in imported(path)):
                users.append(str(path.relative_to(REPO)))
    assert users == ["appliance/dns/resolver.py"]
