"""MOVE into the selected mailbox gives the message a new UID (issue 17 item 2).

RFC 9051 2.3.1.1: a UID is never re-used in a mailbox. Dovecot 2.3, compared on the
same script (a private instance, MOVE 1 INBOX with INBOX selected, three messages):

    * OK [COPYUID 1796305400 1 4] Moved UIDs.
    * 1 EXPUNGE
    * 3 EXISTS
    c6 OK Move completed

and after the move the mailbox holds UIDs 2 3 4.
"""

from __future__ import annotations

import re

from tests.protocol.imap.conftest import ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient


def _login(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "correct horse battery staple 7"')
    return c


def _uids(c: RawClient) -> list[int]:
    lines = c.ok("UID SEARCH ALL")
    found = next(line for line in lines if line.startswith(b"* SEARCH"))
    return [int(x) for x in found.split()[2:]]


def test_move_into_selected_mailbox_gets_a_new_uid(imap_server: ImapServer) -> None:
    for n in range(3):
        imap_server.deliver(make_message(f"move {n}", f"body {n}\r\n"))
    c = _login(imap_server)
    try:
        select = c.ok("SELECT INBOX")
        uidvalidity = next(
            re.search(rb"UIDVALIDITY (\d+)", line).group(1)  # type: ignore[union-attr]
            for line in select
            if b"UIDVALIDITY" in line
        )
        c.ok("STORE 1 +FLAGS (\\Flagged $Work)")
        lines = c.ok("MOVE 1 INBOX")
        assert lines[0] == b"* OK [COPYUID %s 1 4] Moved\r\n" % uidvalidity, lines
        assert b"* 1 EXPUNGE\r\n" in lines
        # The new message is announced: EXISTS after the EXPUNGE, before the tagged OK.
        assert lines.index(b"* 3 EXISTS\r\n") > lines.index(b"* 1 EXPUNGE\r\n"), lines
        assert _uids(c) == [2, 3, 4]
        fetched = c.ok("UID FETCH 4 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"\\Flagged" in fetched[0] and b"$Work" in fetched[0]
        assert b"Subject: move 0" in b"".join(fetched)
        # UID 1 is gone for good: not back after re-select, not answered by FETCH.
        c.ok("SELECT INBOX")
        assert _uids(c) == [2, 3, 4]
        assert not [line for line in c.ok("UID FETCH 1 FLAGS") if line.startswith(b"* ")]
        status = c.ok("STATUS INBOX (MESSAGES UIDNEXT)")
        assert b"MESSAGES 3" in status[0] and b"UIDNEXT 5" in status[0]
    finally:
        c.close()


def test_uid_move_into_selected_mailbox_several(imap_server: ImapServer) -> None:
    for n in range(4):
        imap_server.deliver(make_message(f"many {n}", f"body {n}\r\n"))
    c = _login(imap_server)
    try:
        c.ok("SELECT INBOX")
        lines = c.ok("UID MOVE 2,4 INBOX")
        assert any(b"[COPYUID " in line and b" 2,4 5,6]" in line for line in lines), lines
        assert b"* 4 EXPUNGE\r\n" in lines and b"* 2 EXPUNGE\r\n" in lines
        assert b"* 4 EXISTS\r\n" in lines
        assert _uids(c) == [1, 3, 5, 6]
    finally:
        c.close()
