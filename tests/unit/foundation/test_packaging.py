"""pyproject.toml as pip and setuptools read it: no deprecated metadata (a warning at
every install) and a runtime install (`make run`) without the dev tools."""

from __future__ import annotations

import re
import tomllib

from tests.harness import REPO

DEV_ONLY = ("pytest", "mypy", "ruff", "moto", "selenium", "matplotlib", "hypothesis")


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_and_setuptools_reads_it() -> None:
    data = _pyproject()
    project = data["project"]
    assert isinstance(project, dict)
    # PEP 639: a string; the TABLE form makes setuptools warn "`project.license` as a
    # TOML table is deprecated" on every build.
    assert project["license"] == "AGPL-3.0-or-later"
    system = data["build-system"]
    assert isinstance(system, dict)
    (setuptools,) = [r for r in system["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert match and int(match.group(1)) >= 77  # the first setuptools with PEP 639


def test_runtime_dependencies_hold_no_dev_tools() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    names = [re.split(r"[<>=\[; ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    assert not [n for n in names if n.startswith(DEV_ONLY)], names
    assert "dev" in project["optional-dependencies"]
