"""Mail settings made on the web page, end to end in the real daemon: the script is
saved through the ctl socket (as the web UI does), mail arrives over SMTP, and where it
went is read over IMAP and at a smarthost sink.

- a rule files a message into the folder it names, into Junk, or discards it;
- vacation replies once per sender (RFC 5230 4.1), from the null sender;
- forwarding reaches the target with an SRS sender, with and without a copy kept here;
- mailbox.usage counts per folder and mailbox.empty expunges Junk while an IMAP session
  has it selected (the session sees EXPUNGE).
"""

from __future__ import annotations

import datetime as dt
import imaplib
import re
import smtplib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.ctl.client import CtlClient
from appliance.ctl.protocol import CtlError
from appliance.filters.sieve_settings import Forwarding, MailSettings, Rule, Vacation, read, render
from appliance.tls import client_context
from tests.harness import Daemon, write_config
from tests.protocol.queue.conftest import LoopbackController, SinkHandler

DOMAIN = "pillarbox.test"
PASSWORD = "mail settings test password"
BOB, VIC, CAROL, DAVE, WENDY = (f"{n}@{DOMAIN}" for n in ("bob", "vic", "carol", "dave", "wendy"))
QUOTA = 10 * 1024 * 1024


@dataclass
class Box:
    daemon: Daemon
    ctl: CtlClient
    sink: SinkHandler

    def send(self, sender: str, rcpt: str, subject: str, from_header: str = "") -> None:
        msg = (
            f"From: {from_header or sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((sender, rcpt, subject)))}@example.org>\r\n\r\nhello\r\n"
        )
        with smtplib.SMTP(*self.daemon.addr("smtp"), timeout=30) as client:
            client.sendmail(sender, [rcpt], msg.encode())

    def imap(self, user: str) -> imaplib.IMAP4_SSL:
        conn = imaplib.IMAP4_SSL(
            *self.daemon.addr("imaps"), ssl_context=client_context(verify=False), timeout=20
        )
        conn.login(user, PASSWORD)
        return conn

    def count(self, user: str, mailbox: str) -> int:
        conn = self.imap(user)
        try:
            typ, data = conn.status(mailbox, "(MESSAGES)")
            assert typ == "OK", data
            m = re.search(rb"MESSAGES (\d+)", data[0] or b"")
            assert m
            return int(m.group(1))
        finally:
            conn.logout()

    def save(self, user: str, settings: MailSettings) -> None:
        script = render(read(self.ctl.call("sieve.get", user=user)["script"]), settings)
        assert self.ctl.call("sieve.save", user=user, script=script) == {"ok": True}


def wait_for(predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    sink = SinkHandler()
    controller = LoopbackController(sink, ident="sink")
    controller.start()
    path = write_config(
        tmp_path_factory.mktemp("box"),
        smarthost={"host": "127.0.0.1", "port": controller.port, "tls": "none"},
        filters={"mailauth": False},  # no DNS here; forwards then follow the verdict alone
    )
    cfg = config.load(path)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain(DOMAIN)
    for user in (BOB, VIC, CAROL, DAVE, WENDY):
        accounts.add_user(user, PASSWORD, quota_bytes=QUOTA)
    accounts.close()
    daemon = Daemon(path, wait_for=("smtp", "imaps"))
    daemon.start()
    try:
        yield Box(daemon, CtlClient(cfg.ctl_socket, timeout=20), sink)
    finally:
        daemon.stop()
        controller.stop()


def test_rules_file_mail_where_they_say(box: Box) -> None:
    conn = box.imap(BOB)
    assert conn.create("Work")[0] == "OK"
    conn.logout()
    box.save(
        BOB,
        MailSettings(
            rules=(
                Rule("from", "boss@", "folder", "Work"),
                Rule("subject", "cheap pills", "junk"),
                Rule("subject", "drop me", "discard"),
            )
        ),
    )
    box.send("boss@example.org", BOB, "quarterly numbers")
    box.send("shop@example.org", BOB, "Cheap PILLS today")
    box.send("noise@example.org", BOB, "please drop me")
    box.send("friend@example.org", BOB, "dinner?")
    assert box.count(BOB, "Work") == 1
    assert box.count(BOB, "Junk") == 1
    assert box.count(BOB, "INBOX") == 1  # only the friend; the discarded one is gone
    conn = box.imap(BOB)
    conn.select("Work")
    typ, data = conn.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"quarterly numbers" in data[0][1]
    conn.logout()


def test_vacation_replies_once_per_sender(box: Box) -> None:
    box.save(
        VIC,
        MailSettings(vacation=Vacation(True, "", "", "Away until Monday", "I am away.", 7)),
    )
    before = len(box.sink.messages)
    box.send("alice@example.org", VIC, "first")
    box.send("alice@example.org", VIC, "second")
    box.send("erin@example.net", VIC, "third")
    wait_for(lambda: box.count(VIC, "INBOX") == 3)
    wait_for(lambda: len(box.sink.messages) >= before + 2)
    time.sleep(1.0)  # a wrong second reply to alice would arrive by now
    replies = [m for m in box.sink.messages[before:] if b"Away until Monday" in m.content]
    assert sorted(r for m in replies for r in m.rcpt_tos) == [
        "alice@example.org",
        "erin@example.net",
    ]
    for reply in replies:
        assert reply.mail_from == "<>"  # RFC 5230 5.1: the null reverse-path (aiosmtpd)
        assert b"Auto-Submitted: auto-replied" in reply.content
        assert b"I am away." in reply.content


def test_vacation_keeps_to_its_days(box: Box) -> None:
    """The date window runs in the daemon (RFC 5260 currentdate, the box's time zone)."""
    today = dt.date.today()
    later = (today + dt.timedelta(days=1)).isoformat()
    box.save(WENDY, MailSettings(vacation=Vacation(True, later, "", "Not yet away", "x", 7)))
    box.send("frank@example.org", WENDY, "before the holidays")
    wait_for(lambda: box.count(WENDY, "INBOX") == 1)
    box.save(
        WENDY,
        MailSettings(vacation=Vacation(True, today.isoformat(), later, "Away today", "x", 7)),
    )
    box.send("frank@example.org", WENDY, "during the holidays")
    wait_for(lambda: any(b"Away today" in m.content for m in box.sink.messages))
    time.sleep(1.0)
    assert not any(b"Not yet away" in m.content for m in box.sink.messages)


@pytest.mark.parametrize(
    ("user", "keep", "target"), [(DAVE, True, "d@example.net"), (CAROL, False, "c@example.net")]
)
def test_forwarding_reaches_the_target(box: Box, user: str, keep: bool, target: str) -> None:
    box.save(user, MailSettings(forwarding=Forwarding((target,), keep)))
    box.send("alice@example.org", user, f"forward me {user}")

    wait_for(lambda: any(m.rcpt_tos == [target] for m in box.sink.messages))
    [got] = [m for m in box.sink.messages if m.rcpt_tos == [target]]
    assert f"forward me {user}".encode() in got.content
    assert got.mail_from.startswith("SRS0=")  # forwarded with an SRS sender
    assert box.count(user, "INBOX") == (1 if keep else 0)


def test_usage_and_empty_junk_seen_by_an_open_imap_session(box: Box) -> None:
    for i in range(3):
        box.send("shop@example.org", BOB, f"cheap pills {i}")
    wait_for(lambda: box.count(BOB, "Junk") == 4)
    usage = box.ctl.call("mailbox.usage", user=BOB)
    folders = {f["name"]: f for f in usage["folders"]}
    assert folders["Junk"]["messages"] == 4 and folders["Junk"]["special_use"] == "\\Junk"
    assert folders["Work"]["messages"] == 1 and folders["INBOX"]["messages"] == 1
    assert usage["messages"] == sum(f["messages"] for f in usage["folders"]) == 6
    assert usage["bytes"] == sum(f["bytes"] for f in usage["folders"]) > 0
    assert usage["quota"] == QUOTA
    watcher = box.imap(BOB)
    watcher.select("Junk")
    with pytest.raises(CtlError, match="not a Junk or Trash"):
        box.ctl.call("mailbox.empty", user=BOB, mailbox="INBOX")
    assert box.ctl.call("mailbox.empty", user=BOB, mailbox="Junk") == {"deleted": 4}
    typ, _ = watcher.noop()
    assert typ == "OK"
    assert len(watcher.untagged_responses.get("EXPUNGE", [])) == 4
    watcher.logout()
    assert box.count(BOB, "Junk") == 0
    assert box.ctl.call("mailbox.usage", user=BOB)["messages"] == 2
    with pytest.raises(CtlError, match="no mailbox"):
        box.ctl.call("mailbox.usage", user="nobody@pillarbox.test")
