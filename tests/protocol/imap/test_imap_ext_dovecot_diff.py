"""Differential test of the issue 17 extensions (ESORT, SEARCHRES, CONTEXT=SEARCH
PARTIAL, PREVIEW, CATENATE, WITHIN) against a private Dovecot 2.3: the same messages
APPENDed to both, the same commands, the untagged answers compared line by line (tags
normalised) and the tagged status compared. Skips where Dovecot cannot run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.dovecot_ref import private_dovecot
from tests.protocol.imap.rawclient import RawClient
from tests.protocol.imap.test_imap_ext_preview import CASES as PREVIEW_CASES

SORTABLE = [
    ("b subj", "Tue, 1 Dec 2026 10:00:00 +0000", "Hello world body one"),
    ("a subj", "Mon, 30 Nov 2026 10:00:00 +0000", "Second"),
    ("c subj", "Wed, 2 Dec 2026 10:00:00 +0000", "third"),
    ("a subj", "Thu, 3 Dec 2026 10:00:00 +0000", "fourth"),
    ("b subj", "Sun, 29 Nov 2026 10:00:00 +0000", "fifth"),
]
# Our one deliberate difference (control characters become spaces) is left out.
PREVIEWS = [message for message, _ in PREVIEW_CASES if b"\x01" not in message]
_TAG = re.compile(rb'\(TAG "[^"]*"\)')
_TIMING = re.compile(rb" \(\d+\.\d+ \+ [\d.+ ]+secs\)\.?")


@dataclass
class Pair:
    ours: RawClient
    theirs: RawClient

    def both(self, command: str | bytes) -> tuple[list[bytes], list[bytes]]:
        return _answer(self.ours.command(command)), _answer(self.theirs.command(command))


def _answer(lines: list[bytes]) -> list[bytes]:
    """Untagged lines with the ESEARCH tag normalised, then the tagged status word."""
    out = [_TAG.sub(b'(TAG "*")', line) for line in lines[:-1]]
    return [*out, lines[-1].split()[1]]


def _append(client: RawClient, mailbox: str, message: bytes, date: str) -> None:
    client.write(b'a0 APPEND %s "%s" {%d+}\r\n' % (mailbox.encode(), date.encode(), len(message)))
    client.write(message + b"\r\n")
    assert b" OK " in client.until(b"a0")[-1]


def _fill(client: RawClient) -> None:
    client.ok("CREATE Sorted")
    client.ok("CREATE Previews")
    client.ok("CREATE Built")
    for i, (subject, date, body) in enumerate(SORTABLE):
        message = f"From: x@y\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n{body}\r\n".encode()
        _append(client, "Sorted", message, f"0{i + 1}-Jan-2026 10:00:00 +0000")
    for message in PREVIEWS:
        _append(client, "Previews", message, "01-Jan-2026 10:00:00 +0000")


@pytest.fixture
def pair(imap_server: ImapServer) -> Iterator[Pair]:
    with private_dovecot() as dovecot:
        ours = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
        ours.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
        theirs = dovecot.connect()
        _fill(ours)
        _fill(theirs)
        yield Pair(ours, theirs)
        ours.close()
        theirs.close()


def test_extensions_answer_as_dovecot(pair: Pair) -> None:
    script = [
        "SELECT Sorted",
        # ESORT (RFC 5267 3)
        "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL",
        "UID SORT RETURN (ALL) (DATE) UTF-8 ALL",
        "SORT RETURN () (SUBJECT) UTF-8 ALL",
        "SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT zzz",
        "SORT RETURN (MIN MAX ALL) (SUBJECT) UTF-8 SUBJECT zzz",
        "SORT RETURN (SAVE MIN) (SUBJECT) UTF-8 ALL",
        # SEARCHRES (RFC 5182)
        "FETCH $ UID",
        "SEARCH RETURN (SAVE) SUBJECT a",
        "SEARCH $",
        "UID SEARCH UID $",
        "FETCH $ (UID)",
        "SEARCH NOT $",
        'SEARCH RETURN (SAVE COUNT) SUBJECT "b s"',
        "SEARCH $",
        "SEARCH RETURN (SAVE MIN MAX) ALL",
        "SEARCH $",
        "FETCH 1,$ UID",
        "SEARCH RETURN (SAVE) CHARSET FOO ALL",
        "SEARCH $",
        # CONTEXT=SEARCH (RFC 5267 4.4)
        "SEARCH RETURN (PARTIAL 1:2) ALL",
        "SEARCH RETURN (PARTIAL 3:1) ALL",
        "SEARCH RETURN (PARTIAL 1:2 COUNT) ALL",
        "SEARCH RETURN (PARTIAL 10:20) ALL",
        "UID SEARCH RETURN (PARTIAL 2:3) ALL",
        "SEARCH RETURN (CONTEXT COUNT) ALL",
        "SEARCH RETURN (UPDATE) ALL",
        "SEARCH RETURN (PARTIAL 0:1) ALL",
        "SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
        # WITHIN (RFC 5032): the internal dates are in January 2026
        "SEARCH OLDER 1",
        "SEARCH YOUNGER 1",
        "SEARCH OLDER 0",
        # PREVIEW (RFC 8970)
        "EXAMINE Previews",
        "FETCH 1:* (PREVIEW)",
        "FETCH 1 (PREVIEW (LAZY))",
        "FETCH 1 (PREVIEW (FOO))",
        # CATENATE (RFC 4469): the answers, then the built messages
        'APPEND Built CATENATE (URL "/Sorted/;UID=1")',
        'APPEND Built CATENATE (URL ";UID=2/;SECTION=TEXT")',
        'APPEND Built CATENATE (URL "/Sorted/;UID=3/;PARTIAL=6.10")',
        'APPEND Built CATENATE (URL "/Sorted/;UID=4/;SECTION=TEXT/;PARTIAL=2")',
        'APPEND Built CATENATE (URL "/Sorted/;UID=99")',
        "APPEND Built CATENATE ()",
        "EXAMINE Built",
        "FETCH 1:* (BODY.PEEK[])",
    ]
    differences = []
    for command in script:
        ours, theirs = pair.both(command)
        if command.startswith(("APPEND", "SELECT", "EXAMINE")) and ours[-1] == theirs[-1] == b"OK":
            continue  # UIDVALIDITY and flag order differ; the commands' own tests cover them
        if ours != theirs:
            differences.append((command, ours, theirs))
    assert differences == []
