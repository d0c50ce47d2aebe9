"""ENVELOPE names from comments, merged To/Cc, and SEARCH FROM/TO on parsed addresses,
over a real IMAP connection. Expected answers are Dovecot 2.3.19's on the same message."""

from __future__ import annotations

from tests.protocol.imap.conftest import ImapServer
from tests.protocol.imap.rawclient import RawClient

MESSAGE = (
    b"From: user(c1)@d(c2) (Real Name)\r\n"
    b"To: (Comment) to@d, Foo Bar <c@d>\r\n"
    b"To: second@to\r\n"
    b'Cc: "a\\"b" <x@y>, =?utf-8?q?Caf=C3=A9?= <cafe@x>\r\n'
    b"Cc: third@cc\r\n"
    b"Subject: comments\r\n"
    b"\r\n"
    b"body\r\n"
)


def _client(server: ImapServer) -> RawClient:
    from tests.protocol.imap.conftest import PASSWORD

    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f"LOGIN {server.user} {PASSWORD!r}".replace("'", '"'))
    c.ok("SELECT INBOX")
    return c


def _search(c: RawClient, criteria: str) -> bytes:
    lines = c.ok("SEARCH " + criteria)
    return next(line for line in lines if line.startswith(b"* SEARCH")).strip()


def test_envelope_uses_comment_names_and_merges_fields(imap_server: ImapServer) -> None:
    imap_server.deliver(MESSAGE)
    c = _client(imap_server)
    try:
        lines = c.ok("FETCH 1 ENVELOPE")
        envelope = lines[0]
        assert b'(("Real Name" NIL "user" "d"))' in envelope
        assert b'((NIL NIL "to" "d")("Foo Bar" NIL "c" "d")(NIL NIL "second" "to"))' in envelope
        assert b'(NIL NIL "third" "cc"))' in envelope
    finally:
        c.close()


def test_search_address_keys_match_the_parsed_address(imap_server: ImapServer) -> None:
    imap_server.deliver(MESSAGE)
    c = _client(imap_server)
    try:
        found, none = b"* SEARCH 1", b"* SEARCH"
        assert _search(c, "FROM user@d") == found  # comments inside the address dropped
        assert _search(c, 'FROM "Real Name"') == found  # the comment is the name
        assert _search(c, 'FROM "\\"Real Name\\" <user@d>"') == found
        assert _search(c, "FROM c1") == none
        assert _search(c, 'HEADER From "d(c2)"') == found  # HEADER stays on the raw field
        assert _search(c, "TO Comment") == none
        assert _search(c, "TO second@to") == found  # the repeated To field
        assert _search(c, 'TO "\\"Foo Bar\\" <c@d>"') == found
        assert _search(c, "CC Caf") == found  # encoded words decoded after parsing
        assert _search(c, "CC =?utf") == none
    finally:
        c.close()
