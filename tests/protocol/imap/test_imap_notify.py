"""IMAP NOTIFY (RFC 5465) on real sockets: two sessions of one user; events for the
watching session arrive without it sending a command."""

from __future__ import annotations

import re
import time

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient

ALL = "(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"


def connect(server: ImapServer) -> RawClient:
    client = RawClient(server.host, server.tls_port, server.client_tls())
    client.ok(f'LOGIN "{server.user}" "{PASSWORD}"')
    return client


def unsolicited(client: RawClient, want: int = 1, timeout: float = 1.0) -> list[bytes]:
    """Lines the server sends within ``timeout`` while the client sends nothing
    (returns early once ``want`` lines arrived and nothing follows for 0.2 s)."""
    lines: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            client.sock.settimeout(left if len(lines) < want else min(left, 0.2))
            lines.append(client.line())
    except (TimeoutError, ConnectionError):  # nothing more, or the server closed
        pass
    finally:
        client.sock.settimeout(15)
    return lines


def n1_status(messages: int, unseen: int) -> bytes:
    return rb"\* STATUS N1 \(MESSAGES %d UIDNEXT 2 UIDVALIDITY \d+ UNSEEN %d\)\r\n" % (
        messages,
        unseen,
    )


def append(client: RawClient, mailbox: str, subject: str = "n") -> None:
    msg = make_message(subject)
    client.ok(b"APPEND " + mailbox.encode() + b" {%d+}\r\n" % len(msg) + msg)


def test_notify_is_advertised_after_login(imap_server: ImapServer) -> None:
    a = connect(imap_server)
    caps = a.ok("CAPABILITY")[0]
    assert b" NOTIFY" in caps


def test_events_for_other_mailboxes_arrive_unsolicited(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    a.ok(f"NOTIFY SET (PERSONAL {ALL})")
    b.ok("CREATE N1")
    assert unsolicited(a) == [b'* LIST () "/" N1\r\n']
    append(b, "N1")
    [line] = unsolicited(a)
    # N1 is newer than the NOTIFY: its UIDVALIDITY is news (Dovecot 2.3 sends it too)
    assert re.fullmatch(n1_status(1, 1), line)
    b.ok("SELECT N1")
    b.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    [line] = unsolicited(a)
    assert re.fullmatch(n1_status(1, 0), line)
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    [line] = unsolicited(a)
    assert re.fullmatch(n1_status(1, 0), line)
    b.ok("EXPUNGE")
    [line] = unsolicited(a)
    assert re.fullmatch(n1_status(0, 0), line)
    b.ok("UNSELECT")
    b.ok("SUBSCRIBE N1")
    assert unsolicited(a) == [b'* LIST (\\Subscribed) "/" N1\r\n']
    b.ok("UNSUBSCRIBE N1")
    assert unsolicited(a) == [b'* LIST () "/" N1\r\n']
    b.ok("RENAME N1 N2")
    assert unsolicited(a) == [b'* LIST () "/" N2 ("OLDNAME" (N1))\r\n']
    b.ok("DELETE N2")
    assert unsolicited(a) == [b'* LIST (\\NonExistent) "/" N2\r\n']
    # its own changes too, after the tagged reply (as Dovecot 2.3)
    lines = a.ok("CREATE Mine")
    assert lines[-1].startswith(b"c%d OK" % a.counter)
    assert unsolicited(a) == [b'* LIST () "/" Mine\r\n']
    a.ok("LOGOUT")


def test_selected_mailbox_events_with_fetch_att(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    a.ok("SELECT INBOX")
    a.ok("NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
    imap_server.deliver(make_message("one"))
    got = unsolicited(a, want=3)
    assert got[0] == b"* 1 EXISTS\r\n"
    assert got[-1] == b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n"
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert unsolicited(a) == [b"* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)\r\n"]
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert unsolicited(a) == [b"* 1 FETCH (FLAGS (\\Deleted \\Flagged \\Recent) UID 1)\r\n"]
    b.ok("EXPUNGE")
    assert unsolicited(a) == [b"* 1 EXPUNGE\r\n"]


def test_selected_delayed_holds_expunge_until_a_command(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("one"))
    a, b = connect(imap_server), connect(imap_server)
    a.ok("SELECT INBOX")
    a.ok("NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert unsolicited(a) == [b"* 1 FETCH (FLAGS (\\Deleted \\Recent) UID 1)\r\n"]
    b.ok("EXPUNGE")
    assert unsolicited(a, timeout=0.7) == []  # RFC 5465 5.1: not until a command allows it
    lines = a.ok("NOOP")
    assert b"* 1 EXPUNGE\r\n" in lines


def test_events_arrive_during_idle(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    a.ok(f"NOTIFY SET (PERSONAL {ALL})")
    a.write(b"i1 IDLE\r\n")
    assert a.line().startswith(b"+ ")
    b.ok("CREATE Idle")
    assert unsolicited(a) == [b'* LIST () "/" Idle\r\n']
    a.write(b"DONE\r\n")
    assert a.until(b"i1")[-1].startswith(b"i1 OK")


def test_notify_none_stops_events(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    a.ok(f"NOTIFY SET (PERSONAL {ALL})")
    b.ok("CREATE Before")
    assert unsolicited(a) == [b'* LIST () "/" Before\r\n']
    a.ok("NOTIFY NONE")
    b.ok("CREATE After")
    append(b, "Before")
    assert unsolicited(a, timeout=0.7) == []
    assert imap_server.ctx.bus.subscriber_count() == 0  # no session holds a subscription


def test_filters_limit_which_mailboxes_are_reported(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    b.ok("CREATE Watched")
    b.ok("CREATE Other")
    a.ok("NOTIFY SET (MAILBOXES Watched (MessageNew MessageExpunge))")
    append(b, "Other")
    assert unsolicited(a, timeout=0.5) == []
    append(b, "Watched")
    assert unsolicited(a) == [b"* STATUS Watched (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"]


def test_status_indicator_sends_status_at_once(imap_server: ImapServer) -> None:
    a = connect(imap_server)
    a.ok("CREATE Box")
    lines = a.ok("NOTIFY SET STATUS (SUBTREE Box (MessageNew MessageExpunge))")
    assert lines[0].startswith(b"* STATUS Box (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ")
    assert lines[0].endswith(b" UNSEEN 0)\r\n")


def test_unsupported_events_and_bad_syntax(imap_server: ImapServer) -> None:
    a = connect(imap_server)
    events = b"(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"
    for spec in (
        "(PERSONAL (AnnotationChange))",
        "(PERSONAL (MessageNew MessageExpunge MailboxMetadataChange))",
    ):
        [line] = a.command(f"NOTIFY SET {spec}")
        assert line.startswith(b"c%d NO [BADEVENT " % a.counter + events + b"]"), line
    for spec in (
        "SET (PERSONAL (MessageNew))",  # RFC 5465 5.2: needs MessageExpunge
        "SET (PERSONAL (FlagChange))",  # needs MessageNew and MessageExpunge
        "SET (FOO (MessageNew MessageExpunge))",
        "SET (SELECTED (MailboxName)) (SELECTED-DELAYED (MailboxName))",
        "SET",
        "",
    ):
        [line] = a.command(f"NOTIFY {spec}".strip())
        assert line.startswith(b"c%d BAD " % a.counter), (spec, line)
    a.ok("NOTIFY SET (INBOXES (MessageNew MessageExpunge)) (PERSONAL NONE)")
    a.ok("NOTIFY NONE")


def test_rename_reports_each_inferior_with_oldname(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    b.ok("CREATE P/C")
    a.ok("NOTIFY SET (PERSONAL (MailboxName))")
    b.ok("RENAME P Q")
    got = unsolicited(a, want=2)
    assert sorted(got) == [
        b'* LIST () "/" Q ("OLDNAME" (P))\r\n',
        b'* LIST () "/" Q/C ("OLDNAME" (P/C))\r\n',
    ]


def test_no_event_is_written_while_a_literal_is_read(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    a.ok(f"NOTIFY SET (PERSONAL {ALL})")
    msg = make_message("lit")
    a.write(b"l1 APPEND INBOX {%d}\r\n" % len(msg))
    assert a.line().startswith(b"+ ")
    b.ok("CREATE During")
    assert unsolicited(a, timeout=0.7) == []  # the server is reading the literal
    a.write(msg + b"\r\n")
    lines = a.until(b"l1")
    lines += unsolicited(a)
    assert lines[-3].startswith(b"l1 OK"), lines
    assert lines[-2:] == [
        b'* LIST () "/" During\r\n',
        b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n",  # its own APPEND
    ]


def test_selected_mailbox_without_selected_filter(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    b.ok("CREATE Side")
    a.ok("SELECT INBOX")
    a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    imap_server.deliver(make_message("to the selected one"))
    # Not unsolicited (Dovecot 2.3 sends nothing either); the next command reports it.
    assert unsolicited(a, timeout=0.7) == []
    assert b"* 1 EXISTS\r\n" in a.ok("NOOP")
    a.ok("SELECT Side")
    imap_server.deliver(make_message("to INBOX"))
    # INBOX is no longer selected: a STATUS now
    assert unsolicited(a) == [b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"]


def test_badevent_keeps_the_earlier_notify(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    a.ok("NOTIFY SET (PERSONAL (MailboxName))")
    [line] = a.command("NOTIFY SET (PERSONAL (ServerMetadataChange))")
    assert b"NO [BADEVENT " in line
    b.ok("CREATE Still")
    assert unsolicited(a) == [b'* LIST () "/" Still\r\n']


def test_own_changes_in_the_selected_mailbox_are_not_repeated(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("one"))
    imap_server.deliver(make_message("two"))
    a = connect(imap_server)
    a.ok("SELECT INBOX")
    a.ok("NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
    lines = a.ok("STORE 1 +FLAGS (\\Flagged)")
    assert lines[0].startswith(b"* 1 FETCH (FLAGS (\\Flagged")
    lines = a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert lines[:-1] == []
    lines = a.ok("EXPUNGE")
    assert lines[0] == b"* 2 EXPUNGE\r\n"
    append(a, "INBOX")
    assert unsolicited(a, timeout=0.7) == []  # the replies said it all


def test_overflow_turns_notify_off(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    a.ok(f"NOTIFY SET (PERSONAL {ALL})")
    msg = make_message("slow")
    a.write(b"l1 APPEND INBOX {%d}\r\n" % len(msg))
    assert a.line().startswith(b"+ ")
    for i in range(60):  # 120 events (store + IMAP) pile up while A's literal is read
        b.ok(f"CREATE Many{i}")
    a.write(msg + b"\r\n")
    assert a.until(b"l1")[-1].startswith(b"l1 OK")
    # RFC 5465 5.8: NOTIFICATIONOVERFLOW, then NOTIFY is off
    assert unsolicited(a) == [
        b"* OK [NOTIFICATIONOVERFLOW] Too many changes, NOTIFY is now off\r\n"
    ]
    b.ok("CREATE Later")
    assert unsolicited(a, timeout=0.5) == []


def test_selected_mailbox_deleted_elsewhere_ends_the_session(imap_server: ImapServer) -> None:
    a, b = connect(imap_server), connect(imap_server)
    b.ok("CREATE Doomed")
    a.ok("SELECT Doomed")
    a.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange))")
    b.ok("DELETE Doomed")
    assert unsolicited(a) == [b"* BYE Selected mailbox no longer exists\r\n"]
    a.sock.settimeout(5)
    assert a.sock.recv(100) == b""  # RFC 9051 7.1.5: the server closes after BYE
