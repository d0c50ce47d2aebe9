"""Lower floors never import upper ones: only the entry points import appliance.daemon,
and the runtime layer the services share imports nothing above config and tls."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness import REPO

APPLIANCE = REPO / "appliance"
# The daemon's entry point and what starts it (`pillarbox run`: cli -> devrun).
MAY_IMPORT_DAEMON = {"appliance/daemon.py", "appliance/devrun.py"}
BOTTOM = {"appliance.runtime", "appliance.listeners", "appliance.sasl"}
BOTTOM_MAY_IMPORT = {"appliance.__version__", "appliance.config", "appliance.tls"}


def imports(path: Path) -> set[str]:
    """Every appliance module a file imports (``from appliance import x`` counts as
    ``appliance.x``), wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "appliance":
            found.update(f"appliance.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] == "appliance"}


def modules() -> dict[str, set[str]]:
    return {str(path.relative_to(REPO)): imports(path) for path in sorted(APPLIANCE.rglob("*.py"))}


def test_only_the_entry_points_import_the_daemon() -> None:
    importers = {m for m, names in modules().items() if "appliance.daemon" in names}
    assert importers <= MAY_IMPORT_DAEMON, importers - MAY_IMPORT_DAEMON


def test_the_runtime_layer_stays_on_the_bottom_floor() -> None:
    found = modules()
    for module in BOTTOM:
        path = module.replace(".", "/") + ".py"
        assert found[path] <= BOTTOM_MAY_IMPORT, (module, found[path] - BOTTOM_MAY_IMPORT)
