"""The POP3 service: status, limits, timeouts, throttling, reload and stop."""

from __future__ import annotations

import dataclasses
import poplib
import re
import socket
import time

import pytest

from appliance.config import Listen
from appliance.pop3.service import create
from tests.protocol.pop3.conftest import PASSWORD, USER, Pop3Server, ServerFactory


def test_create_and_status(server: Pop3Server) -> None:
    [svc] = create(server.ctx.config, server.ctx.deps)
    assert svc.name == "pop3"
    status = server.service.status()
    assert status["listening"] == sorted(
        [f"127.0.0.1:{server.port('pop3')}", f"127.0.0.1:{server.port('pop3s')}"]
    )
    assert status["connections"] == 0
    client = server.login()
    deadline = time.monotonic() + 5
    while server.service.status()["sessions"] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.service.status() | {"listening": []} == {
        "listening": [],
        "connections": 1,
        "sessions": 1,
    }
    client.quit()


def test_idle_timeout(make_server: ServerFactory) -> None:
    server = make_server(command_timeout=1)
    sock = socket.create_connection(("127.0.0.1", server.port("pop3")), timeout=10)
    start = time.monotonic()
    data = b""
    while not data.endswith(b"idle for too long\r\n") and time.monotonic() - start < 10:
        chunk = sock.recv(1000)
        if not chunk:
            break
        data += chunk
    assert data.endswith(b"-ERR [SYS/TEMP] Autologout; idle for too long\r\n")
    assert 0.9 < time.monotonic() - start < 5
    assert sock.recv(100) == b""


def test_connection_limit_per_ip(make_server: ServerFactory) -> None:
    server = make_server(max_connections_per_ip=2)
    a, b = server.plain(), server.plain()
    with pytest.raises(poplib.error_proto, match=re.escape("[SYS/TEMP] Too many connections")):
        server.plain()
    a.quit()
    deadline = time.monotonic() + 5
    while server.service.status()["connections"] > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    c = server.plain()
    c.quit()
    b.quit()


def test_failed_logins_close_then_throttle(server: Pop3Server) -> None:
    client = server.plain()
    for _ in range(2):
        client.user(USER)
        with pytest.raises(poplib.error_proto, match=re.escape("[AUTH]")):
            client.pass_("nope-nope-nope")
    client.user(USER)
    with pytest.raises(poplib.error_proto, match=re.escape("[AUTH]")):
        client.pass_("nope-nope-nope")
    with pytest.raises((poplib.error_proto, OSError)):
        client.noop()  # closed after three failures
    again = server.plain()
    again.user(USER)
    # The throttle now refuses even the right password for a while.
    with pytest.raises(poplib.error_proto, match=re.escape("[SYS/TEMP] Too many failed")):
        again.pass_(PASSWORD)
    again.quit()


def test_reload_rebinds_listeners(server: Pop3Server) -> None:
    old_plain, old_tls = server.port("pop3"), server.port("pop3s")
    cfg = server.ctx.config
    listeners = dataclasses.replace(cfg.listeners, pop3=(Listen("127.0.0.1", 0),), pop3s=())
    server.ctx.config = dataclasses.replace(cfg, listeners=listeners)
    server.loop.run(server.service.reload(server.ctx.config))
    assert len(server.service.status()["listening"]) == 1
    assert server.port("pop3") == old_plain  # unchanged listener kept
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old_tls), timeout=2)


def test_stop_drains_and_deletes_nothing(server: Pop3Server) -> None:
    server.deliver(b"Subject: x\r\n\r\ny\r\n")
    client = server.login()
    client.dele(1)
    port = server.port("pop3")
    start = time.monotonic()
    server.loop.run(server.service.stop(), timeout=30)  # the idle session is ended
    assert time.monotonic() - start < 3
    with pytest.raises(poplib.error_proto, match=re.escape("[SYS/TEMP] Server shutting down")):
        client.noop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert server.ctx.store.status(USER, "INBOX").messages == 1
    server.loop.run(server.service.start())  # and it can start again
    again = server.login()
    assert again.stat()[0] == 1
    again.quit()


def test_global_connection_limit(make_server: ServerFactory) -> None:
    server = make_server(max_connections=1)
    first = server.plain()
    with pytest.raises(poplib.error_proto, match=re.escape("[SYS/TEMP] Too many connections")):
        server.tls()  # the limit covers both listeners
    first.quit()
