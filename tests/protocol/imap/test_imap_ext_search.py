"""ESORT (RFC 5267 3) and SEARCHRES (RFC 5182) on real sockets.

Expected lines were taken from a private Dovecot 2.3 given the same five messages and
the same commands (see the commit message), except where noted.
"""

from __future__ import annotations

import re

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient

MESSAGES = [
    ("b subj", "Tue, 1 Dec 2026 10:00:00 +0000", "Hello world body one"),
    ("a subj", "Mon, 30 Nov 2026 10:00:00 +0000", "Second"),
    ("c subj", "Wed, 2 Dec 2026 10:00:00 +0000", "third"),
    ("a subj", "Thu, 3 Dec 2026 10:00:00 +0000", "fourth"),
    ("b subj", "Sun, 29 Nov 2026 10:00:00 +0000", "fifth"),
]


@pytest.fixture
def client(imap_server: ImapServer) -> RawClient:
    for subject, date, body in MESSAGES:
        imap_server.deliver(
            f"From: x@y\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n{body}\r\n".encode()
        )
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    c.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
    c.ok("SELECT INBOX")
    return c


def untagged(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ")]


def test_capabilities_advertised(client: RawClient) -> None:
    caps = untagged(client.ok("CAPABILITY"))[0].split()
    assert b"ESORT" in caps
    assert b"SEARCHRES" in caps


def test_esort_return_options(client: RawClient) -> None:
    c = client
    lines = c.ok("SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [
        f'* ESEARCH (TAG "{tag}") MIN 2 MAX 3 ALL 2,4,1,5,3 COUNT 5\r\n'.encode()
    ]
    lines = c.ok("UID SORT RETURN (ALL) (DATE) UTF-8 ALL")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") UID ALL 5,2,1,3:4\r\n'.encode()]
    lines = c.ok("SORT RETURN () (SUBJECT) UTF-8 ALL")  # RETURN () means ALL
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") ALL 2,4,1,5,3\r\n'.encode()]
    lines = c.ok("SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT zzz")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") COUNT 0\r\n'.encode()]
    lines = c.ok("SORT RETURN (MIN MAX ALL) (SUBJECT) UTF-8 SUBJECT zzz")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}")\r\n'.encode()]
    # RFC 5267 3.2: ALL is in sort order. (Dovecot 2.3 answers "ALL 1:5" here, which
    # loses the order; ours keeps it.)
    lines = c.ok("SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 ALL")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") ALL 5,4,3,2,1\r\n'.encode()]
    # Plain SORT is unchanged.
    assert untagged(c.ok("SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 2 4 1 5 3\r\n"]
    assert c.command("SORT RETURN (BOGUS) (SUBJECT) UTF-8 ALL")[-1].split()[1] == b"BAD"


def test_searchres_save_and_use(client: RawClient) -> None:
    c = client
    # Nothing saved yet: "$" is empty.
    assert untagged(c.ok("FETCH $ UID")) == []
    assert untagged(c.ok("SEARCH $")) == [b"* SEARCH\r\n"]
    # SAVE alone: no ESEARCH response (RFC 5182 2.1).
    assert untagged(c.ok("SEARCH RETURN (SAVE) SUBJECT a")) == []
    assert untagged(c.ok("SEARCH $")) == [b"* SEARCH 2 4\r\n"]
    assert untagged(c.ok("UID SEARCH UID $")) == [b"* SEARCH 2 4\r\n"]
    assert untagged(c.ok("FETCH $ (UID)")) == [b"* 2 FETCH (UID 2)\r\n", b"* 4 FETCH (UID 4)\r\n"]
    assert untagged(c.ok("SEARCH NOT $")) == [b"* SEARCH 1 3 5\r\n"]
    # SAVE with COUNT: the count is returned, the whole result saved.
    lines = c.ok('SEARCH RETURN (SAVE COUNT) SUBJECT "b s"')
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") COUNT 2\r\n'.encode()]
    assert untagged(c.ok("SEARCH $")) == [b"* SEARCH 1 5\r\n"]
    # SAVE with MIN MAX: only those two are saved (RFC 5182 2.1).
    lines = c.ok("SEARCH RETURN (SAVE MIN MAX) ALL")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") MIN 1 MAX 5\r\n'.encode()]
    assert untagged(c.ok("SEARCH $")) == [b"* SEARCH 1 5\r\n"]
    # "$" stands alone: combined with numbers it is a syntax error (as Dovecot).
    assert c.command("FETCH 1,$ UID")[-1].split()[1] == b"BAD"
    assert c.command("FETCH $:3 UID")[-1].split()[1] == b"BAD"
    # A SEARCH ... SAVE that fails (NO) empties the saved result.
    assert c.command("SEARCH RETURN (SAVE) CHARSET FOO ALL")[-1].split()[1] == b"NO"
    assert untagged(c.ok("SEARCH $")) == [b"* SEARCH\r\n"]


def test_searchres_follows_expunge_and_commands(client: RawClient) -> None:
    c = client
    c.ok("SEARCH RETURN (SAVE) ALL")
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    # The expunged message leaves "$"; the others are renumbered.
    assert untagged(c.ok("SEARCH $")) == [b"* SEARCH 1 2 3 4\r\n"]
    lines = c.ok("UID SEARCH RETURN (SAVE ALL) 1:2")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") UID ALL 1,3\r\n'.encode()]
    # STORE, COPY and UID EXPUNGE act on "$".
    stored = untagged(c.ok("STORE $ +FLAGS (\\Flagged)"))
    assert [line.split()[1] for line in stored] == [b"1", b"2"]
    assert all(b"\\Flagged" in line for line in stored)
    c.ok("CREATE Saved")
    assert b"[COPYUID " in c.ok("UID COPY $ Saved")[-1]
    assert b"MESSAGES 2" in c.ok("STATUS Saved (MESSAGES)")[0]
    # SORT can save, in sort order; MIN keeps the first in that order.
    lines = c.ok("SORT RETURN (SAVE MIN) (REVERSE SUBJECT) UTF-8 ALL")
    tag = lines[-1].split()[0].decode()
    assert untagged(lines) == [f'* ESEARCH (TAG "{tag}") MIN 2\r\n'.encode()]
    assert untagged(c.ok("UID SEARCH $")) == [b"* SEARCH 3\r\n"]
    # THREAD takes "$" in its search program.
    assert untagged(c.ok("THREAD ORDEREDSUBJECT UTF-8 $")) == [b"* THREAD (2)\r\n"]
    # A new SELECT forgets the saved result.
    c.ok("SELECT INBOX")
    assert untagged(c.ok("SEARCH $")) == [b"* SEARCH\r\n"]


def test_esort_modseq(client: RawClient) -> None:
    """RFC 7162 3.1.5 / RFC 4731 3.2: a MODSEQ key adds the highest modseq of the messages
    returned: all for SORT and ALL/COUNT, the first/last in sort order for MIN/MAX."""
    c = client
    c.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")  # message 2 gets the highest modseq
    fetched = b"".join(c.ok("FETCH 1:* (MODSEQ)"))
    pairs = re.findall(rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", fetched)
    modseq = {int(seq): int(value) for seq, value in pairs}
    assert len(modseq) == 5 and max(modseq.values()) == modseq[2] > modseq[3]
    lines = c.ok("SORT (SUBJECT) UTF-8 MODSEQ 1")
    assert [x for x in lines if x.startswith(b"* SORT")] == [
        b"* SORT 2 4 1 5 3 (MODSEQ %d)\r\n" % modseq[2]
    ]
    for returns, data in [
        ("MIN", f"MIN 2 MODSEQ {modseq[2]}"),
        ("MAX", f"MAX 3 MODSEQ {modseq[3]}"),
        ("ALL", f"ALL 2,4,1,5,3 MODSEQ {modseq[2]}"),
    ]:
        lines = c.ok(f"SORT RETURN ({returns}) (SUBJECT) UTF-8 MODSEQ 1")
        tag = lines[-1].split()[0].decode()
        assert [x for x in lines if x.startswith(b"* ESEARCH")] == [
            f'* ESEARCH (TAG "{tag}") {data}\r\n'.encode()
        ]
    assert untagged(c.ok(f"SORT (SUBJECT) UTF-8 MODSEQ {modseq[2] + 1}")) == [b"* SORT\r\n"]
