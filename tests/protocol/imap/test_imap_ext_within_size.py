"""WITHIN (RFC 5032) and STATUS=SIZE (RFC 8438), both advertised: checked on real sockets
(answers as a private Dovecot 2.3 gives them: OLDER 0 and out-of-range intervals BAD)."""

from __future__ import annotations

import re
import time

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient


@pytest.fixture
def client(imap_server: ImapServer) -> RawClient:
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    c.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
    return c


def _append(c: RawClient, mailbox: str, message: bytes, stamp: float | None = None) -> None:
    date = b""
    if stamp is not None:
        date = time.strftime(' "%d-%b-%Y %H:%M:%S +0000"', time.gmtime(stamp)).encode()
    c.write(b"a1 APPEND %s%s {%d+}\r\n" % (mailbox.encode(), date, len(message)))
    c.write(message + b"\r\n")
    assert b" OK " in c.until(b"a1")[-1]


def test_within_older_younger(client: RawClient) -> None:
    c = client
    caps = c.ok("CAPABILITY")[0].split()
    assert b"WITHIN" in caps
    now = time.time()
    _append(c, "INBOX", make_message("ten days"), now - 10 * 86400)
    _append(c, "INBOX", make_message("two hours"), now - 2 * 3600)
    _append(c, "INBOX", make_message("now"))
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH OLDER 86400")[0] == b"* SEARCH 1\r\n"
    assert c.ok("SEARCH YOUNGER 86400")[0] == b"* SEARCH 2 3\r\n"
    assert c.ok("SEARCH YOUNGER 3600")[0] == b"* SEARCH 3\r\n"
    assert c.ok("SEARCH OLDER 3600 YOUNGER 86400")[0] == b"* SEARCH 2\r\n"
    assert c.ok("UID SEARCH NOT OLDER 3600")[0] == b"* SEARCH 3\r\n"
    assert c.ok("SEARCH OLDER 4294967295")[0] == b"* SEARCH\r\n"
    # RFC 5032 4: the interval is an nz-number (Dovecot: "Invalid search interval").
    for bad in ("SEARCH OLDER 0", "SEARCH YOUNGER 0", "SEARCH OLDER 4294967296", "SEARCH OLDER"):
        assert c.command(bad)[-1].split()[1] == b"BAD", bad


def test_status_size(client: RawClient) -> None:
    c = client
    assert b"STATUS=SIZE" in c.ok("CAPABILITY")[0].split()
    c.ok("CREATE Sized")
    assert c.ok("STATUS Sized (SIZE)")[0] == b"* STATUS Sized (SIZE 0)\r\n"
    for i in range(3):
        _append(c, "Sized", make_message(f"m{i}", body="x" * (100 * (i + 1)) + "\r\n"))
    c.ok("SELECT Sized")
    sizes = [
        int(m) for m in re.findall(rb"RFC822.SIZE (\d+)", b"".join(c.ok("FETCH 1:* RFC822.SIZE")))
    ]
    assert len(sizes) == 3
    c.ok("UNSELECT")
    line = c.ok("STATUS Sized (MESSAGES SIZE)")[0]
    assert line == b"* STATUS Sized (MESSAGES 3 SIZE %d)\r\n" % sum(sizes)
    listed = b"".join(c.ok('LIST "" Sized RETURN (STATUS (SIZE))'))
    assert b"* STATUS Sized (SIZE %d)" % sum(sizes) in listed
    c.ok("SELECT Sized")
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("CLOSE")
    line = c.ok("STATUS Sized (SIZE)")[0]
    assert line == b"* STATUS Sized (SIZE %d)\r\n" % (sizes[0] + sizes[2])
