"""Service behaviour: status, connection limits, shutdown BYE, STARTTLS hygiene, limits."""

from __future__ import annotations

import dataclasses
import socket

from tests.protocol.imap.conftest import ImapServer
from tests.protocol.imap.rawclient import RawClient
from tests.protocol.imap.test_updates import login


def test_status_reports_listeners_and_sessions(imap_server: ImapServer) -> None:
    c = login(imap_server)
    status = imap_server.service.status()
    assert f"127.0.0.1:{imap_server.port}" in status["listening"]
    assert f"127.0.0.1:{imap_server.tls_port}" in status["listening"]
    assert status["sessions"] == 1 and status["users"] == [imap_server.user]
    c.ok("LOGOUT")
    c.close()


def test_connection_limit_per_ip(imap_server: ImapServer) -> None:
    cfg = imap_server.ctx.config
    limits = dataclasses.replace(cfg.limits, max_connections_per_ip=2)
    imap_server.ctx.config = dataclasses.replace(cfg, limits=limits)
    first = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    second = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    third = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    assert first.greeting.startswith(b"* OK") and second.greeting.startswith(b"* OK")
    assert third.greeting.startswith(b"* BYE")
    for c in (first, second, third):
        c.close()


def test_stop_says_bye(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok("SELECT INBOX")
    imap_server.call(imap_server.service.stop)
    assert c.line() == b"* BYE Server shutting down\r\n"
    c.close()
    with socket.socket() as s:
        assert s.connect_ex((imap_server.host, imap_server.tls_port)) != 0


def test_starttls_discards_pipelined_plaintext(imap_server: ImapServer) -> None:
    raw = socket.create_connection((imap_server.host, imap_server.port), timeout=10)
    fh = raw.makefile("rb")
    assert fh.readline().startswith(b"* OK")
    # RFC 9051 6.2.1: a command injected after STARTTLS must not run inside TLS
    raw.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert fh.readline() == b"a OK Begin TLS negotiation now\r\n"
    tls = imap_server.client_tls().wrap_socket(raw)
    tls.settimeout(2)
    tls.sendall(b"c NOOP\r\n")
    reply = tls.recv(4096)
    assert reply.startswith(b"c OK") and b"CAPABILITY" not in reply
    tls.close()


def test_long_line_and_bad_literal_keep_session(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.write(b"x NOOP " + b"a" * 70000 + b"\r\n")
    assert c.line() == b"* BAD Command line too long\r\n"
    lines = c.command(b"LOGIN {99999999}")  # synchronising literal over the limit
    assert b"[TOOBIG]" in lines[-1] or b"BAD" in lines[-1]
    c.ok("NOOP")
    c.write(b"y SEARCH TEXT {100000+}\r\n" + b"z" * 100000 + b"\r\n")
    assert b"y NO [TOOBIG]" in c.until(b"y")[-1]
    c.ok("NOOP")
    c.close()


def test_lsub_and_idle_without_selection(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok("SUBSCRIBE Sent")
    assert c.ok('LSUB "" "*"')[:-1] == [b'* LSUB () "/" Sent\r\n']
    c.write(b"i IDLE\r\n")
    assert c.line().startswith(b"+ ")
    c.write(b"DONE\r\n")
    assert c.until(b"i")[-1].startswith(b"i OK")
    c.close()
