from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.protocol.filters import services


@pytest.fixture(scope="session")
def clamd_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (shutil.which("clamd") or Path("/usr/sbin/clamd").exists()):
        pytest.skip("clamd not installed (Debian package clamav-daemon)")
    with services.clamd(tmp_path_factory.mktemp("clamd")) as sock:
        yield sock


@pytest.fixture(scope="session")
def rspamd_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not shutil.which("rspamd"):
        pytest.skip("rspamd not installed (Debian package rspamd)")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed (Debian package redis-server)")
    tmp = tmp_path_factory.mktemp("rspamd")
    redis_dir = tmp / "redis"
    redis_dir.mkdir()
    with services.redis(redis_dir) as port, services.rspamd(tmp, port) as urls:
        yield urls
