"""The Sieve RecipientFilter end to end: stored scripts, sending, vacation response rules."""

from __future__ import annotations

import asyncio
import email
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.accounts import Accounts
from appliance.delivery.notices import Notifier
from appliance.filters.base import InboundMessage, RecipientAction, Verdict
from appliance.filters.sieve_filter import SieveFilter
from appliance.filters.sieve_parse import SieveSyntaxError
from appliance.filters.sieve_store import SieveStore
from appliance.filters.sieve_vacation import DAY, VacationTracker
from appliance.store.maildir import MaildirStore

USER = "bob@pillarbox.test"


@dataclass
class Outbox:
    sent: list[tuple[str, tuple[str, ...], bytes]] = field(default_factory=list)
    fail: bool = False

    def enqueue(self, sender: str, recipients: Sequence[str], message: Path, **_: object) -> str:
        if self.fail:
            raise OSError("queue disk full")
        self.sent.append((sender, tuple(recipients), message.read_bytes()))
        return f"q{len(self.sent)}"


@dataclass
class Clock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def raw(extra: str = "", to: str = USER, subject: str = "Hello") -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <orig@example.org>\r\n{extra}\r\nBody text\r\n"
    ).encode()


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.store = SieveStore(tmp / "sieve")
        self.outbox = Outbox()
        self.clock = Clock()
        self.tracker = VacationTracker(tmp / "vacation.sqlite", clock=self.clock)
        accounts = Accounts(tmp / "accounts.sqlite")
        accounts.add_domain("pillarbox.test")
        mail = MaildirStore(tmp / "mail", lambda _e: None, lambda _p: b"")
        # The box's notifier, its scratch files in tmp/outbox, queueing into the fake.
        replies = Notifier(
            accounts,
            mail,
            self.outbox,
            hostname=lambda: "mx.pillarbox.test",
            scratch=tmp / "outbox",
        )
        self.filter = SieveFilter(self.store, "mx.pillarbox.test", replies, self.tracker)

    def route(
        self, data: bytes, mail_from: str = "alice@example.org", verdict: Verdict | None = None
    ) -> RecipientAction:
        path = self.tmp / "spooled.eml"
        path.write_bytes(data)
        msg = InboundMessage(path, mail_from, (USER,), "192.0.2.1", "", "helo.test", size=len(data))
        return asyncio.run(self.filter.route(USER, msg, verdict or Verdict()))


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_no_script_delivers_to_inbox_or_junk(env: Env) -> None:
    assert env.route(raw()).mailboxes == ("INBOX",)
    assert env.route(raw(), verdict=Verdict("junk")).mailboxes == ("Junk",)


def test_store_validates_and_saves(env: Env) -> None:
    with pytest.raises(SieveSyntaxError) as info:
        env.store.save_script(USER, 'keep;\nfileinto "x";')
    assert (info.value.line, info.value.column) == (2, 1)
    assert env.store.get_script(USER) is None  # nothing written
    env.store.save_script(USER, 'require "fileinto";\nfileinto "Work";')
    assert env.store.get_script("Bob@Pillarbox.test") == 'require "fileinto";\nfileinto "Work";'
    assert env.route(raw()).mailboxes == ("Work",)
    env.store.save_script(USER, 'require "fileinto";\nfileinto "Other"; # changed')
    assert env.route(raw()).mailboxes == ("Other",)  # cache follows the file
    assert env.store.delete_script(USER)
    assert env.route(raw()).mailboxes == ("INBOX",)
    with pytest.raises(ValueError):
        env.store.path_for("../../etc/passwd")


def test_delivery_runs_the_active_script_only(env: Env) -> None:
    env.store.put(USER, "work", 'require "fileinto";\nfileinto "Work";')
    env.store.put(USER, "other", 'require "fileinto";\nfileinto "Other";')
    assert env.route(raw()).mailboxes == ("INBOX",)  # scripts stored, none active
    env.store.set_active(USER, "work")
    assert env.route(raw()).mailboxes == ("Work",)
    env.store.set_active(USER, "other")
    assert env.route(raw()).mailboxes == ("Other",)  # the cache follows the activation
    env.store.rename(USER, "other", "renamed")
    assert env.route(raw()).mailboxes == ("Other",)
    env.store.set_active(USER, None)
    assert env.route(raw()).mailboxes == ("INBOX",)


def test_old_single_script_file_still_runs(env: Env) -> None:
    env.store.root.mkdir(parents=True, exist_ok=True)
    env.store.path_for(USER).write_text('require "fileinto";\nfileinto "Legacy";')
    assert env.route(raw()).mailboxes == ("Legacy",)
    assert env.store.list_scripts(USER) == [("pillarbox", True)]


def test_broken_file_on_disk_keeps_mail(env: Env) -> None:
    env.store.path_for(USER).parent.mkdir(parents=True)
    env.store.path_for(USER).write_text("this is not sieve")
    assert env.route(raw()).mailboxes == ("INBOX",)


def test_fileinto_flags_and_junk_keep(env: Env) -> None:
    env.store.save_script(
        USER,
        'require ["fileinto", "imap4flags", "copy"];\n'
        'addflag "\\\\Seen";\nfileinto :copy :flags "$Work" "Work";\n',
    )
    action = env.route(raw(), verdict=Verdict("junk"))
    assert action.mailboxes == ("Junk", "Work")
    assert action.flags == {"\\Seen", "$Work"}
    assert action.extra["flags:Junk"] == "\\Seen"
    assert action.extra["flags:Work"] == "$Work"


def test_discard(env: Env) -> None:
    env.store.save_script(USER, "discard;")
    action = env.route(raw())
    assert action.mailboxes == () and action.redirect == ()


def test_redirect_is_left_to_the_pipeline(env: Env) -> None:
    env.store.save_script(USER, 'redirect "bob@elsewhere.test";')
    action = env.route(raw())
    assert action.mailboxes == () and action.redirect == ("bob@elsewhere.test",)
    assert env.outbox.sent == []
    env.store.save_script(USER, 'require "copy";\nredirect :copy "bob@elsewhere.test";')
    action = env.route(raw())
    assert action.mailboxes == ("INBOX",) and action.redirect == ("bob@elsewhere.test",)


def test_without_send_the_pipeline_gets_redirect_and_reject(tmp_path: Path) -> None:
    store = SieveStore(tmp_path / "sieve")
    f = SieveFilter(store, "mx.pillarbox.test")
    path = tmp_path / "m.eml"
    path.write_bytes(raw())
    msg = InboundMessage(path, "alice@example.org", (USER,), "192.0.2.1", "", "h")
    store.save_script(USER, 'redirect "x@y.test";')
    assert asyncio.run(f.route(USER, msg, Verdict())).redirect == ("x@y.test",)
    store.save_script(USER, 'require "reject";\nreject "not wanted";')
    action = asyncio.run(f.route(USER, msg, Verdict()))
    assert action.reject_reason == "not wanted" and action.mailboxes == ()


def test_reject_sends_an_mdn(env: Env) -> None:
    env.store.save_script(USER, 'require "reject";\nreject "I do not want this";')
    action = env.route(raw())
    assert action.mailboxes == ()
    [(sender, rcpts, data)] = env.outbox.sent
    assert (sender, rcpts) == ("", ("alice@example.org",))
    notice = email.message_from_bytes(data)
    assert notice.get_content_type() == "multipart/report"
    parts = [p.get_content_type() for p in notice.walk()]
    assert "message/disposition-notification" in parts
    assert b"I do not want this" in data and b"Original-Message-ID: <orig@example.org>" in data
    assert list(env.tmp.joinpath("outbox").iterdir()) == []  # temp file removed


def test_reject_never_answers_the_null_sender(env: Env) -> None:
    env.store.save_script(USER, 'require "reject";\nreject "no";')
    action = env.route(raw(), mail_from="")
    assert env.outbox.sent == [] and action.mailboxes == ()


VACATION = 'require "vacation";\nvacation :days 2 :addresses ["bob.alias@pillarbox.test"] "Away";'


def test_vacation_replies_once_per_days(env: Env) -> None:
    env.store.save_script(USER, VACATION)
    action = env.route(raw())
    assert action.mailboxes == ("INBOX",) and action.extra["sieve:vacation"] == "sent"
    [(sender, rcpts, data)] = env.outbox.sent
    assert (sender, rcpts) == ("", ("alice@example.org",))
    reply = email.message_from_bytes(data)
    assert reply["To"] == "alice@example.org" and reply["From"] == USER
    assert reply["Subject"] == "Auto: Hello"
    assert reply["In-Reply-To"] == "<orig@example.org>"
    assert reply["Auto-Submitted"].startswith("auto-replied")
    payload = reply.get_payload(decode=True)
    assert isinstance(payload, bytes) and payload.strip() == b"Away"
    # Same sender again within :days -> no second reply.
    env.clock.now += DAY
    assert env.route(raw()).extra["sieve:vacation"] == "skipped: already replied"
    # Another sender gets one.
    env.route(raw(), mail_from="dave@example.net")
    assert len(env.outbox.sent) == 2
    # After :days have passed, Alice gets another.
    env.clock.now += 2 * DAY
    assert env.route(raw()).extra["sieve:vacation"] == "sent"
    assert len(env.outbox.sent) == 3


def test_vacation_handle_change_replies_again(env: Env) -> None:
    env.store.save_script(USER, VACATION)
    env.route(raw())
    env.store.save_script(USER, VACATION.replace('"Away"', '"Away until Monday"'))
    assert env.route(raw()).extra["sieve:vacation"] == "sent"


@pytest.mark.parametrize(
    ("extra", "mail_from", "to", "why"),
    [
        ("", "", USER, "null sender"),
        ("", USER, USER, "own address"),
        ("", "bob.alias@pillarbox.test", USER, "own address"),
        ("", "owner-dev@lists.test", USER, "list or daemon sender"),
        ("", "dev-request@lists.test", USER, "list or daemon sender"),
        ("", "MAILER-DAEMON@mx.test", USER, "list or daemon sender"),
        ("Auto-Submitted: auto-generated\r\n", "alice@example.org", USER, "auto-submitted"),
        ("Precedence: bulk\r\n", "alice@example.org", USER, "precedence bulk"),
        ("Precedence: list\r\n", "alice@example.org", USER, "precedence list"),
        ("Precedence: junk\r\n", "alice@example.org", USER, "precedence junk"),
        ("List-Id: <dev.lists.test>\r\n", "alice@example.org", USER, "mailing list"),
        ("", "alice@example.org", "team@pillarbox.test", "not addressed to the user"),
    ],
)
def test_vacation_response_rules(env: Env, extra: str, mail_from: str, to: str, why: str) -> None:
    env.store.save_script(USER, VACATION)
    action = env.route(raw(extra, to=to), mail_from=mail_from)
    assert action.extra["sieve:vacation"] == f"skipped: {why}"
    assert env.outbox.sent == []


def test_vacation_reply_to_alias_address_and_custom_fields(env: Env) -> None:
    env.store.save_script(
        USER,
        'require "vacation";\nvacation :subject "Out" :from "Bob <bob.alias@pillarbox.test>"'
        ' :addresses "bob.alias@pillarbox.test" "Back soon";',
    )
    env.route(raw(to="Bob <bob.alias@pillarbox.test>", extra="Auto-Submitted: no\r\n"))
    [(_, _, data)] = env.outbox.sent
    reply = email.message_from_bytes(data)
    assert reply["Subject"] == "Out" and "bob.alias@pillarbox.test" in reply["From"]


def test_ctl_commands(tmp_path: Path) -> None:
    from appliance.filters.sieve_ctl import sieve_handlers

    store = SieveStore(tmp_path / "sieve")
    h = sieve_handlers(store)

    async def go() -> list[object]:
        return [
            await h["sieve.check"]({"script": "keep"}),
            await h["sieve.save"]({"user": USER, "script": "if true {\n  bogus;\n}"}),
            await h["sieve.save"]({"user": USER, "script": "discard;"}),
            await h["sieve.get"]({"user": USER}),
            await h["sieve.delete"]({"user": USER}),
            await h["sieve.get"]({"user": USER}),
            await h["sieve.get"]({"user": "../x"}),
            await h["sieve.save"]({"user": USER}),
        ]

    check, bad, good, got, deleted, gone, bad_user, missing = asyncio.run(go())
    assert check == {
        "ok": False,
        "error": "expected ';' after keep, found end of script",
        "line": 1,
        "column": 5,
    }
    assert bad == {"ok": False, "error": "unknown command 'bogus'", "line": 2, "column": 3}
    assert good == {"ok": True}
    assert got == {"script": "discard;"}
    assert deleted == {"deleted": True} and gone == {"script": None}
    assert isinstance(bad_user, dict) and bad_user["ok"] is False
    assert isinstance(missing, dict) and "script" in str(missing["error"])


def test_redirect_loop_control_keeps(env: Env) -> None:
    env.store.save_script(USER, 'redirect "bob@elsewhere.test";')
    hops = "".join(
        f"Received: from hop{i}.test by x.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        for i in range(31)
    )
    action = env.route(hops.encode() + raw())
    assert action.mailboxes == ("INBOX",) and action.redirect == ()


def test_no_vacation_or_reject_notice_for_junk(env: Env) -> None:
    env.store.save_script(USER, VACATION)
    assert env.route(raw(), verdict=Verdict("junk")).extra["sieve:vacation"] == "skipped: spam"
    env.store.save_script(USER, 'require "reject";\nreject "no";')
    env.route(raw(), verdict=Verdict("junk"))
    assert env.outbox.sent == []


def test_address_test_uses_undecoded_fields(env: Env) -> None:
    env.store.save_script(
        USER,
        'require "fileinto";\nif address :localpart :is "from" "Doe" { fileinto "Wrong"; }\n'
        'if address :is "from" "j@example.org" { fileinto "Right"; }',
    )
    data = raw().replace(
        b"From: Alice <alice@example.org>", b"From: =?utf-8?q?Doe=2C_John?= <j@example.org>"
    )
    assert env.route(data).mailboxes == ("Right",)
