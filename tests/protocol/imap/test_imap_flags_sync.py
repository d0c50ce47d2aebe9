"""Keywords and the FLAGS response across sessions (issue 17 item 6, RFC 9051 7.3.5).

FLAGS only grows while a mailbox is selected and goes out, with PERMANENTFLAGS, before
the first FETCH that shows a keyword the client was not told of. Each expected sequence
was compared with Dovecot 2.3 on the same script.
"""

from __future__ import annotations

import re

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient

_FLAGS = re.compile(rb"\* FLAGS \(([^)]*)\)\r\n")


def login(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "{PASSWORD}"')
    return c


def flags_of(lines: list[bytes]) -> list[set[bytes]]:
    """Every ``* FLAGS`` list in ``lines``, in order."""
    out = []
    for line in lines:
        match = _FLAGS.fullmatch(line)
        if match:
            out.append(set(match.group(1).split()))
    return out


def test_keyword_from_another_session_announces_flags_before_fetch(
    imap_server: ImapServer,
) -> None:
    imap_server.deliver(make_message("one"))
    a, b = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 1 +FLAGS ($Foo)")
    lines = b.ok("NOOP")
    # Dovecot 2.3: * FLAGS, * OK [PERMANENTFLAGS], then the FETCH with the keyword.
    assert lines[0] == b"* FLAGS ($Foo \\Answered \\Deleted \\Draft \\Flagged \\Seen)\r\n"
    assert lines[1] == (
        b"* OK [PERMANENTFLAGS ($Foo \\* \\Answered \\Deleted \\Draft \\Flagged \\Seen)]"
        b" Flags permitted\r\n"
    )
    assert lines[2] == b"* 1 FETCH (FLAGS ($Foo) UID 1)\r\n"
    # Known now: the next change with it sends no FLAGS again.
    a.ok("STORE 1 -FLAGS ($Foo)")
    a.ok("STORE 1 +FLAGS ($Foo)")
    assert not flags_of(b.ok("NOOP"))
    a.close()
    b.close()


def test_store_never_shrinks_flags(imap_server: ImapServer) -> None:
    """a still sees message 1 holding $Foo when b removes it; a's STORE must not send a
    FLAGS without $Foo (the FETCH dropping it follows, RFC 9051 7.3.5)."""
    imap_server.deliver(make_message("one"))
    imap_server.deliver(make_message("two"))
    a, b = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 1 +FLAGS ($Foo)")
    b.ok("NOOP")
    b.ok("STORE 1 -FLAGS ($Foo)")
    lines = a.ok("STORE 1 +FLAGS (\\Seen)")
    assert not flags_of(lines), lines  # no FLAGS at all: nothing new, and never smaller
    assert lines[0].startswith(b"* 1 FETCH (FLAGS (") and b"$Foo" not in lines[0]
    # Nobody holds $Foo now, yet FLAGS keeps it for the rest of the selection.
    lines = a.ok("STORE 2 FLAGS ($Bar)")
    assert flags_of(lines) == [
        {b"$Foo", b"$Bar", b"\\Answered", b"\\Deleted", b"\\Draft", b"\\Flagged", b"\\Seen"}
    ]
    assert lines.index(next(x for x in lines if x.startswith(b"* FLAGS"))) < lines.index(
        next(x for x in lines if b"FETCH" in x)
    )
    # A new SELECT starts from what the messages hold.
    fresh = flags_of(a.ok("SELECT INBOX"))
    assert fresh == [{b"$Bar", b"\\Answered", b"\\Deleted", b"\\Draft", b"\\Flagged", b"\\Seen"}]
    a.close()
    b.close()


def test_fetch_that_sets_seen_announces_keywords_first(imap_server: ImapServer) -> None:
    """FETCH BODY[] stores \\Seen and gets back flags another session added: FLAGS first."""
    imap_server.deliver(make_message("one"))
    a, b = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS ($Later)")
    lines = a.ok("FETCH 1 BODY[HEADER.FIELDS (SUBJECT)]")
    first_flags = next(i for i, x in enumerate(lines) if x.startswith(b"* FLAGS"))
    first_kw_fetch = next(i for i, x in enumerate(lines) if b"FETCH" in x and b"$Later" in x)
    assert first_flags < first_kw_fetch, lines
    assert b"$Later" in lines[first_flags]
    a.close()
    b.close()


def test_read_only_session_gets_empty_permanentflags(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("one"))
    a, ro = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    ro.ok("EXAMINE INBOX")
    a.ok("STORE 1 +FLAGS ($Foo)")
    lines = ro.ok("NOOP")
    assert lines[0].startswith(b"* FLAGS (") and b"$Foo" in lines[0]
    assert lines[1] == b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n"
    assert lines[2].startswith(b"* 1 FETCH (FLAGS ($Foo)")
    a.close()
    ro.close()


def test_arrival_with_new_keyword_announces_flags(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("one"))
    a, b = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    msg = make_message("two")
    b.write(b"b1 APPEND INBOX ($Arrived) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b.until(b"b1")[-1].startswith(b"b1 OK")
    lines = a.ok("NOOP")
    assert flags_of(lines) and b"$Arrived" in next(x for x in lines if x.startswith(b"* FLAGS"))
    fetched = a.ok("FETCH 2 FLAGS")
    assert b"$Arrived" in fetched[0]
    a.close()
    b.close()
