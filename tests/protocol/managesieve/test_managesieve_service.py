"""The ManageSieve service: create and status, reload of its listeners, quota from a
reloaded config, and stop ending idle sessions with BYE."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable

import pytest

from appliance.managesieve.service import create
from tests.protocol.managesieve.conftest import Client, Server


def _wait(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_create_and_status(server: Server) -> None:
    [svc] = create(server.service.config, server.service.deps)
    assert svc.name == "managesieve"
    assert server.service.status() == {
        "listening": [f"127.0.0.1:{server.port}"],
        "connections": 0,
    }
    client = server.connect()
    _wait(lambda: server.service.status()["connections"] == 1)
    assert server.service.status()["connections"] == 1
    assert client.cmd("LOGOUT").startswith(b"OK")
    _wait(lambda: server.service.status()["connections"] == 0)
    assert server.service.status()["connections"] == 0


def test_reload_applies_quota_and_listeners(server: Server) -> None:
    client = server.login()
    old = server.service.config
    smaller = dataclasses.replace(
        old, managesieve=dataclasses.replace(old.managesieve, max_scripts=1)
    )
    server.loop.run(server.service.reload(smaller))
    fresh = server.login()  # new connections read the new config
    assert fresh.cmd('PUTSCRIPT "a" "keep;"').startswith(b"OK")
    assert fresh.cmd('PUTSCRIPT "b" "keep;"').startswith(b"NO (QUOTA/MAXSCRIPTS)")
    assert client.cmd('PUTSCRIPT "b" "keep;"').startswith(b"OK")  # the old one keeps its own
    port = server.port
    closed = dataclasses.replace(
        smaller, listeners=dataclasses.replace(smaller.listeners, managesieve=())
    )
    server.loop.run(server.service.reload(closed))
    assert server.service.status()["listening"] == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert client.cmd("NOOP").startswith(b"OK")  # open sessions stay


def test_stop_ends_idle_sessions_with_bye(server: Server) -> None:
    client = server.login()
    waiting = server.connect()
    port = server.port
    started = time.monotonic()
    server.loop.run(server.service.stop())
    assert client.response()[1] == b'BYE "Server shutting down"\r\n'
    assert waiting.response()[1] == b'BYE "Server shutting down"\r\n'
    assert time.monotonic() - started < 5
    with pytest.raises(OSError):
        Client(port)
    server.loop.run(server.service.start())  # the fixture stops it again
