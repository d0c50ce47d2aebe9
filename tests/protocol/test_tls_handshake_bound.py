"""An implicit-TLS connection that never sends a ClientHello is dropped after
``tls.HANDSHAKE_SECONDS`` on every mail port: it is not yet counted against the per-IP
limits, so it must not be able to sit there for the command timeout (300 s)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.tls import HANDSHAKE_SECONDS
from tests.harness import Daemon, write_config

PORTS = ("submissions", "imaps", "pop3s")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    path: Path = write_config(tmp_path_factory.mktemp("tls-handshake"))
    with Daemon(path, wait_for=PORTS) as d:
        yield d


@pytest.mark.slow
def test_silent_tls_clients_are_dropped(box: Daemon) -> None:
    socks = {name: socket.create_connection(box.addr(name), timeout=5) for name in PORTS}
    start = time.monotonic()
    closed: dict[str, float] = {}
    try:
        for s in socks.values():
            s.settimeout(0.5)
        while len(closed) < len(socks) and time.monotonic() - start < HANDSHAKE_SECONDS + 15:
            for name, s in socks.items():
                if name in closed:
                    continue
                try:
                    data = s.recv(1024)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the server closed (or reset) the silent connection
                    closed[name] = time.monotonic() - start
    finally:
        for s in socks.values():
            s.close()
    assert set(closed) == set(PORTS), f"still open after {HANDSHAKE_SECONDS + 15} s: {closed}"
    for name, after in closed.items():
        assert after >= HANDSHAKE_SECONDS - 1, (name, after)  # not dropped before its time
