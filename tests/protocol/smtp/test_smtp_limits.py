"""Connection limits, idle timeout and drain on stop, on real sockets."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import Any

import pytest

from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv


@pytest.fixture
def smtp_limits() -> dict[str, Any]:
    return {
        "max_connections": 5,
        "max_connections_per_ip": 3,
        "command_timeout": 2,
        "max_message_size": 1024 * 1024,
    }


def connect(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.recv(1024)


def test_per_ip_limit_421(env: SmtpEnv) -> None:
    socks = []
    try:
        for _ in range(3):
            sock, greeting = connect(env.ports["smtp"])
            socks.append(sock)
            assert greeting.startswith(b"220 ")
        sock, greeting = connect(env.ports["submission"])  # the limit spans all listeners
        socks.append(sock)
        assert greeting.startswith(b"421 4.7.0 "), greeting
        assert sock.recv(1024) == b""  # and the connection is closed
        socks.pop().close()
        socks.pop().close()  # one slot free again
        deadline = time.monotonic() + 5
        while env.service.status()["connections"] > 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        sock, greeting = connect(env.ports["smtp"])
        socks.append(sock)
        assert greeting.startswith(b"220 ")
    finally:
        for s in socks:
            s.close()


def test_global_limit_421(env: SmtpEnv) -> None:
    cfg = env.ctx.config
    limits = dataclasses.replace(cfg.limits, max_connections=2, max_connections_per_ip=10)
    env.ctx.config = dataclasses.replace(cfg, limits=limits)
    a, ga = connect(env.ports["smtp"])
    b, gb = connect(env.ports["smtp"])
    c, gc = connect(env.ports["smtp"])
    try:
        assert ga.startswith(b"220") and gb.startswith(b"220")
        assert gc.startswith(b"421 4.7.0 "), gc
        assert env.service.status()["refused_global"] == 1
    finally:
        for s in (a, b, c):
            s.close()


def test_idle_timeout_sends_421_and_closes(env: SmtpEnv) -> None:
    sock, greeting = connect(env.ports["smtp"])
    assert greeting.startswith(b"220 ")
    t0 = time.monotonic()
    sock.settimeout(10)
    data = sock.recv(1024)
    assert data.startswith(b"421 4.4.2 "), data
    assert sock.recv(1024) == b""
    assert 1.5 < time.monotonic() - t0 < 6
    sock.close()


def test_slow_but_steady_data_is_not_timed_out(env: SmtpEnv) -> None:
    sock, _ = connect(env.ports["smtp"])
    f = sock.makefile("rb")
    for cmd in (b"EHLO c", b"MAIL FROM:<a@remote.test>", f"RCPT TO:<bob@{DOMAIN}>".encode()):
        sock.sendall(cmd + b"\r\n")
        while (line := f.readline())[3:4] == b"-":
            pass
        assert line[:1] == b"2", line
    sock.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    sock.sendall(b"Subject: slow\r\n\r\n")
    for _ in range(6):  # 3 s in DATA, longer than the 2 s command timeout
        time.sleep(0.5)
        sock.sendall(b"still here\r\n")
    sock.sendall(b".\r\n")
    assert f.readline().startswith(b"250 ")
    f.close()
    sock.close()


def test_stop_drains_transaction_in_flight(env: SmtpEnv) -> None:
    sock, _ = connect(env.ports["smtp"])
    idle, _ = connect(env.ports["smtp"])
    f = sock.makefile("rb")
    for cmd in (b"EHLO c", b"MAIL FROM:<a@remote.test>", f"RCPT TO:<bob@{DOMAIN}>".encode()):
        sock.sendall(cmd + b"\r\n")
        while f.readline()[3:4] == b"-":
            pass
    sock.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    sock.sendall(b"Subject: drain\r\n\r\nbody\r\n")
    done = threading.Event()

    def stopper() -> None:
        env.call(env.service.stop())
        done.set()

    t = threading.Thread(target=stopper)
    t.start()
    time.sleep(0.3)
    assert not done.is_set()  # waiting for our transaction
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", env.ports["smtp"]), timeout=2).recv(10)
    sock.sendall(b".\r\n")
    assert f.readline().startswith(b"250 ")
    t.join(10)
    assert done.is_set()
    assert f.readline().startswith(b"421 4.3.2 ")  # then told to go away
    assert idle.recv(1024).startswith(b"421 4.3.2 ")
    assert len(env.messages(f"bob@{DOMAIN}")) == 1
    f.close()
    sock.close()
    idle.close()
    env.call(env.service.start())  # the fixture stops it again


def test_reload_opens_and_closes_listeners(env: SmtpEnv) -> None:
    from appliance.config import Listen

    cfg = env.ctx.config
    old_465 = env.ports["submissions"]
    listeners = dataclasses.replace(
        cfg.listeners,
        submissions=(),
        submission=(*cfg.listeners.submission, Listen("127.0.0.2", 0)),
    )
    env.ctx.config = dataclasses.replace(cfg, listeners=listeners)
    env.call(env.service.reload(env.ctx.config))
    status = env.service.status()
    assert "submissions" not in status["listeners"]
    assert len(status["listeners"]["submission"]) == 2
    new = next(a for a in status["listeners"]["submission"] if a.startswith("127.0.0.2:"))
    sock = socket.create_connection(("127.0.0.2", int(new.rsplit(":", 1)[1])), timeout=5)
    assert sock.recv(1024).startswith(b"220 ")
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", old_465), timeout=2).recv(10)
    # the untouched listeners keep their sockets (and ports)
    assert status["listeners"]["smtp"] == [f"127.0.0.1:{env.ports['smtp']}"]
