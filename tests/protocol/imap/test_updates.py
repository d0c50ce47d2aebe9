"""Untagged updates across sessions, IDLE, CONDSTORE and QRESYNC (RFC 7162)."""

from __future__ import annotations

import re

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient


def grab(pattern: bytes, data: bytes) -> bytes:
    """The first group of ``pattern`` in ``data`` (the test fails when it is absent)."""
    match = re.search(pattern, data)
    assert match is not None, (pattern, data)
    return match.group(1)


def login(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "{PASSWORD}"')
    return c


def test_idle_wakes_on_delivery_and_other_sessions(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("first"))
    a, b = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.write(b"i1 IDLE\r\n")
    assert a.line().startswith(b"+ ")
    imap_server.deliver(make_message("second"))
    assert a.line() == b"* 2 EXISTS\r\n"
    assert a.line() == b"* 2 RECENT\r\n"  # a saw both first (RFC 3501 2.3.2)
    b.ok("STORE 1 +FLAGS (\\Flagged)")
    assert re.match(rb"\* 1 FETCH \(FLAGS \(.*\\Flagged.*\) UID 1\)\r\n", a.line())
    b.ok("STORE 1 +FLAGS (\\Deleted)")
    a.line()  # the \Deleted flag change
    b.ok("EXPUNGE")
    assert a.line() == b"* 1 EXPUNGE\r\n"
    a.write(b"DONE\r\n")
    assert a.until(b"i1")[-1].startswith(b"i1 OK")
    a.close()
    b.close()


def test_no_expunge_during_fetch_but_after_noop(imap_server: ImapServer) -> None:
    for i in range(3):
        imap_server.deliver(make_message(f"m{i}"))
    a, b = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    lines = a.ok("FETCH 1:3 (UID)")  # RFC 9051 7.5.1: no EXPUNGE during FETCH
    assert not any(b"EXPUNGE" in line for line in lines)
    assert sum(b"FETCH (UID" in line for line in lines) == 3
    lines = a.ok("NOOP")
    assert b"* 2 EXPUNGE\r\n" in lines
    lines = a.ok("FETCH 1:* (UID)")
    assert [grab(rb"UID (\d+)", x) for x in lines[:-1]] == [b"1", b"3"]
    a.close()
    b.close()


def test_condstore_and_unchangedsince(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("one"))
    imap_server.deliver(make_message("two"))
    c = login(imap_server)
    lines = c.ok("SELECT INBOX (CONDSTORE)")
    highest = int(grab(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)))
    lines = c.ok("FETCH 1:* (FLAGS MODSEQ)")
    modseqs = [int(grab(rb"MODSEQ \((\d+)\)", x)) for x in lines[:-1]]
    assert len(modseqs) == 2 and max(modseqs) <= highest
    lines = c.ok(f"STORE 1 (UNCHANGEDSINCE {modseqs[0]}) +FLAGS (\\Seen)")
    new = int(grab(rb"MODSEQ \((\d+)\)", lines[0]))
    assert new > highest
    lines = c.command(f"STORE 1 (UNCHANGEDSINCE {modseqs[0]}) +FLAGS (\\Flagged)")
    assert re.search(rb"OK \[MODIFIED 1\]", lines[-1])
    lines = c.ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")
    assert len(lines) == 2 and b"MODSEQ" in lines[0] and lines[0].startswith(b"* 1 FETCH")
    lines = c.ok(f"SEARCH MODSEQ {new}")
    assert lines[0] == b"* SEARCH 1 (MODSEQ %d)\r\n" % new
    lines = c.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
    assert lines[0] == b"* STATUS INBOX (HIGHESTMODSEQ %d MESSAGES 2)\r\n" % new
    c.close()


def test_qresync_select_and_vanished(imap_server: ImapServer) -> None:
    for i in range(4):
        imap_server.deliver(make_message(f"q{i}"))
    c = login(imap_server)
    c.ok("ENABLE QRESYNC")
    lines = c.ok("SELECT INBOX")
    blob = b"".join(lines)
    uidvalidity = int(grab(rb"UIDVALIDITY (\d+)", blob))
    modseq = int(grab(rb"HIGHESTMODSEQ (\d+)", blob))
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    lines = c.ok("EXPUNGE")
    assert b"* VANISHED 2\r\n" in lines  # RFC 7162 3.2.10: VANISHED instead of EXPUNGE
    c.ok("UID STORE 3 +FLAGS (\\Answered)")
    c.ok("UNSELECT")
    lines = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:4))")
    assert b"* VANISHED (EARLIER) 2\r\n" in lines
    fetches = [x for x in lines if b" FETCH " in x]
    assert len(fetches) == 1 and b"UID 3" in fetches[0] and b"\\Answered" in fetches[0]
    lines = c.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 2\r\n"
    c.close()


def test_compress_deflate(imap_server: ImapServer) -> None:
    import zlib

    imap_server.deliver(make_message("zipped", "z" * 5000 + "\r\n"))
    c = login(imap_server)
    lines = c.command("COMPRESS DEFLATE")
    assert lines[-1].endswith(b"OK DEFLATE active\r\n")
    c.inflate = zlib.decompressobj(-15)
    c.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.ok("SELECT INBOX")
    lines = c.ok("FETCH 1 BODY.PEEK[TEXT]")
    assert b"z" * 5000 in lines[0]
    assert b"COMPRESSIONACTIVE" in c.command("COMPRESS DEFLATE")[-1]
    c.close()


def test_enable_utf8_and_id_namespace_quota(imap_server: ImapServer) -> None:
    c = login(imap_server)
    lines = c.ok('ID ("name" "pytest" "version" "1")')
    assert lines[0].startswith(b'* ID ("name" "Pillarbox"')
    assert c.ok("NAMESPACE")[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    lines = c.ok("GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT INBOX "User quota"\r\n'
    assert re.match(rb'\* QUOTA "User quota" \(STORAGE \d+ 10240\)', lines[1])
    assert c.ok("ENABLE UTF8=ACCEPT CONDSTORE")[0] == b"* ENABLED UTF8=ACCEPT CONDSTORE\r\n"
    c.ok('CREATE "Grüße"')
    lines = c.ok('LIST "" "Gr*"')
    assert lines[0] == '* LIST (\\HasNoChildren) "/" "Grüße"\r\n'.encode()
    c.close()


def test_list_extended_and_status(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok("CREATE Lists/Sub")
    c.ok("SUBSCRIBE Lists/Sub")
    lines = c.ok('LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)')
    assert lines[:-1] == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Lists/Sub\r\n']
    lines = c.ok('LIST (SPECIAL-USE) "" "*"')
    uses = {grab(rb'"/" (\S+)', x) for x in lines[:-1]}
    assert uses == {b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"}
    lines = c.ok('LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))')
    assert b"* STATUS INBOX (MESSAGES 0 UNSEEN 0)\r\n" in lines
    assert c.ok('LIST "" ""')[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    lines = c.ok('LIST "Lists/" "%"')
    assert lines[:-1] == [b'* LIST (\\HasNoChildren) "/" Lists/Sub\r\n']
    c.ok("CREATE Mine (USE (\\Archive))")
    c.close()


def test_sort_and_thread(imap_server: ImapServer) -> None:
    imap_server.deliver(
        make_message("Re: beta", "b\r\n", References="<root@x>", In_Reply_To="<root@x>")
    )
    imap_server.deliver(make_message("alpha", "a\r\n" * 50))
    root = make_message("beta", "r\r\n").replace(
        b"Message-ID: <", b"Message-ID: <root@x>\r\nX-Old-ID: <"
    )
    imap_server.deliver(root)
    c = login(imap_server)
    c.ok("SELECT INBOX")
    assert c.ok("SORT (SUBJECT) UTF-8 ALL")[0] == b"* SORT 2 1 3\r\n"
    assert c.ok("SORT (REVERSE SIZE) UTF-8 ALL")[0].startswith(b"* SORT 2 ")
    assert c.ok("UID SORT (ARRIVAL) UTF-8 ALL")[0] == b"* SORT 1 2 3\r\n"
    assert c.ok("SORT (DISPLAYFROM) UTF-8 SUBJECT beta")[0] == b"* SORT 1 3\r\n"
    assert (
        c.ok("THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == b"* THREAD (1 3)(2)\r\n"
    )  # equal dates: by sequence
    assert c.ok("THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (2)(3 1)\r\n"
    c.close()


def test_search_utf8_literal_and_append_literal8(imap_server: ImapServer) -> None:
    from tests.protocol.imap.test_messages import NESTED

    imap_server.deliver(NESTED)
    imap_server.deliver(make_message("plain"))
    c = login(imap_server)
    c.ok("SELECT INBOX")
    word = "café".encode()
    c.write(b"s1 SEARCH CHARSET UTF-8 SUBJECT {%d}\r\n" % len(word))
    assert c.line().startswith(b"+ ")
    c.write(word + b"\r\n")
    lines = c.until(b"s1")
    assert lines[0] == b"* SEARCH 1\r\n" and lines[-1].startswith(b"s1 OK")
    assert c.ok("SEARCH TEXT lines")[0] == b"* SEARCH 1\r\n"  # decoded quoted-printable
    message = make_message("binary", "nul\x00byte\r\n")
    c.write(b"a1 APPEND INBOX ~{%d+}\r\n" % len(message) + message + b"\r\n")
    assert re.search(rb"a1 OK \[APPENDUID \d+ 3\]", c.until(b"a1")[-1])
    lines = c.ok("FETCH 3 BINARY.PEEK[1]")
    assert lines[0] == b"* 3 FETCH (BINARY[1] ~{10}\r\nnul\x00byte\r\n)\r\n"  # RFC 3516
    c.close()


def _thread_message(n: int, subject: str, extra: str = "") -> bytes:
    return (
        f"Subject: {subject}\r\nFrom: a@b.c\r\nDate: Mon, 23 Nov 2026 09:0{n}:00 +0000\r\n"
        f"Message-ID: <m{n}@x>\r\n{extra}\r\nbody\r\n"
    ).encode()


def test_thread_and_sort_match_dovecot(imap_server: ImapServer) -> None:
    messages = [
        (1, "hello", ""),
        (2, "Re: hello", ""),
        (3, "other", ""),
        (4, "Re: other", "References: <m3@x>\r\n"),
        (5, "Re: hello", "In-Reply-To: <missing@x>\r\n"),
        (6, "Fwd: hello", "References: <m5@x>\r\n"),
    ]
    for n, subject, extra in messages:
        imap_server.deliver(_thread_message(n, subject, extra))
    c = login(imap_server)
    c.ok("SELECT INBOX")
    # Expected answers captured from Dovecot 2.3.19.1 on the same six messages.
    assert c.ok("THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (1 (2)(5 6))(3 4)\r\n"
    assert c.ok("THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == b"* THREAD (1 (2)(5)(6))(3 4)\r\n"
    assert c.ok("SORT (SUBJECT DATE) UTF-8 ALL")[0] == b"* SORT 1 2 5 6 3 4\r\n"
    c.close()


def test_new_keyword_announces_flags(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("kw"))
    c = login(imap_server)
    c.ok("SELECT INBOX")
    lines = c.ok("STORE 1 +FLAGS ($Important)")
    assert lines[0].startswith(b"* FLAGS (") and b"$Important" in lines[0]
    # RFC 9051 7.1: PERMANENTFLAGS grows with FLAGS (as Dovecot sends it), then the FETCH
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (") and b"$Important" in lines[1]
    assert b"$Important" in lines[2] and lines[2].startswith(b"* 1 FETCH")
    assert not c.ok("STORE 1 +FLAGS ($Important)")[0].startswith(b"* FLAGS")
    c.close()


def test_new_arrival_is_recent_in_exactly_one_session(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("old"))
    a, b = login(imap_server), login(imap_server)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    imap_server.deliver(make_message("new"))
    first = b"".join(a.ok("NOOP"))
    assert b"* 2 EXISTS\r\n* 2 RECENT\r\n" in first  # a selected first: both are its
    assert b"\\Recent" in grab(rb"\* 2 FETCH \(FLAGS \(([^)]*)\)", b"".join(a.ok("FETCH 2 FLAGS")))
    second = b"".join(b.ok("NOOP"))
    assert b"* 2 EXISTS\r\n" in second and b"* 0 RECENT\r\n" in second
    assert b"\\Recent" not in grab(
        rb"\* 2 FETCH \(FLAGS \(([^)]*)\)", b"".join(b.ok("FETCH 2 FLAGS"))
    )
    c = login(imap_server)
    assert b"* 0 RECENT" in b"".join(c.ok("SELECT INBOX"))  # already claimed by a
    ro = login(imap_server)
    ro.ok("EXAMINE INBOX")
    imap_server.deliver(make_message("third"))
    # RFC 3501 6.3.2: a read-only session shows the unclaimed arrival \Recent but claims
    # nothing (Dovecot 2.3 answers "* 1 RECENT" here too); a still gets it next.
    assert b"* 3 EXISTS\r\n* 1 RECENT\r\n" in b"".join(ro.ok("NOOP"))
    assert b"* 3 EXISTS\r\n* 3 RECENT\r\n" in b"".join(a.ok("NOOP"))
