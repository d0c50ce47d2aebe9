"""Issue 17 item 10 on the wire: "~foo" is a mailbox name; literal8 only in APPEND."""

from __future__ import annotations

from tests.protocol.imap.conftest import ImapServer
from tests.protocol.imap.test_updates import login


def test_tilde_mailbox_names_over_the_wire(imap_server: ImapServer) -> None:
    c = login(imap_server)
    # Before the fix: "BAD bad literal". Dovecot parses it too (its Maildir layout then
    # refuses names starting with "~"; ours escapes "~" on disk).
    assert c.command("SELECT ~foo")[-1].split(b" ", 1)[1].startswith(b"NO [NONEXISTENT]")
    c.ok("CREATE ~foo")
    c.ok("SUBSCRIBE ~foo")
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" ~foo\r\n' in c.ok(
        'LIST "" ~* RETURN (SUBSCRIBED)'
    )
    assert b"[READ-WRITE]" in c.ok("SELECT ~foo")[-1]
    appended = c.ok("APPEND ~foo ~{12+}\r\nSubject: x\r\n")  # literal8 is append-data
    assert b"* 1 EXISTS\r\n" in appended + c.ok("NOOP")
    # RFC 3516 4.2: literal8 is append-data only; Dovecot: "literal8 not allowed here"
    c.write(b"t1 SELECT ~{5+}\r\nINBOX\r\n")
    assert c.until(b"t1") == [b"t1 BAD literal8 not allowed here\r\n"]
    c.write(b"t2 SEARCH BODY ~{1+}\r\nx\r\n")
    assert c.until(b"t2") == [b"t2 BAD literal8 not allowed here\r\n"]
    c.ok("NOOP")
    c.close()
