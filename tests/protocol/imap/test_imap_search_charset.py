"""Issue 17 item 14: SEARCH/SORT/THREAD strings are decoded per the command's CHARSET.

RFC 9051 6.4.4: strings are in the named charset; an unknown one gets a tagged
NO [BADCHARSET]. RFC 6855 3 (with erratum 4029): after ENABLE UTF8=ACCEPT a charset label
other than UTF-8 SHOULD be BAD. RFC 9051 9: quoted strings may carry UTF-8 once IMAP4rev2
is enabled. Compared with a private Dovecot 2.3: CHARSET ISO-8859-1 + a literal with
0xE9 finds "café" (we answered BAD invalid UTF-8), CHARSET UTF-8 or US-ASCII with that
byte is BAD, an unknown charset is NO [BADCHARSET].
"""

from __future__ import annotations

import pytest

from tests.protocol.imap.conftest import ImapServer
from tests.protocol.imap.rawclient import RawClient
from tests.protocol.imap.test_updates import login

LATIN1_BODY = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: menu\r\n"
    b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\nUn caf\xe9 cr\xe8me, s'il vous pla\xeet\r\n"
)
UTF8_MESSAGE = (
    b"From: c@example.org\r\nTo: b@example.org\r\n"
    b"Subject: =?UTF-8?B?0L/RgNC40LLQtdGCINC80LjRgA==?=\r\n"  # "привет мир"
    b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\nPrice: 5 \xe2\x82\xac, na\xc3\xafve\r\n"
)


@pytest.fixture
def box(imap_server: ImapServer) -> ImapServer:
    imap_server.deliver(LATIN1_BODY)
    imap_server.deliver(UTF8_MESSAGE)
    return imap_server


def selected(server: ImapServer, enable: str | None = None) -> RawClient:
    c = login(server)
    if enable:
        c.ok(f"ENABLE {enable}")
    c.ok("SELECT INBOX")
    return c


def send(c: RawClient, tag: bytes, data: bytes) -> list[bytes]:
    c.write(tag + b" " + data + b"\r\n")
    return c.until(tag)


def literal(text: str, charset: str) -> bytes:
    raw = text.encode(charset)
    return b"{%d+}\r\n" % len(raw) + raw


@pytest.mark.parametrize(
    ("charset", "key", "text", "expected"),
    [
        ("ISO-8859-1", b"BODY", "café", b"* SEARCH 1\r\n"),  # the case
        ("iso-8859-1", b"TEXT", "crème", b"* SEARCH 1\r\n"),
        ("ISO-8859-15", b"BODY", "€", b"* SEARCH 2\r\n"),
        ("windows-1252", b"BODY", "5 €", b"* SEARCH 2\r\n"),
        ("KOI8-R", b"SUBJECT", "привет", b"* SEARCH 2\r\n"),
        ("windows-1251", b"SUBJECT", "мир", b"* SEARCH 2\r\n"),
        ("UTF-8", b"BODY", "naïve", b"* SEARCH 2\r\n"),
        ("US-ASCII", b"BODY", "caf", b"* SEARCH 1\r\n"),
        ("latin1", b"BODY", "plaît", b"* SEARCH 1\r\n"),
    ],
)
def test_search_strings_decoded_per_charset(
    box: ImapServer, charset: str, key: bytes, text: str, expected: bytes
) -> None:
    c = selected(box)
    lines = send(
        c, b"s1", b"SEARCH CHARSET " + charset.encode() + b" " + key + b" " + literal(text, charset)
    )
    assert lines == [expected, b"s1 OK SEARCH completed\r\n"]
    # nested keys carry the charset too
    lines = send(
        c,
        b"s2",
        b"UID SEARCH CHARSET "
        + charset.encode()
        + b" OR NOT ALL ("
        + key
        + b" "
        + literal(text, charset)
        + b")",
    )
    assert lines[0].startswith(b"* SEARCH ") and lines[-1].startswith(b"s2 OK")
    c.close()


def test_sort_and_thread_decode_per_charset(box: ImapServer) -> None:
    c = selected(box)
    lines = send(c, b"s1", b"SORT (SUBJECT) KOI8-R SUBJECT " + literal("мир", "koi8-r"))
    assert lines == [b"* SORT 2\r\n", b"s1 OK SORT completed\r\n"]
    lines = send(c, b"t1", b"THREAD ORDEREDSUBJECT ISO-8859-1 BODY " + literal("café", "latin-1"))
    assert lines[0] == b"* THREAD (1)\r\n" and lines[1].startswith(b"t1 OK")
    c.close()


@pytest.mark.parametrize(
    ("charset", "raw"),
    [
        (b"UTF-8", b"\xe9"),  # not UTF-8: Dovecot BAD too
        (b"US-ASCII", b"\xe9"),
        (None, b"\xe9"),  # no CHARSET: UTF-8
        (b"ISO-2022-JP", b"\x1b$B\xff"),
    ],
)
def test_bytes_invalid_in_charset_are_bad(
    box: ImapServer, charset: bytes | None, raw: bytes
) -> None:
    c = selected(box)
    head = b"SEARCH " + (b"CHARSET " + charset + b" " if charset else b"")
    lines = send(c, b"s1", head + b"BODY {%d+}\r\n" % len(raw) + raw)
    assert len(lines) == 1 and lines[0].startswith(b"s1 BAD "), lines
    c.ok("NOOP")
    c.close()


@pytest.mark.parametrize(
    "command",
    [
        b"SEARCH CHARSET X-UNKNOWN BODY {1+}\r\n\xe9",
        b'SEARCH CHARSET X-UNKNOWN BODY "x"',
        b"SEARCH CHARSET base64 BODY x",  # a Python codec, but no character set
        b"SEARCH CHARSET unicode_escape BODY x",
        b"SORT (DATE) X-UNKNOWN ALL",
        b"THREAD REFERENCES rot13 ALL",
    ],
)
def test_unknown_charset_is_badcharset(box: ImapServer, command: bytes) -> None:
    c = selected(box)
    assert send(c, b"s1", command) == [
        b"s1 NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n"
    ]
    c.close()


def test_utf8_quoted_strings_after_enable(box: ImapServer) -> None:
    quoted = 'SEARCH BODY "naïve"'.encode()
    c = selected(box)
    assert send(c, b"s1", quoted)[0].startswith(b"s1 BAD")  # RFC 3501: quoted is 7-bit
    c.close()
    for enable in ("IMAP4rev2", "UTF8=ACCEPT"):
        c = selected(box, enable)
        lines = send(c, b"s2", quoted)
        assert lines[-1].startswith(b"s2 OK"), (enable, lines)
        assert b"* SEARCH 2\r\n" in lines or b"* ESEARCH" in lines[0]
        c.close()


def test_non_utf8_charset_after_utf8_accept_is_bad(box: ImapServer) -> None:
    c = selected(box, "UTF8=ACCEPT")
    # RFC 6855 3 and erratum 4029: conflicting charset labels SHOULD get BAD
    for command in (
        b"SEARCH CHARSET ISO-8859-1 BODY x",
        b"SEARCH CHARSET US-ASCII BODY x",
        b"SORT (DATE) ISO-8859-1 ALL",
        b"THREAD REFERENCES US-ASCII ALL",
    ):
        lines = send(c, b"s1", command)
        assert len(lines) == 1 and lines[0].startswith(b"s1 BAD "), (command, lines)
    lines = send(c, b"s2", 'SEARCH CHARSET UTF-8 BODY "naïve"'.encode())
    assert lines == [b"* SEARCH 2\r\n", b"s2 OK SEARCH completed\r\n"]
    assert send(c, b"s3", b"SORT (DATE) UTF-8 ALL")[-1].startswith(b"s3 OK")
    # an unknown charset is still NO [BADCHARSET] (RFC 9051 6.4.4)
    assert send(c, b"s4", b"SEARCH CHARSET X-UNKNOWN ALL")[0].startswith(b"s4 NO [BADCHARSET")
    c.close()
