"""Fixtures for the backup unit tests: a dev instance whose backups go to a local repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance import config
from tests.harness import write_config

if shutil.which("restic") is None:  # pragma: no cover - apt-packages.txt installs it
    pytest.skip("restic is not installed (tests/apt-packages.txt)", allow_module_level=True)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return tmp_path / "usb" / "pillarbox-backup"


@pytest.fixture
def cfg(tmp_path: Path, repo_dir: Path) -> config.Config:
    path = write_config(
        tmp_path / "box", backup={"target": "local", "path": str(repo_dir), "keep_daily": 3}
    )
    return config.load(path)
