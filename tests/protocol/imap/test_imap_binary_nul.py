"""Issue 17 item 11: NUL octets APPENDed in a literal8 and quoted-printable decoding.

RFC 9051 4.3: a literal carries no NUL, so BODY[] of a message APPENDed with NUL in a
literal8 (RFC 3516 4.4) must not return them; the part is stored base64 (Dovecot
2.3.19 re-encodes a binary part the same way) and BINARY[] gives the octets back.
RFC 2045 6.7: trailing whitespace of a quoted-printable line is deleted and "=" followed
by whitespace is a soft line break (Dovecot 2.3.19 answers BINARY.SIZE 41 below)."""

from __future__ import annotations

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient

MULTIPART = (
    b"From: a@b\r\nSubject: t\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
    b"\r\nab\x00cd\r\nef\r\n"
    b"--b1\r\nContent-Type: text/plain\r\n\r\nx\x00y\r\n--b1--\r\n"
)
SINGLE = b"From: a@b\r\nSubject: t\r\n\r\nab\x00cd\r\n"
QP = (
    b"From: a@b\r\nSubject: qp\r\nContent-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"line one with trailing   \r\nsoft =  \r\nbreak=\r\n end=3D\r\n"
)


def _client(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "{PASSWORD}"')
    return c


def _append8(c: RawClient, message: bytes) -> None:
    c.counter += 1
    tag = b"a%d" % c.counter
    c.write(tag + b" APPEND INBOX ~{%d+}\r\n" % len(message) + message + b"\r\n")
    lines = c.until(tag)
    assert b" OK " in lines[-1], lines


def _fetch(c: RawClient, items: str) -> bytes:
    return c.ok("FETCH 1 " + items)[0]


def test_nul_parts_are_stored_base64_and_binary_returns_them(imap_server: ImapServer) -> None:
    c = _client(imap_server)
    try:
        _append8(c, MULTIPART)
        c.ok("SELECT INBOX")
        body = _fetch(c, "BODY.PEEK[]")
        assert b"\x00" not in body
        assert b"BODY[] {" in body  # a plain literal, not a literal8
        assert b"Content-Transfer-Encoding: base64\r\n\r\nYWIAY2QNCmVm\r\n--b1" in body
        assert b"hello\r\n--b1" in body  # the NUL-free part is untouched
        structure = _fetch(c, "BODYSTRUCTURE")
        assert b'("application" "octet-stream" NIL NIL NIL "base64" 12 ' in structure
        got = _fetch(c, "(BINARY.PEEK[2] BINARY.PEEK[3] BINARY.SIZE[2])")
        assert b"BINARY[2] ~{9}\r\nab\x00cd\r\nef" in got
        assert b"BINARY[3] ~{3}\r\nx\x00y" in got
        assert b"BINARY.SIZE[2] 9" in got
    finally:
        c.close()


def test_single_part_message_with_nul(imap_server: ImapServer) -> None:
    c = _client(imap_server)
    try:
        _append8(c, SINGLE)
        c.ok("SELECT INBOX")
        body = _fetch(c, "BODY.PEEK[]")
        assert b"\x00" not in body
        assert b"Content-Transfer-Encoding: base64\r\n\r\nYWIAY2QNCg==\r\n" in body
        assert b"BINARY[1] ~{7}\r\nab\x00cd\r\n" in _fetch(c, "BINARY.PEEK[1]")
    finally:
        c.close()


def test_nul_free_literal8_round_trips_unchanged(imap_server: ImapServer) -> None:
    message = b"From: a@b\r\nSubject: t\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n"
    c = _client(imap_server)
    try:
        _append8(c, message)
        c.ok("SELECT INBOX")
        assert _fetch(c, "BODY.PEEK[]").endswith(b"{%d}\r\n" % len(message) + message + b")\r\n")
    finally:
        c.close()


def test_quoted_printable_soft_breaks_and_trailing_space(imap_server: ImapServer) -> None:
    imap_server.deliver(QP)
    c = _client(imap_server)
    try:
        c.ok("SELECT INBOX")
        got = _fetch(c, "(BINARY.PEEK[1] BINARY.SIZE[1])")
        assert b"BINARY[1] {41}\r\nline one with trailing\r\nsoft break end=\r\n" in got
        assert b"BINARY.SIZE[1] 41" in got
        assert c.ok('SEARCH BODY "soft break end="')[0] == b"* SEARCH 1\r\n"
        assert c.ok('SEARCH BODY "trailing soft"')[0] == b"* SEARCH\r\n"
    finally:
        c.close()


def test_large_nul_part_streams_through_base64(imap_server: ImapServer) -> None:
    """A part larger than one encoding chunk: full 76-character lines, octets back."""
    payload = bytes(range(256)) * 800  # 204,800 octets, NUL among them
    message = (
        b"From: a@b\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--b1--\r\n"
    )
    c = _client(imap_server)
    try:
        _append8(c, message)
        c.ok("SELECT INBOX")
        body = _fetch(c, "BODY.PEEK[1]")
        encoded = body[body.index(b"}\r\n") + 3 : body.rindex(b")")]
        lines = encoded.split(b"\r\n")
        assert all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76
        assert b"\x00" not in body
        got = _fetch(c, "(BINARY.SIZE[1] BINARY.PEEK[1])")
        assert b"BINARY.SIZE[1] %d" % len(payload) in got
        assert b"BINARY[1] ~{%d}\r\n" % len(payload) + payload in got
    finally:
        c.close()
