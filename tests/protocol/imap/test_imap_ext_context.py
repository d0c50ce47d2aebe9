"""CONTEXT=SEARCH (RFC 5267 4) on real sockets: PARTIAL, CONTEXT, UPDATE with ADDTO /
REMOVEFROM, CANCELUPDATE. The expected lines are what a private Dovecot 2.3 sent for the
same two-session script (five messages s0..s4; the other session appends one and
expunges message 2)."""

from __future__ import annotations

import time

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient


def login(imap_server: ImapServer) -> RawClient:
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    c.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
    return c


@pytest.fixture
def client(imap_server: ImapServer) -> RawClient:
    for i in range(5):
        imap_server.deliver(f"Subject: s{i}\r\n\r\nbody{i}\r\n".encode())
    c = login(imap_server)
    c.ok("SELECT INBOX")
    return c


def esearch(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ESEARCH") or b"NOUPDATE" in line]


def tag_of(lines: list[bytes]) -> str:
    return lines[-1].split()[0].decode()


def test_partial_and_context(client: RawClient) -> None:
    c = client
    assert b"CONTEXT=SEARCH" in c.ok("CAPABILITY")[0].split()
    cases = [
        ("SEARCH RETURN (PARTIAL 1:2) ALL", "PARTIAL (1:2 1:2)"),
        ("SEARCH RETURN (PARTIAL 3:1) ALL", "PARTIAL (1:3 1:3)"),
        ("SEARCH RETURN (PARTIAL 1:2 COUNT) ALL", "PARTIAL (1:2 1:2) COUNT 5"),
        ("SEARCH RETURN (PARTIAL 10:20) ALL", "PARTIAL (10:20 NIL)"),
        ("SEARCH RETURN (PARTIAL 1:2) NOT ALL", "PARTIAL (1:2 NIL)"),
        ("UID SEARCH RETURN (PARTIAL 2:3) ALL", "UID PARTIAL (2:3 2:3)"),
        ("SEARCH RETURN (PARTIAL 1:4294967295) ALL", "PARTIAL (1:4294967295 1:5)"),
        ("SEARCH RETURN (CONTEXT COUNT) ALL", "COUNT 5"),
        ("SEARCH RETURN (CONTEXT) ALL", "ALL 1:5"),
    ]
    for command, data in cases:
        lines = c.ok(command)
        assert esearch(lines) == [f'* ESEARCH (TAG "{tag_of(lines)}") {data}\r\n'.encode()]
    for bad in (
        "SEARCH RETURN (PARTIAL 0:1) ALL",
        "SEARCH RETURN (PARTIAL -1:-2) ALL",
        "SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
        "SEARCH RETURN (PARTIAL) ALL",
        "SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
        "SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL",  # CONTEXT=SORT is not offered
        "CANCELUPDATE",
    ):
        assert c.command(bad)[-1].split()[1] == b"BAD", bad
    # PARTIAL with SAVE keeps the returned window.
    c.ok("SEARCH RETURN (PARTIAL 2:3 SAVE) ALL")
    assert c.ok("SEARCH $")[0] == b"* SEARCH 2 3\r\n"


def test_update_follows_other_sessions(client: RawClient, imap_server: ImapServer) -> None:
    c = client
    lines = c.ok("SEARCH RETURN (UPDATE) SUBJECT s")
    a2 = tag_of(lines)
    assert esearch(lines) == [f'* ESEARCH (TAG "{a2}")\r\n'.encode()]
    lines = c.ok("UID SEARCH RETURN (UPDATE MIN) ALL")
    a6 = tag_of(lines)
    assert esearch(lines) == [f'* ESEARCH (TAG "{a6}") UID MIN 1\r\n'.encode()]
    other = login(imap_server)
    imap_server.deliver(b"Subject: s9\r\n\r\nbodyN\r\n")
    other.ok("SELECT INBOX")
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    lines = [line for line in c.ok("NOOP") if not line.endswith(b" RECENT\r\n")]
    assert lines[:-1] == [
        f'* ESEARCH (TAG "{a2}") REMOVEFROM (0 2)\r\n'.encode(),
        f'* ESEARCH (TAG "{a6}") UID REMOVEFROM (0 2)\r\n'.encode(),
        b"* 2 EXPUNGE\r\n",
        b"* 5 EXISTS\r\n",
        f'* ESEARCH (TAG "{a2}") ADDTO (0 5)\r\n'.encode(),
        f'* ESEARCH (TAG "{a6}") UID ADDTO (0 6)\r\n'.encode(),
    ]
    # Nothing changed: nothing more is sent.
    assert c.ok("NOOP")[:-1] == []
    assert c.ok(f'CANCELUPDATE "{a2}"')[-1].split()[1] == b"OK"
    assert c.command('CANCELUPDATE "nope"')[-1].split()[1:3] == [b"NO", b"Unknown"]
    other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    lines = c.ok("NOOP")
    assert lines[:-1] == [
        f'* ESEARCH (TAG "{a6}") UID REMOVEFROM (0 1)\r\n'.encode(),
        b"* 1 EXPUNGE\r\n",
    ]
    other.close()


def test_update_follows_own_flag_changes_and_idle(
    client: RawClient, imap_server: ImapServer
) -> None:
    c = client
    lines = c.ok("SEARCH RETURN (UPDATE) UNSEEN")
    a15 = tag_of(lines)
    assert esearch(lines) == [f'* ESEARCH (TAG "{a15}")\r\n'.encode()]
    lines = c.ok("STORE 3 +FLAGS (\\Seen)")
    assert lines[1:-1] == [f'* ESEARCH (TAG "{a15}") REMOVEFROM (0 3)\r\n'.encode()]
    lines = c.ok("STORE 3 -FLAGS (\\Seen)")
    assert lines[1:-1] == [f'* ESEARCH (TAG "{a15}") ADDTO (0 3)\r\n'.encode()]
    # Our own EXPUNGE: REMOVEFROM just before the EXPUNGE.
    c.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    lines = c.ok("EXPUNGE")
    assert lines[:-1] == [
        f'* ESEARCH (TAG "{a15}") REMOVEFROM (0 4)\r\n'.encode(),
        b"* 4 EXPUNGE\r\n",
    ]
    # While idling, a delivery is announced with its ADDTO.
    c.write(b"i1 IDLE\r\n")
    assert c.line().startswith(b"+ ")
    imap_server.deliver(b"Subject: late\r\n\r\nlate\r\n")
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(b"ADDTO" in g for g in got):
        got.append(c.line())
    assert f'* ESEARCH (TAG "{a15}") ADDTO (0 5)\r\n'.encode() in got
    c.write(b"DONE\r\n")
    assert c.until(b"i1")[-1].startswith(b"i1 OK")
    # A new SELECT ends every live search.
    c.ok("SELECT INBOX")
    assert c.command(f'CANCELUPDATE "{a15}"')[-1].split()[1] == b"NO"


def test_update_limit(client: RawClient) -> None:
    c = client
    for _ in range(5):
        assert esearch(c.ok("SEARCH RETURN (UPDATE) ALL"))[0].startswith(b"* ESEARCH")
    lines = c.ok("SEARCH RETURN (UPDATE COUNT) ALL")
    tag = tag_of(lines)
    assert esearch(lines) == [
        f'* ESEARCH (TAG "{tag}") COUNT 5\r\n'.encode(),
        f'* NO [NOUPDATE "{tag}"] Too many updating searches\r\n'.encode(),
    ]
