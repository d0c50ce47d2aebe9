"""The delivery pipeline behind DATA: filters, recipient filters, quota, store errors."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from appliance.filters.base import InboundMessage, RecipientAction, Verdict
from appliance.store.base import (
    Appended,
    DeliveryTarget,
    QuotaExceeded,
    StorageFull,
    StorageUnavailable,
)
from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv, message


class StaticFilter:
    def __init__(self, name: str, verdict: Verdict | Exception) -> None:
        self.name = name
        self.verdict = verdict
        self.seen: list[InboundMessage] = []

    async def check(self, msg: InboundMessage) -> Verdict:
        self.seen.append(msg)
        assert msg.path.read_bytes().startswith(b"Received: ")  # the spooled file
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict


class Router:
    name = "router"

    def __init__(self, actions: dict[str, RecipientAction]) -> None:
        self.actions = actions
        self.calls: list[tuple[str, str]] = []

    async def route(self, user: str, msg: InboundMessage, verdict: Verdict) -> RecipientAction:
        self.calls.append((user, verdict.action))
        return self.actions.get(user, RecipientAction())


class BrokenStore:
    """Wraps the real store; deliver() fails with the given error, writing nothing."""

    def __init__(self, real: Any, error: Exception) -> None:
        self.real = real
        self.error = error

    def deliver(self, targets: Sequence[DeliveryTarget], source: Path) -> list[Appended]:
        raise self.error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def send(env: SmtpEnv, rcpts: list[str], msg: bytes | None = None) -> tuple[int, bytes]:
    with env.smtp() as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL", "FROM:<x@remote.test>")[0] == 250
        for r in rcpts:
            assert s.docmd("RCPT", f"TO:<{r}>")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send((msg or message()) + b".\r\n")
        return s.getreply()


def test_no_filters_just_delivers(env: SmtpEnv) -> None:
    assert send(env, [f"bob@{DOMAIN}"])[0] == 250
    assert len(env.messages(f"bob@{DOMAIN}")) == 1


def test_filter_headers_prepended_to_local_copies(env: SmtpEnv) -> None:
    flt = StaticFilter("spam", Verdict("accept", (("X-Spam-Score", "1.5"), ("X-Two", "a\nb"))))
    env.ctx.filters.append(flt)
    assert send(env, [f"sales@{DOMAIN}"])[0] == 250
    msg = flt.seen[0]
    assert (msg.mail_from, msg.rcpt_to, msg.client_ip, msg.helo) == (
        "x@remote.test",
        (f"sales@{DOMAIN}",),
        "127.0.0.1",
        "client.test",
    )
    assert msg.size > 0 and not msg.tls and msg.authenticated_user is None
    stored = env.messages(f"alice@{DOMAIN}")[0]
    assert stored.startswith(
        b"Return-Path: <x@remote.test>\r\nDelivered-To: alice@example.org\r\n"
        b"X-Spam-Score: 1.5\r\nX-Two: a\r\n\tb\r\nReceived: "
    )


@pytest.mark.parametrize(
    ("verdict", "code", "reply"),
    [
        (Verdict("reject", reason="Spam detected"), 550, b"5.7.1 Spam detected"),
        (Verdict("reject", reason="Virus", smtp_code=554, enhanced="5.7.0"), 554, b"5.7.0 Virus"),
        (Verdict("tempfail", reason="Greylisted"), 451, b"4.7.1 Greylisted"),
        (
            Verdict("reject", reason="evil\r\n250 2.0.0 Ok", smtp_code=250, enhanced="2.0.0"),
            550,
            b"5.7.1 evil  250 2.0.0 Ok",
        ),
        (RuntimeError("filter crashed"), 451, b"4.3.0 Temporary local failure, try again later"),
    ],
)
def test_filter_refusals(
    env: SmtpEnv, verdict: Verdict | Exception, code: int, reply: bytes
) -> None:
    env.ctx.filters.append(StaticFilter("f", verdict))
    assert send(env, [f"bob@{DOMAIN}", f"fwd@{DOMAIN}"]) == (code, reply)
    assert env.messages(f"bob@{DOMAIN}") == []
    assert env.queue.items == []
    assert env.spool_files() == []


def test_first_reject_stops_later_filters(env: SmtpEnv) -> None:
    later = StaticFilter("later", Verdict())
    env.ctx.filters += [StaticFilter("first", Verdict("reject")), later]
    assert send(env, [f"bob@{DOMAIN}"])[0] == 550
    assert later.seen == []


def test_junk_goes_to_junk_folder(env: SmtpEnv) -> None:
    env.ctx.filters.append(StaticFilter("spam", Verdict("junk", (("X-Spam", "yes"),))))
    assert send(env, [f"bob@{DOMAIN}"])[0] == 250
    assert env.messages(f"bob@{DOMAIN}") == []
    junk = env.messages(f"bob@{DOMAIN}", "Junk")
    assert len(junk) == 1 and b"X-Spam: yes\r\n" in junk[0]


def test_discard_accepts_and_drops(env: SmtpEnv) -> None:
    env.ctx.filters.append(StaticFilter("drop", Verdict("discard")))
    assert send(env, [f"bob@{DOMAIN}"])[0] == 250
    assert env.messages(f"bob@{DOMAIN}") == []


def test_recipient_filter_folders_flags_redirect(env: SmtpEnv) -> None:
    router = Router(
        {
            f"alice@{DOMAIN}": RecipientAction(
                mailboxes=("Archive", "INBOX"), flags=frozenset({"\\Flagged"})
            ),
            f"bob@{DOMAIN}": RecipientAction(
                mailboxes=(), redirect=(f"carol@{DOMAIN}", "ext@remote.test")
            ),
        }
    )
    env.ctx.recipient_filters.append(router)
    assert send(env, [f"sales@{DOMAIN}"])[0] == 250
    assert len(env.messages(f"alice@{DOMAIN}", "Archive")) == 1
    assert len(env.messages(f"alice@{DOMAIN}")) == 1
    snap = env.store.snapshot(f"alice@{DOMAIN}", "Archive")
    assert "\\Flagged" in snap.messages[0].flags
    assert env.messages(f"bob@{DOMAIN}") == []
    assert len(env.messages(f"carol@{DOMAIN}")) == 1
    assert [(s, r) for s, r, _ in env.queue.items] == [("x@remote.test", ("ext@remote.test",))]


def test_recipient_filter_missing_folder_falls_back_to_inbox(env: SmtpEnv) -> None:
    env.ctx.recipient_filters.append(
        Router({f"bob@{DOMAIN}": RecipientAction(mailboxes=("No/Such/Folder",))})
    )
    assert send(env, [f"bob@{DOMAIN}"])[0] == 250
    assert len(env.messages(f"bob@{DOMAIN}")) == 1


def test_recipient_filter_reject_single_recipient(env: SmtpEnv) -> None:
    env.ctx.recipient_filters.append(
        Router({f"bob@{DOMAIN}": RecipientAction(reject_reason="I do not want this")})
    )
    assert send(env, [f"bob@{DOMAIN}"]) == (550, b"5.7.1 I do not want this")


@pytest.mark.parametrize(
    ("error", "reply"),
    [
        (StorageFull("disk full"), (452, b"4.3.1 Insufficient system storage, try again later")),
        (StorageUnavailable("EIO"), (451, b"4.3.0 Temporary local failure, try again later")),
        (QuotaExceeded("over"), (452, b"4.2.2 Mailbox full, try again later")),
        (OSError(5, "EIO"), (451, b"4.3.0 Temporary local failure, try again later")),
    ],
)
def test_store_errors_map_to_replies_and_nothing_is_half_delivered(
    env: SmtpEnv, error: Exception, reply: tuple[int, bytes]
) -> None:
    env.ctx.store = BrokenStore(env.store, error)
    assert send(env, [f"bob@{DOMAIN}", f"fwd@{DOMAIN}"]) == reply
    assert env.queue.items == []  # the remote copy is not queued when local storage fails
    env.ctx.store = env.store
    assert env.messages(f"bob@{DOMAIN}") == []
    assert env.spool_files() == []


def big(n: int) -> bytes:
    return message(body=("y" * 98 + "\r\n") * (n // 100))


def test_quota_full_user_refused_at_rcpt(env: SmtpEnv) -> None:
    env.accounts.set_quota(f"bob@{DOMAIN}", 2000)
    assert send(env, [f"bob@{DOMAIN}"], big(1500))[0] == 250
    with env.smtp() as s:
        s.ehlo("c")
        s.docmd("MAIL", "FROM:<x@remote.test> SIZE=1000")
        assert s.docmd("RCPT", f"TO:<bob@{DOMAIN}>") == (
            452,
            b"4.2.2 Mailbox full, try again later",
        )
        assert s.docmd("RCPT", f"TO:<alice@{DOMAIN}>")[0] == 250


def test_quota_declared_size_refused_at_rcpt(env: SmtpEnv) -> None:
    env.accounts.set_quota(f"bob@{DOMAIN}", 1000)
    with env.smtp() as s, pytest.raises(smtplib.SMTPRecipientsRefused):
        s.sendmail("x@remote.test", [f"bob@{DOMAIN}"], big(5000))  # smtplib sends SIZE=


def test_quota_message_fits_nobody_452_at_data(env: SmtpEnv) -> None:
    env.accounts.set_quota(f"bob@{DOMAIN}", 1000)
    assert send(env, [f"bob@{DOMAIN}"], big(5000)) == (452, b"4.2.2 Mailbox full, try again later")
    assert env.messages(f"bob@{DOMAIN}") == []


def test_quota_copy_that_does_not_fit_is_left_out_and_reported(env: SmtpEnv) -> None:
    env.accounts.set_quota(f"bob@{DOMAIN}", 1000)
    assert send(env, [f"sales@{DOMAIN}"], big(5000))[0] == 250
    assert len(env.messages(f"alice@{DOMAIN}")) == 1
    assert env.messages(f"bob@{DOMAIN}") == []
    # Accepted with 250 for alice, so bob's copy is not silently lost: a DSN goes back to
    # the (remote) sender with the null reverse-path.
    [(sender, rcpts, path)] = env.queue.items
    assert (sender, rcpts) == ("", ("x@remote.test",))
    dsn = path.read_bytes()
    assert b"report-type=delivery-status" in dsn
    assert f"Final-Recipient: rfc822; bob@{DOMAIN}".encode() in dsn
    assert b"Status: 5.2.2" in dsn and b"Action: failed" in dsn


def test_quota_report_to_a_local_sender_lands_in_their_inbox(env: SmtpEnv) -> None:
    env.accounts.set_quota(f"bob@{DOMAIN}", 1000)
    with env.submit_client() as s:  # alice submits to sales (alice + bob)
        assert s.sendmail(f"alice@{DOMAIN}", [f"sales@{DOMAIN}"], big(5000)) == {}
    inbox = env.messages(f"alice@{DOMAIN}")
    assert len(inbox) == 2  # her own copy via the alias, and the report
    report = next(m for m in inbox if b"report-type=delivery-status" in m)
    assert report.startswith(b"Return-Path: <>\r\n")
    assert env.queue.items == []


def test_default_quota_from_config(env: SmtpEnv) -> None:
    import dataclasses

    cfg = env.ctx.config
    env.ctx.config = dataclasses.replace(
        cfg, limits=dataclasses.replace(cfg.limits, default_quota=1000)
    )
    assert send(env, [f"bob@{DOMAIN}"], big(5000))[0] == 452
    env.accounts.set_quota(f"bob@{DOMAIN}", 100_000)  # the user's own quota wins
    assert send(env, [f"bob@{DOMAIN}"], big(5000))[0] == 250
