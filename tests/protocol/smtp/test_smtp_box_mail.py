"""Mail the box writes itself, over real SMTP sessions: every kind goes through the one
notifier (appliance.delivery.notices), and one SMTP message reads each recipient's
quota usage once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.delivery.notices import Kind, Notifier
from appliance.dns import DnsResolver
from appliance.filters.service import FilterEnv
from appliance.filters.setup import build_filters
from appliance.filters.sieve_store import store_for
from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv, message, notifier

ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Kind]]:
    """(recipient, kind) of every message handed to a Notifier."""
    calls: list[tuple[str, Kind]] = []
    original = Notifier.send

    def spy(self: Notifier, recipient: str, data: bytes, kind: Kind, log_id: str = "-") -> bool:
        calls.append((recipient, kind))
        return original(self, recipient, data, kind, log_id)

    monkeypatch.setattr(Notifier, "send", spy)
    return calls


@pytest.fixture
def walks(env: SmtpEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The users whose folders the store looked over for usage (refresh_usage)."""
    calls: list[str] = []
    original = env.store.refresh_usage

    def spy(user: str) -> None:
        calls.append(user)
        original(user)

    monkeypatch.setattr(env.store, "refresh_usage", spy)
    yield calls


def big(n: int) -> bytes:
    return message("big", ("y" * 98 + "\r\n") * (n // 100))


def sieve(env: SmtpEnv, user: str, script: str) -> None:
    """Give ``user`` a Sieve script; the daemon's own filter wiring (build_filters)."""
    store_for(env.ctx.config.data_dir).save_script(user, script)
    dns = DnsResolver(nameservers=["127.0.0.1"])  # unused: mailauth is not taken here
    replies = notifier(env.ctx.config, env.accounts, env.store, env.queue)
    built = FilterEnv(env.ctx.config, dns, replies)
    env.ctx.recipient_filters[:] = build_filters(built)[1]


def send(env: SmtpEnv, rcpts: list[str], data: bytes, sender: str = "x@remote.test") -> int:
    with env.smtp() as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL", f"FROM:<{sender}>")[0] == 250
        for r in rcpts:
            assert s.docmd("RCPT", f"TO:<{r}>")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(data + b"\r\n.\r\n")
        return s.getreply()[0]


def test_over_quota_dsn_goes_through_the_notifier(
    env: SmtpEnv, sent: list[tuple[str, Kind]]
) -> None:
    env.accounts.set_quota(BOB, 1000)
    assert send(env, [f"sales@{DOMAIN}"], big(5000)) == 250
    assert sent == [("x@remote.test", "dsn")]
    [(sender, rcpts, path)] = env.queue.items
    assert (sender, rcpts) == ("", ("x@remote.test",))
    assert b"Status: 5.2.2" in path.read_bytes()


def test_vacation_reply_goes_through_the_notifier(
    env: SmtpEnv, sent: list[tuple[str, Kind]]
) -> None:
    sieve(env, BOB, 'require "vacation";\nvacation :days 1 "I am away";')
    assert send(env, [BOB], message("hello")) == 250
    assert sent == [("x@remote.test", "auto-reply")]
    [(sender, rcpts, path)] = env.queue.items
    assert (sender, rcpts) == ("", ("x@remote.test",))  # RFC 5230 5.1: null sender
    assert b"Auto-Submitted: auto-replied (vacation)" in path.read_bytes()
    # A local sender's reply is stored in their mailbox, not sent out and back.
    with env.submit_client() as s:
        assert s.sendmail(ALICE, [BOB], message("from alice")) == {}
    assert sent[1] == (ALICE, "auto-reply")
    [reply] = env.messages(ALICE)
    assert reply.startswith(b"Return-Path: <>\r\n") and b"I am away" in reply
    assert len(env.queue.items) == 1


def test_sieve_reject_notice_goes_through_the_notifier(
    env: SmtpEnv, sent: list[tuple[str, Kind]]
) -> None:
    sieve(env, CAROL, 'require "reject";\nreject "Not here";')
    assert send(env, [CAROL, BOB], message("refused by carol")) == 250
    assert sent == [("x@remote.test", "auto-reply")]
    [(sender, rcpts, path)] = env.queue.items
    assert (sender, rcpts) == ("", ("x@remote.test",))
    data = path.read_bytes()
    assert b"message/disposition-notification" in data and b"Not here" in data
    assert env.messages(CAROL) == [] and len(env.messages(BOB)) == 1


def test_one_usage_read_per_user_per_message(env: SmtpEnv, walks: list[str]) -> None:
    env.accounts.set_quota(BOB, 100_000)
    # bob is reached twice (directly and through sales); alice has no quota: not read.
    assert send(env, [BOB, f"sales@{DOMAIN}"], message("twice")) == 250
    assert walks == [BOB]
    assert send(env, [BOB], message("again")) == 250
    assert walks == [BOB, BOB]  # each message reads it afresh
    env.accounts.set_quota(ALICE, 100_000)
    assert send(env, [f"sales@{DOMAIN}"], message("both")) == 250
    assert sorted(walks[2:]) == [ALICE, BOB]
    assert len(env.messages(BOB)) == 3 and len(env.messages(ALICE)) == 2


def test_data_check_reuses_the_rcpt_usage_figure(env: SmtpEnv, walks: list[str]) -> None:
    env.accounts.set_quota(BOB, 10_000)
    src = env.tmp / "filler.eml"
    src.write_bytes(big(8_000))
    env.store.append(BOB, "Archive", src)
    walks.clear()
    # RCPT without SIZE passes (1 byte fits); the message itself does not fit at DATA.
    assert send(env, [BOB], big(3_000)) == 452
    assert walks == [BOB]
    assert env.messages(BOB) == []


def test_redirected_local_user_gets_one_read_at_data(env: SmtpEnv, walks: list[str]) -> None:
    env.accounts.set_quota(CAROL, 100_000)
    sieve(env, BOB, f'redirect "{CAROL}";')
    assert send(env, [BOB], message("for carol")) == 250
    assert walks == [CAROL]  # not a recipient at RCPT: read once, when it is stored
    assert len(env.messages(CAROL)) == 1


def test_spool_tmp_is_left_clean(env: SmtpEnv, sent: list[tuple[str, Kind]]) -> None:
    env.accounts.set_quota(BOB, 1000)
    assert send(env, [f"sales@{DOMAIN}"], big(5000)) == 250
    assert sent
    scratch: Path = env.ctx.config.queue_dir / "tmp"
    assert list(scratch.iterdir()) == []
