"""Issue 17 item 15: SORT with i;ascii-casemap (upper-case fold), groups sort by their
name, and a THREAD=REFERENCES dummy root ties on its first child's sequence number.
Every expected answer is Dovecot 2.3.19's on the same messages."""

from __future__ import annotations

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient


def _msg(head: str, date: str = "Mon, 1 Jan 2024 10:00:00 +0000") -> bytes:
    return f"{head}\r\nDate: {date}\r\n\r\nbody\r\n".encode()


def _client(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "{PASSWORD}"')
    c.ok("SELECT INBOX")
    return c


def _answer(c: RawClient, command: str) -> bytes:
    return c.ok(command)[0].rstrip(b"\r\n")


def test_subjects_sort_with_upper_case_fold(imap_server: ImapServer) -> None:
    subjects = ["b one", "[zzz] x", "_under", "A two", "apple", "Zed", "~tilde", "^caret"]
    for i, subject in enumerate(subjects, 1):
        imap_server.deliver(
            _msg(f"From: u{i}@x\r\nSubject: {subject}", f"Mon, 1 Jan 2024 00:00:0{i} +0000")
        )
    c = _client(imap_server)
    try:
        # "^" 0x5E and "_" 0x5F sort after Z (0x5A), "~" 0x7E last; "[zzz] x" is "x".
        assert _answer(c, "SORT (SUBJECT) UTF-8 ALL") == b"* SORT 4 5 1 2 6 8 3 7"
        assert _answer(c, "SORT (REVERSE SUBJECT) UTF-8 ALL") == b"* SORT 7 3 8 6 2 1 5 4"
    finally:
        c.close()


def test_a_group_sorts_by_its_name(imap_server: ImapServer) -> None:
    imap_server.deliver(_msg("From: zzz: a@b;\r\nTo: b@x\r\nCc: c@x\r\nSubject: g"))
    imap_server.deliver(_msg("From: mmm@x\r\nTo: Zgrp: ;\r\nCc: kkk: ;, a@a\r\nSubject: g"))
    imap_server.deliver(_msg("From: Bob <nnn@x>\r\nTo: Yolanda <c@x>\r\nCc: \r\nSubject: g"))
    imap_server.deliver(_msg("From: (Alice) ooo@x\r\nTo: c@x (Xavier)\r\nSubject: g"))
    c = _client(imap_server)
    try:
        assert _answer(c, "SORT (FROM) UTF-8 ALL") == b"* SORT 2 3 4 1"
        assert _answer(c, "SORT (TO) UTF-8 ALL") == b"* SORT 1 3 4 2"
        assert _answer(c, "SORT (CC) UTF-8 ALL") == b"* SORT 3 4 1 2"
        assert _answer(c, "SORT (DISPLAYFROM) UTF-8 ALL") == b"* SORT 3 2 4 1"
        assert _answer(c, "SORT (DISPLAYTO) UTF-8 ALL") == b"* SORT 1 4 3 2"
    finally:
        c.close()


def test_dummy_root_ties_on_its_first_child(imap_server: ImapServer) -> None:
    imap_server.deliver(
        _msg("From: a@x\r\nSubject: one\r\nMessage-ID: <m1@x>", "Mon, 1 Jan 2024 09:00:00 +0000")
    )
    imap_server.deliver(_msg("From: a@x\r\nSubject: two\r\nMessage-ID: <m2@x>"))
    imap_server.deliver(
        _msg("From: a@x\r\nSubject: three\r\nMessage-ID: <m3@x>\r\nReferences: <gone@x>")
    )
    imap_server.deliver(
        _msg("From: a@x\r\nSubject: four\r\nMessage-ID: <m4@x>\r\nReferences: <gone@x>")
    )
    c = _client(imap_server)
    try:
        # The dummy <gone@x> has message 2's date; it ties on 3 (its first child), so
        # it sorts after 2 (RFC 5256 REFERENCES step 4).
        assert _answer(c, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (1)(2)((3)(4))"
    finally:
        c.close()


def test_a_list_blob_alone_does_not_make_a_reply(imap_server: ImapServer) -> None:
    imap_server.deliver(
        _msg(
            "From: a@x\r\nSubject: Fwd: Re: [ops] Disk alarm\r\nMessage-ID: <a2@x>",
            "Mon, 1 Jan 2024 10:00:00 +0000",
        )
    )
    imap_server.deliver(
        _msg(
            "From: a@x\r\nSubject: [ops] Disk alarm\r\nMessage-ID: <a1@x>",
            "Mon, 1 Jan 2024 09:00:00 +0000",
        )
    )
    c = _client(imap_server)
    try:
        # RFC 5256 REFERENCES step 5: the forward (2 removed "Fwd: Re:") becomes a child
        # of the non-reply "[ops] ..." (its blob removal is no reply); Dovecot: (2 1).
        assert _answer(c, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (2 1)"
    finally:
        c.close()
