"""Capabilities, STARTTLS, authentication and the state machine, with imaplib."""

from __future__ import annotations

import base64
import imaplib
import socket
import ssl

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer


def test_greeting_and_logindisabled_before_tls(imap_server: ImapServer) -> None:
    conn = imaplib.IMAP4(imap_server.host, imap_server.port, timeout=10)
    try:
        assert "STARTTLS" in conn.capabilities
        assert "LOGINDISABLED" in conn.capabilities
        assert "AUTH=PLAIN" not in conn.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            conn.login(imap_server.user, PASSWORD)
    finally:
        conn.shutdown()


def test_starttls_then_login(imap_server: ImapServer) -> None:
    conn = imap_server.imap_starttls(login=False)
    typ, caps = conn.capability()
    assert typ == "OK"
    words = caps[0].split()
    assert b"AUTH=PLAIN" in words and b"STARTTLS" not in words
    typ, data = conn.login(imap_server.user, PASSWORD)
    assert typ == "OK" and b"CAPABILITY" in data[0]
    typ, caps = conn.capability()
    assert b"IDLE" in caps[0].split()
    conn.logout()


def test_imaps_login_and_wrong_password(imap_server: ImapServer) -> None:
    conn = imap_server.imaps(login=False)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.login(imap_server.user, "wrong password here")
    conn.login(imap_server.user, PASSWORD)
    assert conn.state == "AUTH"
    conn.logout()


def test_authenticate_plain_with_and_without_sasl_ir(imap_server: ImapServer) -> None:
    conn = imap_server.imaps(login=False)
    token = f"\0{imap_server.user}\0{PASSWORD}".encode()
    typ, _ = conn.authenticate("PLAIN", lambda _: token)
    assert typ == "OK"
    conn.logout()
    # SASL-IR: the initial response on the command line (RFC 4959)
    raw = socket.create_connection((imap_server.host, imap_server.tls_port), timeout=10)
    sock = imap_server.client_tls().wrap_socket(raw)
    try:
        fh = sock.makefile("rwb")
        assert fh.readline().startswith(b"* OK")
        fh.write(b"a AUTHENTICATE PLAIN " + base64.b64encode(token) + b"\r\n")
        fh.flush()
        assert fh.readline().startswith(b"a OK [CAPABILITY")
        fh.write(b"b AUTHENTICATE PLAIN\r\n")
        fh.flush()
        assert fh.readline().startswith(b"b BAD")  # already authenticated
    finally:
        sock.close()


def test_state_rules_and_bad_commands(imap_server: ImapServer) -> None:
    raw = socket.create_connection((imap_server.host, imap_server.tls_port), timeout=10)
    sock = imap_server.client_tls().wrap_socket(raw)
    fh = sock.makefile("rwb")
    try:
        fh.readline()

        def say(line: bytes) -> list[bytes]:
            fh.write(line + b"\r\n")
            fh.flush()
            out = []
            tag = line.split(b" ", 1)[0]
            for _ in range(100):
                got = fh.readline()
                out.append(got)
                if got.startswith(tag + b" ") or not got:
                    break
            return out

        assert say(b"t1 SELECT INBOX")[-1].startswith(b"t1 BAD")
        assert say(b"t2 FROB")[-1].startswith(b"t2 BAD")
        assert say(b't3 LOGIN "unterminated')[-1].startswith(b"t3 BAD")
        assert say(b"t4 NOOP")[-1].startswith(b"t4 OK")
        login = f"t5 LOGIN {imap_server.user} {{{len(PASSWORD)}+}}\r\n{PASSWORD}"
        assert say(login.encode())[-1].startswith(b"t5 OK")  # LITERAL+ (RFC 7888)
        assert say(b"t6 FETCH 1 FLAGS")[-1].startswith(b"t6 BAD")
        assert say(b"t7 SELECT INBOX")[-1].startswith(b"t7 OK [READ-WRITE]")
        assert say(b"t8 FETCH 1 FLAGS")[-1].startswith(b"t8 BAD")  # no message 1
        assert say(b"t9 LOGOUT")[0].startswith(b"* BYE")
    finally:
        sock.close()


def test_tls_rejects_garbage_handshake(imap_server: ImapServer) -> None:
    with socket.create_connection((imap_server.host, imap_server.tls_port), timeout=10) as raw:
        raw.sendall(b"a001 CAPABILITY\r\n")
        raw.settimeout(10)
        try:
            data = raw.recv(100)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        assert b"OK" not in data


def test_authenticate_plain_authzid_rule(imap_server: ImapServer) -> None:
    """appliance.sasl: the one authzid rule IMAP, SMTP and POP3 share: the login itself
    in any case is accepted, another identity is refused."""
    other = imap_server.add_user("carol@example.org")
    conn = imap_server.imaps(login=False)
    token = f"{other}\0{imap_server.user}\0{PASSWORD}".encode()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHORIZATIONFAILED"):
        conn.authenticate("PLAIN", lambda _: token)
    token = f"{imap_server.user.upper()}\0{imap_server.user}\0{PASSWORD}".encode()
    typ, _ = conn.authenticate("PLAIN", lambda _: token)
    assert typ == "OK"
    conn.logout()
