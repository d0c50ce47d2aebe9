"""\\Recent for EXAMINE and STATUS (issue 17 item 8, RFC 3501 6.3.2, 6.3.10).

EXAMINE reports and shows the messages no session has claimed, without claiming them;
STATUS RECENT counts them. Each answer compared with Dovecot 2.3 on the same script.
"""

from __future__ import annotations

import re

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient


def login(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "{PASSWORD}"')
    return c


def status_recent(c: RawClient) -> int:
    line = c.ok("STATUS INBOX (MESSAGES RECENT)")[0]
    match = re.fullmatch(rb"\* STATUS INBOX \(MESSAGES \d+ RECENT (\d+)\)\r\n", line)
    assert match, line
    return int(match.group(1))


def test_examine_reports_recent_without_claiming(imap_server: ImapServer) -> None:
    for n in range(3):
        imap_server.deliver(make_message(f"m{n}"))
    ro, rw = login(imap_server), login(imap_server)
    assert status_recent(ro) == 3
    lines = ro.ok("EXAMINE INBOX")
    assert b"* 3 EXISTS\r\n" in lines and b"* 3 RECENT\r\n" in lines
    assert all(b"\\Recent" in x for x in ro.ok("FETCH 1:3 FLAGS")[:-1])
    assert status_recent(rw) == 3  # EXAMINE claimed nothing
    assert b"* 3 RECENT\r\n" in rw.ok("SELECT INBOX")  # SELECT claims them
    assert status_recent(ro) == 3  # a session sees its own \Recent ones (as Dovecot)
    ro.ok("UNSELECT")
    assert status_recent(ro) == 0
    assert b"* 0 RECENT\r\n" in ro.ok("EXAMINE INBOX")
    ro.close()
    rw.close()


def test_status_recent_counts_unclaimed_arrivals(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("old"))
    c = login(imap_server)
    assert status_recent(c) == 1
    c.ok("SELECT INBOX")
    c.ok("UNSELECT")
    assert status_recent(c) == 0
    imap_server.deliver(make_message("new1"))
    imap_server.deliver(make_message("new2"))
    assert status_recent(c) == 2
    c.ok("CREATE Other")
    other = c.ok("STATUS Other (RECENT)")[0]
    assert other == b"* STATUS Other (RECENT 0)\r\n"
    c.close()


def test_examine_session_sees_new_arrival_recent_and_leaves_it(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("old"))
    rw, ro = login(imap_server), login(imap_server)
    rw.ok("SELECT INBOX")
    ro.ok("EXAMINE INBOX")
    imap_server.deliver(make_message("new"))
    assert b"* 2 EXISTS\r\n* 1 RECENT\r\n" in b"".join(ro.ok("NOOP"))
    assert b"\\Recent" in ro.ok("FETCH 2 FLAGS")[0]
    assert b"* 2 EXISTS\r\n* 2 RECENT\r\n" in b"".join(rw.ok("NOOP"))  # still rw's to claim
    rw.close()
    ro.close()
