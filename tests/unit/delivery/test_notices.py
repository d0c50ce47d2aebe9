"""The box's one notifier: the rules every piece of box-generated mail follows, on a real
accounts database, a real Maildir store and a real queue spool."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.accounts import Accounts
from appliance.delivery.notices import NoticeError, Notifier, has_auto_submitted
from appliance.queue.spool import Spool
from appliance.store.base import INBOX
from appliance.store.maildir import MaildirStore

DOMAIN = "pillarbox.test"
HOST = f"mail.{DOMAIN}"
PASSWORD = "correct horse battery staple 42"
DSN = (
    b"From: Mail Delivery System <MAILER-DAEMON@mail.pillarbox.test>\r\n"
    b"To: <x@remote.test>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    b"Auto-Submitted: auto-replied\r\n\r\nreport\r\n"
)


@dataclass
class Box:
    accounts: Accounts
    store: MaildirStore
    spool: Spool
    notifier: Notifier

    def inbox(self, user: str) -> list[bytes]:
        out = []
        for info in self.store.snapshot(user, INBOX).messages:
            with self.store.open_message(user, INBOX, info.uid) as fh:
                out.append(fh.read())
        return out


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    accounts = Accounts(tmp_path / "accounts.sqlite")
    accounts.add_domain(DOMAIN)
    accounts.add_user(f"alice@{DOMAIN}", PASSWORD, quota_bytes=1)  # full at once
    accounts.add_alias(f"team@{DOMAIN}", f"alice@{DOMAIN}")
    accounts.add_alias(f"team@{DOMAIN}", "carol@remote.test")
    store = MaildirStore(tmp_path / "mail", lambda _e: None, lambda _p: b"")
    spool = Spool(tmp_path / "queue")
    notifier = Notifier(accounts, store, spool, hostname=lambda: HOST, scratch=spool.tmp_dir)
    try:
        yield Box(accounts, store, spool, notifier)
    finally:
        accounts.close()


def test_dsn_to_a_remote_sender_is_queued_from_the_null_sender_as_a_bounce(box: Box) -> None:
    assert box.notifier.dsn("x@remote.test", DSN, "Q1")
    [entry] = list(box.spool.entries())
    assert entry.sender == ""  # RFC 3464: the null reverse-path
    assert (entry.kind, entry.origin) == ("bounce", "local")  # origin local: DKIM-signed
    assert [r.address for r in entry.recipients] == ["x@remote.test"]
    assert box.spool.message_path(entry.id).read_bytes() == DSN
    assert list(box.spool.tmp_dir.iterdir()) == []


def test_dsn_to_a_local_sender_is_stored_whatever_the_quota(box: Box) -> None:
    assert box.notifier.dsn(f"Alice@{DOMAIN}", DSN, "Q2")
    [stored] = box.inbox(f"alice@{DOMAIN}")
    assert stored == b"Return-Path: <>\r\n" + DSN
    assert box.spool.ids() == []


def test_an_alias_gets_its_local_copy_stored_and_its_remote_target_queued(box: Box) -> None:
    assert box.notifier.auto_reply(f"team@{DOMAIN}", DSN)
    assert len(box.inbox(f"alice@{DOMAIN}")) == 1
    [entry] = list(box.spool.entries())
    assert entry.sender == "" and entry.kind == "message"
    assert [r.address for r in entry.recipients] == ["carol@remote.test"]


def test_unknown_local_address_and_null_sender_are_dropped(box: Box) -> None:
    ghost = box.notifier.dsn(f"ghost@{DOMAIN}", DSN, "Q3")  # would loop back here
    assert not ghost and ghost.dropped == "no such local mailbox"
    assert not box.notifier.dsn("", DSN, "Q4")  # RFC 3834 2: never to the null sender
    assert not box.notifier.auto_reply("", DSN)
    assert box.spool.ids() == []
    assert box.inbox(f"alice@{DOMAIN}") == []
    assert list(box.spool.tmp_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("kind", "value"),
    [("dsn", b"auto-replied"), ("auto-reply", b"auto-replied"), ("notice", b"auto-generated")],
)
def test_auto_submitted_is_added_when_missing_and_kept_when_present(
    box: Box, kind: str, value: bytes
) -> None:
    bare = b"From: x@mail.pillarbox.test\r\nSubject: s\r\n\r\nauto-submitted: in the body\r\n"
    assert not has_auto_submitted(bare)
    assert box.notifier.send("x@remote.test", bare, kind)  # type: ignore[arg-type]
    [entry] = list(box.spool.entries())
    data = box.spool.message_path(entry.id).read_bytes()
    assert data == b"Auto-Submitted: " + value + b"\r\n" + bare
    box.spool.remove(entry.id)
    assert box.notifier.send("x@remote.test", DSN, kind)  # type: ignore[arg-type]
    [entry] = list(box.spool.entries())
    assert box.spool.message_path(entry.id).read_bytes() == DSN  # its own field kept


def test_text_comes_from_postmaster_of_the_primary_domain(box: Box) -> None:
    sent = box.notifier.text("admin@remote.test", "Disk 90% full", "The mail disk is at 90 %.")
    [entry] = list(box.spool.entries())
    assert (sent.stored, sent.queue_id) == ((), entry.id)
    # Not a reply to anything: a real envelope sender, so failures reach the postmaster.
    assert entry.sender == f"postmaster@{DOMAIN}"
    assert (entry.kind, entry.origin) == ("message", "local")
    assert [r.address for r in entry.recipients] == ["admin@remote.test"]
    msg = email.message_from_bytes(
        box.spool.message_path(entry.id).read_bytes(), policy=email.policy.default
    )
    assert msg["From"] == f"Pillarbox <postmaster@{DOMAIN}>"
    assert msg["To"] == "admin@remote.test"
    assert msg["Subject"] == "Disk 90% full"
    assert msg["Auto-Submitted"] == "auto-generated"  # RFC 3834 5.1
    assert msg["Message-ID"].endswith(f"@{HOST}>")
    body = msg.get_body()
    assert body is not None and body.get_content().strip() == "The mail disk is at 90 %."


def test_text_to_a_local_address_is_stored(box: Box) -> None:
    sent = box.notifier.text(f"alice@{DOMAIN}", "Backup failed", "restic said no")
    assert (sent.stored, sent.queue_id) == ((f"alice@{DOMAIN}",), "")
    [stored] = box.inbox(f"alice@{DOMAIN}")
    assert stored.startswith(f"Return-Path: <postmaster@{DOMAIN}>\r\n".encode())
    assert b"Subject: Backup failed" in stored
    assert box.spool.ids() == []


def test_text_needs_a_local_domain(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "accounts.sqlite")
    spool = Spool(tmp_path / "queue")
    store = MaildirStore(tmp_path / "mail", lambda _e: None, lambda _p: b"")
    n = Notifier(accounts, store, spool, hostname=lambda: HOST, scratch=spool.tmp_dir)
    with pytest.raises(NoticeError):
        n.text("admin@remote.test", "s", "b")
    assert spool.ids() == []
    accounts.close()


def test_text_refuses_header_injection(box: Box) -> None:
    with pytest.raises(ValueError):
        box.notifier.text("admin@remote.test", "Alert\r\nBcc: victim@remote.test", "x")
    with pytest.raises(ValueError):
        box.notifier.text("admin@remote.test\r\nBcc: victim@remote.test", "Alert", "x")
    assert box.spool.ids() == []
