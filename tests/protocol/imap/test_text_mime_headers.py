"""SEARCH TEXT matches the header fields of the parts and of attached messages (RFC 9051
6.4.4: "the header (including MIME header fields) or body"); BODY does not. Expected
answers are Dovecot 2.3.19's on the same message."""

from __future__ import annotations

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient

MESSAGE = (
    b"From: a@b\r\nSubject: t\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"preamblezz\r\n--b1\r\nContent-Type: text/plain\r\n"
    b"X-Part: zzqq =?utf-8?q?K=C3=B6ln?=\r\n\r\nhello\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: innersubj\r\n\r\ninnerbody\r\n"
    b"--b1--\r\nepiloguezz\r\n"
)


def test_text_searches_part_headers(imap_server: ImapServer) -> None:
    imap_server.deliver(MESSAGE)
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    try:
        c.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
        c.ok("SELECT INBOX")
        expected = {
            "TEXT zzqq": b"* SEARCH 1",
            "TEXT X-Part": b"* SEARCH 1",
            "TEXT innersubj": b"* SEARCH 1",
            "BODY zzqq": b"* SEARCH",
            "BODY innersubj": b"* SEARCH",
            "TEXT epiloguezz": b"* SEARCH",
        }
        got = {k: c.ok("SEARCH " + k)[0].rstrip() for k in expected}
        assert got == expected
        c.write(b"u1 SEARCH CHARSET UTF-8 TEXT {5}\r\n")
        assert c.line().startswith(b"+")
        c.write("köln\r\n".encode())
        assert c.until(b"u1")[0].rstrip() == b"* SEARCH 1"  # encoded word decoded
    finally:
        c.close()
