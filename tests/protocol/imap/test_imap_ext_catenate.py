"""CATENATE (RFC 4469) on real sockets. URL forms and BADURL answers follow a private
Dovecot 2.3 given the same commands (relative URLs only; the URL echoed in BADURL)."""

from __future__ import annotations

import re

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient

ORIGINAL = (
    b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\npreamble\r\n--XX\r\n"
    b"Content-Type: text/plain\r\n\r\nfirst part text\r\n--XX\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQF\r\n--XX--\r\n"
)


@pytest.fixture
def client(imap_server: ImapServer) -> RawClient:
    imap_server.deliver(ORIGINAL)
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    c.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
    c.ok("CREATE Kept")
    return c


def lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def body_of(c: RawClient, mailbox: str, uid: int) -> bytes:
    c.ok(f"EXAMINE {mailbox}")
    line = c.ok(f"UID FETCH {uid} BODY.PEEK[]")[0]
    match = re.search(rb"BODY\[\] \{(\d+)\}\r\n", line)
    assert match, line
    start = match.end()
    return line[start : start + int(match.group(1))]


def appended_uid(lines: list[bytes]) -> int:
    match = re.search(rb"\[APPENDUID \d+ (\d+)\]", lines[-1])
    assert match, lines
    return int(match.group(1))


def test_catenate_builds_the_message(client: RawClient) -> None:
    c = client
    caps = c.ok("CAPABILITY")[0].split()
    assert b"CATENATE" in caps
    assert b"URL-PARTIAL" in caps  # RFC 5550: ;PARTIAL= below (start.length and start)
    head = b"From: b@example.org\r\nSubject: fwd\r\n\r\nSee below:\r\n"
    tail = b"\r\n-- end\r\n"
    lines = c.ok(
        b"APPEND Kept (\\Draft) CATENATE (TEXT "
        + lit(head)
        + b' URL "/INBOX/;UID=1/;SECTION=1" TEXT '
        + lit(tail)
        + b")"
    )
    uid = appended_uid(lines)
    assert body_of(c, "Kept", uid) == head + b"first part text" + tail
    # The whole message, byte for byte; then HEADER, TEXT, a part's MIME header, PARTIAL.
    uid = appended_uid(c.ok('APPEND Kept CATENATE (URL "/INBOX/;UID=1")'))
    assert body_of(c, "Kept", uid) == ORIGINAL
    header_end = ORIGINAL.index(b"\r\n\r\n") + 4
    uid = appended_uid(
        c.ok(
            b'APPEND Kept CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT '
            + lit(b"new body\r\n")
            + b")"
        )
    )
    assert body_of(c, "Kept", uid) == ORIGINAL[:header_end] + b"new body\r\n"
    uid = appended_uid(c.ok('APPEND Kept CATENATE (URL "/INBOX/;UID=1/;SECTION=TEXT")'))
    assert body_of(c, "Kept", uid) == ORIGINAL[header_end:]
    uid = appended_uid(c.ok('APPEND Kept CATENATE (URL "/INBOX/;UID=1/;PARTIAL=6.13")'))
    assert body_of(c, "Kept", uid) == ORIGINAL[6:19]
    uid = appended_uid(c.ok('APPEND Kept CATENATE (URL "/INBOX/;UID=1/;PARTIAL=100")'))
    assert body_of(c, "Kept", uid) == ORIGINAL[100:]
    uid = appended_uid(
        c.ok(
            b'APPEND Kept CATENATE (URL "/INBOX/;UID=1/;SECTION=1/;PARTIAL=6.4" TEXT '
            + lit(b"!")
            + b")"
        )
    )
    assert body_of(c, "Kept", uid) == b"part!"
    # With the UIDVALIDITY the URL names, and %-encoding in the mailbox name.
    status = c.ok("STATUS INBOX (UIDVALIDITY)")[0]
    validity = int(re.search(rb"UIDVALIDITY (\d+)", status).group(1))  # type: ignore[union-attr]
    uid = appended_uid(c.ok(f'APPEND Kept CATENATE (URL "/%49NBOX;UIDVALIDITY={validity}/;UID=1")'))
    assert body_of(c, "Kept", uid) == ORIGINAL
    # Flags and date of the APPEND apply; a TEXT literal8 is accepted (NUL re-encoded).
    uid = appended_uid(
        c.ok(
            b'APPEND Kept (\\Seen) "01-Jan-2020 00:00:00 +0000" CATENATE (TEXT '
            + lit(b"A: b\r\n\r\nx")
            + b")"
        )
    )
    c.ok("EXAMINE Kept")
    line = c.ok(f"UID FETCH {uid} (FLAGS INTERNALDATE)")[0]
    assert b"\\Seen" in line and b'"01-Jan-2020 00:00:00 +0000"' in line


def test_catenate_relative_to_selected_and_multiappend(client: RawClient) -> None:
    c = client
    lines = c.command('APPEND Kept CATENATE (URL ";UID=1")')
    assert lines[-1].split(None, 2)[1:] == [
        b"NO",
        b"[BADURL ;UID=1] Mailbox-relative IMAP URL, but no mailbox selected\r\n",
    ]
    c.ok("SELECT INBOX")
    uid = appended_uid(c.ok('APPEND Kept CATENATE (URL ";UID=1")'))
    assert body_of(c, "Kept", uid) == ORIGINAL
    c.ok("SELECT INBOX")
    uid = appended_uid(c.ok('APPEND Kept CATENATE (URL "/;UID=1/;SECTION=1")'))
    assert body_of(c, "Kept", uid) == b"first part text"
    # MULTIAPPEND mixing CATENATE and plain messages: all stored, in order.
    lines = c.ok(
        b'APPEND Kept CATENATE (URL "/INBOX/;UID=1") '
        + lit(b"X: y\r\n\r\nplain")
        + b" CATENATE (TEXT "
        + lit(b"Z: 1\r\n\r\nz")
        + b")"
    )
    match = re.search(rb"\[APPENDUID \d+ (\d+):(\d+)\]", lines[-1])
    assert match, lines
    first, last = int(match.group(1)), int(match.group(2))
    assert last == first + 2
    assert body_of(c, "Kept", first) == ORIGINAL
    assert body_of(c, "Kept", first + 1) == b"X: y\r\n\r\nplain"
    assert body_of(c, "Kept", last) == b"Z: 1\r\n\r\nz"


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("/INBOX/;UID=999", b"Message not found"),
        ("/INBOX;UIDVALIDITY=1/;UID=1", b"Invalid UIDVALIDITY"),
        ("/Nope/;UID=1", b"Mailbox does not exist"),
        ("/INBOX/;UID=1/;SECTION=7", b"Message not found"),
        ("/INBOX/;UID=1/;SECTION=BOGUS", b"Invalid SECTION or PARTIAL in IMAP URL"),
        ("imap://bob@example.org/INBOX/;UID=1", b"Invalid or unsupported IMAP URL"),
    ],
)
def test_catenate_bad_urls(
    client: RawClient, imap_server: ImapServer, url: str, text: bytes
) -> None:
    c = client
    lines = c.command(
        b"APPEND Kept CATENATE (TEXT " + lit(b"A: b\r\n\r\n") + f' URL "{url}")'.encode()
    )
    assert lines[-1].split()[1] == b"NO", lines
    assert f"[BADURL {url}] ".encode() in lines[-1]
    assert text in lines[-1]
    # Nothing stored, no spooled file left behind.
    assert b"MESSAGES 0" in c.ok("STATUS Kept (MESSAGES)")[0]
    spool = imap_server.ctx.config.data_dir / "tmp" / "imap"
    assert not list(spool.glob("*"))


def test_catenate_syntax_and_size(client: RawClient, imap_server: ImapServer) -> None:
    c = client
    for bad in (
        "APPEND Kept CATENATE ()",
        "APPEND Kept CATENATE (URL)",
        'APPEND Kept CATENATE (TEXT "x")',
        'APPEND Kept CATENATE (FOO "x")',
    ):
        assert c.command(bad)[-1].split()[1] == b"BAD", bad
    # The built message may not pass the APPEND limit (8 MiB here): RFC 4469 / RFC 7889.
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 3000  # 3 MB
    imap_server.deliver(big)
    lines = c.command(
        'APPEND Kept CATENATE (URL "/INBOX/;UID=2" URL "/INBOX/;UID=2" URL "/INBOX/;UID=2")'
    )
    assert lines[-1].split()[1:3] == [b"NO", b"[TOOBIG]"], lines
    assert b"MESSAGES 0" in c.ok("STATUS Kept (MESSAGES)")[0]
    spool = imap_server.ctx.config.data_dir / "tmp" / "imap"
    assert not list(spool.glob("*"))
    uid = appended_uid(c.ok('APPEND Kept CATENATE (URL "/INBOX/;UID=2" URL "/INBOX/;UID=2")'))
    assert body_of(c, "Kept", uid) == big + big
