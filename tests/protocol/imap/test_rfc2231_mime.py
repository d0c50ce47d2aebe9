"""BODYSTRUCTURE decodes RFC 2231 parameters; BODY[n.MIME] stops before a boundary's CRLF
(real IMAP connection)."""

from __future__ import annotations

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient
from tests.unit.mime.test_rfc2231 import CONTINUED, EMPTY_BODIES

TITLED = (
    b"From: a@b\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary*=us-ascii''outer\r\n\r\n"
    b"--outer\r\nContent-Type: text/plain; charset=us-ascii;\r\n"
    b" title*0*=us-ascii'en'This%20is%20;\r\n title*1*=%2A%2A%2Afun%2A%2A%2A\r\n"
    b'Content-Disposition: attachment; filename*0="long"; filename*1="name.txt"\r\n'
    b"\r\nhello\r\n--outer--\r\n"
)


def _client(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "{PASSWORD}"')
    c.ok("SELECT INBOX")
    return c


def test_bodystructure_decodes_rfc2231(imap_server: ImapServer) -> None:
    imap_server.deliver(TITLED)
    imap_server.deliver(CONTINUED)
    c = _client(imap_server)
    try:
        first = c.ok("FETCH 1 BODYSTRUCTURE")[0]
        assert b'("charset" "us-ascii" "title" "This is ***fun***")' in first
        assert b'("attachment" ("filename" "longname.txt"))' in first
        assert b'"mixed" ("boundary" "outer")' in first
        second = c.ok("FETCH 2 (BODYSTRUCTURE BODY[2])")[0]
        assert b'"mixed" ("boundary" "b1XY")' in second
        assert b"BODY[2] {5}\r\nworld" in second
    finally:
        c.close()


def test_mime_header_excludes_the_boundary_crlf(imap_server: ImapServer) -> None:
    imap_server.deliver(EMPTY_BODIES)
    c = _client(imap_server)
    try:
        got = c.ok("FETCH 1 (BODY[1.MIME] BODY[2.MIME] BODY[3.MIME] BODY[4.HEADER])")[0]
        assert b"BODY[1.MIME] {26}\r\nContent-Type: text/plain\r\n " in got
        assert b"BODY[2.MIME] {24}\r\nContent-Type: text/plain " in got
        assert b"BODY[3.MIME] {28}\r\n" in got
        assert b"BODY[4.HEADER] {12}\r\nSubject: x\r\n" in got
    finally:
        c.close()


BASE64_MESSAGE = (
    b"From: a@b\r\nSubject: t\r\nContent-Type: multipart/mixed; boundary=wrap\r\n\r\n"
    b"--wrap\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"RnJvbTogaW5uZXJAZXhhbXBsZS5jb20NClN1YmplY3Q6IGlubmVyDQoNCklubmVyIGJvZHkuDQo=\r\n"
    b"--wrap--\r\n"
)


def test_a_base64_message_part_keeps_the_body_type_msg_grammar(imap_server: ImapServer) -> None:
    """RFC 9051 7.5.2 body-type-msg: "message" "rfc822" is followed by an envelope, a body
    and a line count, even for a part sent base64 (RFC 2046 5.2.1 forbids that encoding;
    Dovecot 2.3.19 also parses the encoded text as the message); BINARY[1] decodes it."""
    imap_server.deliver(BASE64_MESSAGE)
    c = _client(imap_server)
    try:
        got = c.ok("FETCH 1 (BODYSTRUCTURE BINARY.PEEK[1])")[0]
        assert (
            b'("message" "rfc822" NIL NIL NIL "base64" 76 (NIL NIL NIL NIL NIL NIL NIL NIL NIL'
            b' NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 0'
        ) in got
        inner = b"From: inner@example.com\r\nSubject: inner\r\n\r\nInner body.\r\n"
        assert b"BINARY[1] {%d}\r\n" % len(inner) + inner in got
    finally:
        c.close()
