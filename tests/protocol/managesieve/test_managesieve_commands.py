"""ManageSieve (RFC 5804) commands on a real loopback socket: capabilities, STARTTLS,
AUTHENTICATE in both forms, every script command with its response codes, literals in
both forms, quotas, bad scripts with their line, throttled logins and the bounds."""

from __future__ import annotations

import base64
import socket
import time

import pytest

from tests.protocol.managesieve.conftest import (
    OTHER,
    PASSWORD,
    USER,
    Client,
    Server,
    ServerFactory,
    plain,
)
from tests.protocol.pop3.conftest import client_tls

FILEINTO = 'require "fileinto";\r\nif header :contains "subject" "X" { fileinto "Y"; }\r\n'
KEEP = "keep;\r\n"


def caps(lines: list[bytes]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for line in lines:
        parts = line.rstrip(b"\r\n").split(b" ", 1)
        out[parts[0].strip(b'"').decode()] = (
            parts[1].strip(b'"').decode() if len(parts) > 1 else None
        )
    return out


def literal(text: str, plus: bool = True) -> bytes:
    data = text.encode()
    return b"{%d%s}\r\n" % (len(data), b"+" if plus else b"") + data


def test_greeting_before_and_after_tls(server: Server) -> None:
    client = server.connect()
    items, ok = client.greeting
    assert ok.startswith(b"OK")
    before = caps(items)
    assert before["IMPLEMENTATION"] == "Pillarbox"
    assert before["SASL"] == ""  # no plaintext mechanism before TLS, loopback too
    assert "STARTTLS" in before
    assert before["VERSION"] == "1.0"
    assert before["MAXREDIRECTS"] == "5"
    assert "NOTIFY" not in before
    sieve = set((before["SIEVE"] or "").split())
    assert {"fileinto", "vacation", "date", "relational", "imap4flags", "copy"} <= sieve
    assert caps(client.starttls()) == {
        **{k: v for k, v in before.items() if k != "STARTTLS"},
        "SASL": "PLAIN",
    }
    client.send(b"CAPABILITY\r\n")
    capability, ok = client.response()
    assert ok.startswith(b"OK") and caps(capability)["SASL"] == "PLAIN"
    assert client.cmd("STARTTLS").startswith(b"NO")  # once only
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain("Alice@Example.org")}"').startswith(b"OK")
    client.send(b"CAPABILITY\r\n")
    after = caps(client.response()[0])
    assert after["OWNER"] == USER and after["SASL"] == ""


def test_no_authentication_before_tls(server: Server) -> None:
    client = server.connect()
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain()}"').startswith(b"NO (ENCRYPT-NEEDED)")
    assert client.cmd("LISTSCRIPTS").startswith(b"NO")
    assert client.cmd(f'PUTSCRIPT "a" {{{len(KEEP)}+}}\r\n{KEEP}').startswith(b"NO")
    assert server.scripts.list_scripts(USER) == []


def test_starttls_injection_is_discarded(server: Server) -> None:
    client = server.connect()
    # The command after STARTTLS arrives in the same packet, before the handshake.
    client.send(b'STARTTLS\r\nNOOP "injected"\r\n')
    assert client.response()[1].startswith(b"OK")
    client.file.close()
    client.sock = client_tls().wrap_socket(client.sock)
    client.file = client.sock.makefile("rb")
    assert client.response()[1].startswith(b"OK")  # the capabilities again
    assert client.cmd('NOOP "after"') == b'OK (TAG "after") "Done"\r\n'


@pytest.mark.parametrize("form", ["quoted", "literal+", "literal", "continue", "continue-literal"])
def test_authenticate_plain_forms(server: Server, form: str) -> None:
    client = server.connect()
    client.starttls()
    blob = plain()
    if form == "quoted":
        reply = client.cmd(f'AUTHENTICATE "PLAIN" "{blob}"')
    elif form.startswith("literal"):
        reply = client.cmd(b'AUTHENTICATE "PLAIN" ' + literal(blob, form == "literal+"))
    else:
        client.send(b'AUTHENTICATE "PLAIN"\r\n')
        assert client.line() == b'""\r\n'  # RFC 5804 2.1: the empty challenge
        answer = f'"{blob}"'.encode() if form == "continue" else literal(blob)
        reply = client.cmd(answer)
    assert reply.startswith(b"OK"), reply
    assert client.cmd("LISTSCRIPTS").startswith(b"OK")


def test_authentication_failures(server: Server) -> None:
    client = server.connect()
    client.starttls()
    client.send(b'AUTHENTICATE "PLAIN"\r\n')
    assert client.line() == b'""\r\n'
    assert client.cmd('"*"').startswith(b'NO "Authentication cancelled"')
    assert client.cmd('AUTHENTICATE "LOGIN"').startswith(b"NO")
    assert client.cmd('AUTHENTICATE "PLAIN" "not base64!"').startswith(b"NO")
    # RFC 4616: no proxy logins
    proxy = base64.b64encode(f"{OTHER}\0{USER}\0{PASSWORD}".encode()).decode()
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{proxy}"').startswith(b"NO")
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain(password="wrong")}"').startswith(b"NO")
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain(password="wrong")}"').startswith(b"NO")
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain(password="wrong")}"').startswith(b"BYE")
    assert client.closed()


def test_failed_logins_are_throttled(make_server: ServerFactory) -> None:
    server = make_server(limits={"login_free_failures": 1, "login_backoff_cap": 60})
    bad = server.connect()
    bad.starttls()
    assert bad.cmd(f'AUTHENTICATE "PLAIN" "{plain(password="wrong")}"') == (
        b'NO "Authentication failed"\r\n'
    )
    good = server.connect()
    good.starttls()
    # The right password during the back-off: refused as temporary (RFC 5804 TRYLATER).
    assert good.cmd(f'AUTHENTICATE "PLAIN" "{plain()}"').startswith(b"NO (TRYLATER)")
    assert good.cmd("LISTSCRIPTS").startswith(b"NO")


def test_script_commands(server: Server) -> None:
    client = server.login()
    assert client.cmd(b'PUTSCRIPT "work" ' + literal(FILEINTO)) == b'OK "Stored"\r\n'
    assert client.cmd(b'PUTSCRIPT "keep" ' + literal(KEEP, plus=False)).startswith(b"OK")
    assert client.cmd('PUTSCRIPT "quoted" "discard;"').startswith(b"OK")
    client.send(b"LISTSCRIPTS\r\n")
    assert client.response() == (
        [b'"keep"\r\n', b'"quoted"\r\n', b'"work"\r\n'],
        b'OK "Listscripts completed"\r\n',
    )
    assert client.cmd('SETACTIVE "work"').startswith(b"OK")
    client.send(b"LISTSCRIPTS\r\n")
    assert b'"work" ACTIVE\r\n' in client.response()[0]
    assert server.scripts.get_script(USER) == FILEINTO  # what delivery runs
    client.send(b'GETSCRIPT "work"\r\n')
    items, ok = client.response()
    assert items == [b"{%d}\r\n" % len(FILEINTO) + FILEINTO.encode() + b"\r\n"]
    assert ok == b"OK\r\n"
    assert client.cmd('GETSCRIPT "none"').startswith(b"NO (NONEXISTENT)")
    assert client.cmd('DELETESCRIPT "work"').startswith(b"NO (ACTIVE)")
    assert client.cmd('DELETESCRIPT "none"').startswith(b"NO (NONEXISTENT)")
    assert client.cmd('DELETESCRIPT "quoted"').startswith(b"OK")
    assert client.cmd('RENAMESCRIPT "work" "keep"').startswith(b"NO (ALREADYEXISTS)")
    assert client.cmd('RENAMESCRIPT "none" "other"').startswith(b"NO (NONEXISTENT)")
    assert client.cmd('RENAMESCRIPT "work" "filters"').startswith(b"OK")
    assert server.scripts.list_scripts(USER) == [("filters", True), ("keep", False)]
    assert client.cmd('SETACTIVE "none"').startswith(b"NO (NONEXISTENT)")
    assert client.cmd('SETACTIVE ""').startswith(b"OK")  # RFC 5804 2.8: deactivate
    assert server.scripts.get_script(USER) is None
    assert client.cmd('DELETESCRIPT "filters"').startswith(b"OK")
    assert server.scripts.list_scripts(USER) == [("keep", False)]
    assert server.scripts.list_scripts(OTHER) == []  # nothing of alice's shows for bob
    assert client.cmd('NOOP "t1"') == b'OK (TAG "t1") "Done"\r\n'
    assert client.cmd("NOOP").startswith(b"OK")
    assert client.cmd("UNAUTHENTICATE").startswith(b"OK")
    assert client.cmd("LISTSCRIPTS").startswith(b"NO")
    assert client.cmd("LOGOUT") == b'OK "Logout completed"\r\n'
    assert client.closed()


def test_checkscript_and_bad_scripts_name_the_line(server: Server) -> None:
    client = server.login()
    assert client.cmd(b"CHECKSCRIPT " + literal(FILEINTO)).startswith(b"OK")
    bad = 'require "fileinto";\r\nkeep;\r\nfileinto "x" "y";\r\n'
    reply = client.cmd(b"CHECKSCRIPT " + literal(bad))
    assert reply.startswith(b'NO "line 3: '), reply
    reply = client.cmd(b'PUTSCRIPT "bad" ' + literal('fileinto "x";\r\n'))
    assert reply.startswith(b'NO "line 1: fileinto needs require'), reply
    assert client.cmd(b'PUTSCRIPT "bad" ' + literal("if true {\r\n\r\nkeep;\r\n")).startswith(
        b'NO "line '
    )
    assert server.scripts.list_scripts(USER) == []  # nothing stored


def test_quota_on_size_and_count(make_server: ServerFactory) -> None:
    server = make_server(max_script_size=1024, max_scripts=2)
    client = server.login()
    big = "# " + "x" * 1100 + "\r\nkeep;\r\n"
    assert client.cmd(f'HAVESPACE "a" {len(big)}').startswith(b"NO (QUOTA/MAXSIZE)")
    assert client.cmd('HAVESPACE "a" 1000').startswith(b"OK")
    # An over-quota literal is read and dropped; the connection goes on.
    assert client.cmd(b'PUTSCRIPT "a" ' + literal(big)).startswith(b"NO (QUOTA/MAXSIZE)")
    assert client.cmd("NOOP").startswith(b"OK")
    assert client.cmd(b'PUTSCRIPT "a" ' + literal(KEEP)).startswith(b"OK")
    assert client.cmd(b'PUTSCRIPT "b" ' + literal(KEEP)).startswith(b"OK")
    assert client.cmd('HAVESPACE "c" 10').startswith(b"NO (QUOTA/MAXSCRIPTS)")
    assert client.cmd('HAVESPACE "a" 10').startswith(b"OK")  # replacing is no new script
    assert client.cmd(b'PUTSCRIPT "c" ' + literal(KEEP)).startswith(b"NO (QUOTA/MAXSCRIPTS)")
    assert client.cmd(b'PUTSCRIPT "a" ' + literal("discard;")).startswith(b"OK")
    assert [n for n, _ in server.scripts.list_scripts(USER)] == ["a", "b"]
    # A literal far beyond any quota is not read at all.
    client.send(b'PUTSCRIPT "d" {50000000+}\r\n')
    assert client.response()[1].startswith(b"BYE")
    assert client.closed()


@pytest.mark.parametrize("name", ["", "tab\there", "x" * 81, "e\u0301"])
def test_bad_script_names(server: Server, name: str) -> None:
    client = server.login()
    reply = client.cmd(f'PUTSCRIPT "{name}" "keep;"')
    assert reply.startswith(b"NO"), reply
    assert server.scripts.list_scripts(USER) == []


def test_control_character_in_name_refused(server: Server) -> None:
    client = server.login()
    reply = client.cmd(b'PUTSCRIPT {3+}\r\na\x01b "keep;"')
    assert reply.startswith(b'NO "Bad script name'), reply
    assert client.cmd('PUTSCRIPT "Ünïcødé ✓" "keep;"').startswith(b"OK")
    assert server.scripts.list_scripts(USER) == [("Ünïcødé ✓", False)]


@pytest.mark.parametrize(
    "line",
    [
        b"FOO",
        b'PUTSCRIPT "a"',
        b"PUTSCRIPT a b",
        b'GETSCRIPT "unterminated',
        b'GETSCRIPT "bad \\escape"',
        b'GETSCRIPT  "two spaces"',
        b'HAVESPACE "a" 99999999999',
        b'NOOP "a" "b"',
    ],
)
def test_malformed_commands(server: Server, line: bytes) -> None:
    client = server.login()
    assert client.cmd(line).startswith(b"NO")
    assert client.cmd("NOOP").startswith(b"OK")


def test_preauth_huge_literal_refused_without_reading(server: Server) -> None:
    client = server.connect()
    started = time.monotonic()
    client.send(b"NOOP {100000000+}\r\n")  # and never the 100 MB
    assert client.response()[1] == b'BYE "Literal too large before login"\r\n'
    assert client.closed()
    assert time.monotonic() - started < 5
    small = server.connect()
    assert small.cmd(b"NOOP " + literal("tag")).startswith(b'OK (TAG "tag")')


def test_long_line_and_too_many_errors(server: Server) -> None:
    client = server.connect()
    assert client.cmd(b'NOOP "' + b"x" * 9000 + b'"').startswith(b"BYE")
    assert client.closed()
    client = server.connect()
    for _ in range(9):
        assert client.cmd("BOGUS").startswith(b"NO")
    assert client.cmd("BOGUS").startswith(b"BYE")
    assert client.closed()


def test_idle_timeout(make_server: ServerFactory) -> None:
    server = make_server(limits={"command_timeout": 1})
    client = server.connect()
    started = time.monotonic()
    assert client.response()[1] == b'BYE "Idle for too long"\r\n'
    assert client.closed()
    assert 0.9 < time.monotonic() - started < 5


def test_connections_per_ip_limited(make_server: ServerFactory) -> None:
    server = make_server(limits={"max_connections_per_ip": 2})
    first, second = server.connect(), server.connect()
    third = Client.__new__(Client)  # no greeting to read: the refusal comes instead
    third.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    third.file = third.sock.makefile("rb")
    assert third.response()[1].startswith(b"BYE (TRYLATER)")
    assert third.closed()
    third.close()
    assert first.cmd("NOOP").startswith(b"OK") and second.cmd("NOOP").startswith(b"OK")


def test_app_passwords_log_in(server: Server) -> None:
    _, secret = server.accounts.add_app_password(USER, "roundcube")
    client = server.connect()
    client.starttls()
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain(USER, secret)}"').startswith(b"OK")
    assert client.cmd("LISTSCRIPTS").startswith(b"OK")


def test_literal_bounds_per_command(server: Server) -> None:
    client = server.login()
    five = b"NOOP" + b" {1+}\r\nx" * 5
    assert client.cmd(five) == b'BYE "Too many literals in one command"\r\n'
    assert client.closed()
    client = server.login()
    # A malformed line that announces a literal: its octets cannot be told from commands.
    client.send(b'GETSCRIPT "a""b" {6+}\r\n')
    assert client.response()[1].startswith(b'BYE "Syntax error')
    assert client.closed()


def test_store_failure_answers_trylater(server: Server) -> None:
    client = server.login()
    assert client.cmd('PUTSCRIPT "a" "keep;"').startswith(b"OK")
    user_dir = server.scripts.user_dir(USER)
    aside = user_dir.with_name("aside")
    user_dir.rename(aside)
    user_dir.write_text("not a directory")  # the store's disk fails (as root can see too)
    try:
        assert client.cmd('PUTSCRIPT "b" "keep;"').startswith(b"NO (TRYLATER)")
        assert client.cmd("LISTSCRIPTS").startswith(b"NO (TRYLATER)")
    finally:
        user_dir.unlink()
        aside.rename(user_dir)
    assert client.cmd('PUTSCRIPT "b" "keep;"').startswith(b"OK")
    assert server.scripts.list_scripts(USER) == [("a", False), ("b", False)]
