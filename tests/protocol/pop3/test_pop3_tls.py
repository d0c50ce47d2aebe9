"""STLS (RFC 2595), implicit TLS (RFC 8314) and the plaintext-login rules."""

from __future__ import annotations

import poplib
import re
import socket
import ssl

import pytest

from tests.protocol.pop3.conftest import PASSWORD, USER, Pop3Server, client_tls, cmd

MSG = b"Subject: tls\r\n\r\nover TLS\r\n"


def test_stls_then_login(server: Pop3Server) -> None:
    server.deliver(MSG)
    client = server.plain()
    assert client.stls(context=client_tls()).startswith(b"+OK")
    assert isinstance(client.sock, ssl.SSLSocket)
    caps = client.capa()
    assert "STLS" not in caps and "USER" in caps
    with pytest.raises(poplib.error_proto, match="STLS not allowed"):
        cmd(client, "STLS")
    client.user(USER)
    client.pass_(PASSWORD)
    assert client.retr(1)[1] == [b"Subject: tls", b"", b"over TLS"]
    client.quit()


def test_implicit_tls(server: Pop3Server) -> None:
    server.deliver(MSG)
    client = server.tls()
    caps = client.capa()
    assert "STLS" not in caps and caps["SASL"] == ["PLAIN"]
    client.user(USER)
    client.pass_(PASSWORD)
    assert client.stat() == (1, len(MSG))
    client.quit()


def test_plaintext_refused_without_tls_for_remote_clients(server: Pop3Server) -> None:
    server.service.loopback_plaintext = False  # treat 127.0.0.1 like a remote client
    server.deliver(MSG)
    client = server.plain()
    caps = client.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    with pytest.raises(poplib.error_proto, match=re.escape("-ERR [AUTH] Plaintext")):
        client.user(USER)
    with pytest.raises(poplib.error_proto, match=re.escape("-ERR [AUTH] Plaintext")):
        cmd(client, "AUTH PLAIN AGFsaWNlAHNlY3JldA==")
    client.stls(context=client_tls())
    client.user(USER)
    client.pass_(PASSWORD)
    assert client.stat()[0] == 1
    client.quit()
    tls = server.tls()
    tls.user(USER)
    tls.pass_(PASSWORD)
    tls.quit()


def test_stls_discards_pipelined_plaintext(server: Pop3Server) -> None:
    """CVE-2011-0411: a command sent with STLS must not run after the handshake."""
    sock = socket.create_connection(("127.0.0.1", server.port("pop3")), timeout=10)
    sock.recv(1000)
    sock.sendall(b"STLS\r\nCAPA\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += sock.recv(1)
    assert reply.startswith(b"+OK")
    tls = client_tls().wrap_socket(sock)
    tls.settimeout(0.5)
    with pytest.raises(TimeoutError):
        tls.recv(1000)  # the injected CAPA was not answered
    tls.settimeout(10)
    tls.sendall(b"QUIT\r\n")
    assert tls.recv(1000).startswith(b"+OK")
    tls.close()


def test_failed_tls_handshake_is_survived(server: Pop3Server) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port("pop3s")), timeout=10)
    sock.sendall(b"USER plaintext-on-tls-port\r\n")
    sock.settimeout(10)
    try:
        leftover = sock.recv(1000)
    except ConnectionResetError:
        leftover = b""
    assert not leftover.startswith(b"+OK")
    sock.close()
    client = server.tls()  # the listener still works
    client.quit()
