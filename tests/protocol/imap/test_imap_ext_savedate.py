"""SAVEDATE (RFC 8514) on real sockets, and the save date read from the Maildir name."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from appliance.imap.savedate import save_date
from appliance.store.base import MessageInfo
from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient

_DATE = re.compile(rb'SAVEDATE "([^"]+)"')


def _saved(line: bytes) -> float:
    match = _DATE.search(line)
    assert match, line
    return dt.datetime.strptime(match.group(1).decode(), "%d-%b-%Y %H:%M:%S %z").timestamp()


@pytest.fixture
def client(imap_server: ImapServer) -> RawClient:
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    c.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
    return c


def _append(c: RawClient, mailbox: str, message: bytes, date: str) -> None:
    c.write(
        b'a1 APPEND %s (\\Seen) "%s" {%d+}\r\n' % (mailbox.encode(), date.encode(), len(message))
    )
    c.write(message + b"\r\n")
    assert b" OK " in c.until(b"a1")[-1]


def test_savedate_fetch_search_and_copy(client: RawClient) -> None:
    c = client
    assert b"SAVEDATE" in c.ok("CAPABILITY")[0].split()
    before = time.time()
    # An old internal date: the save date is still the moment of the APPEND.
    _append(c, "INBOX", make_message("old"), "01-Feb-2001 10:00:00 +0000")
    c.ok("SELECT INBOX")
    line = c.ok("FETCH 1 (INTERNALDATE SAVEDATE)")[0]
    assert b'INTERNALDATE "01-Feb-2001 10:00:00 +0000"' in line
    first = _saved(line)
    assert before - 1 <= first <= time.time() + 1
    today = dt.datetime.fromtimestamp(first, dt.UTC).strftime("%d-%b-%Y")
    assert c.ok(f"SEARCH SAVEDON {today}")[0] == b"* SEARCH 1\r\n"
    assert c.ok(f"SEARCH SAVEDSINCE {today}")[0] == b"* SEARCH 1\r\n"
    assert c.ok(f"SEARCH SAVEDBEFORE {today}")[0] == b"* SEARCH\r\n"
    assert c.ok("SEARCH SAVEDBEFORE 2-Feb-2001")[0] == b"* SEARCH\r\n"
    assert c.ok("SEARCH BEFORE 2-Feb-2001")[0] == b"* SEARCH 1\r\n"
    assert c.ok("SEARCH SAVEDATESUPPORTED")[0] == b"* SEARCH 1\r\n"
    assert c.ok("SEARCH NOT SAVEDATESUPPORTED")[0] == b"* SEARCH\r\n"
    # RFC 8514 1: COPY and MOVE save the message anew in the target mailbox.
    time.sleep(1.1)
    c.ok("CREATE Kept")
    c.ok("CREATE Moved")
    c.ok("COPY 1 Kept")
    c.ok("COPY 1 Moved")
    c.ok("SELECT Moved")
    c.ok("MOVE 1 Kept")
    c.ok("SELECT Kept")
    lines = c.ok("FETCH 1:2 (SAVEDATE INTERNALDATE)")[:-1]
    assert len(lines) == 2
    for line in lines:
        assert _saved(line) >= first + 1, line
        assert b'INTERNALDATE "01-Feb-2001 10:00:00 +0000"' in line
    assert b"SAVEDATE" in c.ok("UID FETCH 1:* SAVEDATE")[0]
    assert c.command("SEARCH SAVEDON 31-Foo-2001")[-1].split()[1] == b"BAD"


def _info(key: str) -> MessageInfo:
    return MessageInfo(1, 1, frozenset(), 1000.0, 10, key)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("1764770000.M123456P77Q1Rabcd.host,S=10,U=1", 1764770000.123456),
        ("1764770000.M5P77.host", 1764770000.000005),
        ("1764770000.P77Q1.host", 1764770000.0),  # another deliverer's Maildir name
        ("weird-name", 1000.0),  # no time: the internal date
        ("", 1000.0),
    ],
)
def test_save_date_from_maildir_name(key: str, expected: float) -> None:
    assert save_date(_info(key)) == pytest.approx(expected)
