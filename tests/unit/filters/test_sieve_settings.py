"""Mail settings <-> the user's Sieve script: round trip, the parser accepts every
generated script, the user's own text is kept, and the script does what the page says."""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy

import pytest

from appliance.filters.sieve_eval import SieveMessage, SieveOutcome, run_script
from appliance.filters.sieve_parse import parse
from appliance.filters.sieve_settings import (
    Forwarding,
    MailSettings,
    Rule,
    UserScript,
    Vacation,
    check,
    read,
    render,
)
from appliance.filters.sieve_vacation import refuse_reason

AWAY = Vacation(True, "", "", "", "I am away.", 7)
CASES: dict[str, MailSettings] = {
    "empty": MailSettings(),
    "vacation, no dates": MailSettings(vacation=AWAY),
    "vacation, both dates": MailSettings(
        vacation=Vacation(True, "2026-12-01", "2026-12-24", "Out of office", "Back on the 28th.", 3)
    ),
    "vacation to aliases too": MailSettings(
        vacation=Vacation(True, "", "", "", "x", 7, ("info@pillarbox.test", "sales@pillarbox.test"))
    ),
    "vacation, start only": MailSettings(vacation=Vacation(True, "2026-12-01", "", "", "x", 1)),
    "vacation, end only": MailSettings(vacation=Vacation(True, "", "2026-12-24", "", "x", 30)),
    "vacation off keeps its text": MailSettings(
        vacation=Vacation(False, "2026-12-01", "", "Away", "Gone fishing.", 7)
    ),
    "quotes, backslashes, newlines, unicode": MailSettings(
        vacation=Vacation(True, "", "", 'Say "hi" \\ bye', 'Line 1\n"Line" 2\\\nZoë ✓', 7),
        rules=(Rule("subject", 'a "b" \\c', "folder", 'My "Folder"'),),
    ),
    "forward and keep": MailSettings(forwarding=Forwarding(("a@example.net",), True)),
    "forward only, two": MailSettings(
        forwarding=Forwarding(("a@example.net", "b@example.org"), False)
    ),
    "every rule kind": MailSettings(
        rules=(
            Rule("from", "boss@", "folder", "Work"),
            Rule("subject", "viagra", "junk"),
            Rule("to", "list@example.net", "forward", "me@example.org"),
            Rule("from", "spammer", "discard"),
        )
    ),
    "all together": MailSettings(
        vacation=AWAY,
        forwarding=Forwarding(("a@example.net",), True),
        rules=(Rule("from", "x", "junk"),),
    ),
}
OWN_TEXT = [
    "",
    'require "body";\nif body :contains "unsubscribe" { discard; }\n',
    '# my notes\nrequire ["fileinto", "imap4flags"];\nif size :over 1M { addflag "big"; }\n',
    '/* c */ require ["envelope"]; if envelope :is "from" "x@y.z" { stop; }\n',
]


@pytest.mark.parametrize("settings", CASES.values(), ids=list(CASES))
@pytest.mark.parametrize("own", OWN_TEXT)
def test_round_trip(settings: MailSettings, own: str) -> None:
    start = read(own or None)
    script = render(start, settings)
    parse(script)  # the project's parser accepts every generated script
    back = read(script)
    assert back.settings == settings
    assert back.after.strip() == start.after.strip()
    assert bool(back.note) == bool(own)  # own text is pointed out, nothing else
    assert render(back, settings) == script  # stable: saving again changes nothing


def test_own_text_above_the_section_stays_above() -> None:
    script = render(read(None), MailSettings(vacation=AWAY))
    edited = script.replace(
        "# pillarbox:begin", 'if header :is "x-a" "1" { stop; }\n# pillarbox:begin'
    )
    back = read(edited)
    assert back.before == 'if header :is "x-a" "1" { stop; }\n'
    again = render(back, MailSettings())
    assert again.index("x-a") < again.index("# pillarbox:begin")
    assert "around the settings" in back.note


def test_requires_only_what_is_still_used() -> None:
    start = read('require ["body", "vacation", "copy"];\nif body :contains "x" { discard; }\n')
    script = render(start, MailSettings(rules=(Rule("from", "a", "junk"),)))
    assert script.splitlines()[0] == 'require ["body", "fileinto"];'


def test_a_hand_edited_section_is_reported() -> None:
    script = render(read(None), MailSettings(rules=(Rule("from", "a", "junk"),)))
    edited = script.replace('fileinto "Junk";', 'fileinto "Elsewhere";')
    back = read(edited)
    assert back.settings.rules == (Rule("from", "a", "junk"),)
    assert "changed outside this page" in back.note
    assert 'fileinto "Junk";' in render(back, back.settings)


def test_unreadable_settings_line_is_reported() -> None:
    script = render(read(None), MailSettings(vacation=AWAY))
    broken = script.replace('{"forward"', '{"forwrd', 1)
    assert "could not be read" in read(broken).note
    assert read(broken).settings == MailSettings()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (MailSettings(vacation=Vacation(True, "2026-13-01", "", "", "x")), "start"),
        (MailSettings(vacation=Vacation(True, "2026-12-02", "2026-12-01", "", "x")), "end"),
        (MailSettings(vacation=Vacation(True, "", "", "", " ")), "body"),
        (MailSettings(vacation=Vacation(True, "", "", "", "x", 0)), "days"),
        (MailSettings(vacation=Vacation(True, "", "", "", "x", 31)), "days"),
        (MailSettings(vacation=Vacation(True, "", "", "s" * 201, "x")), "subject"),
        (MailSettings(vacation=Vacation(True, "", "", "a\r\nBcc: x@y.z", "x")), "subject"),
        (MailSettings(rules=(Rule("from", "a\nb", "junk"),)), "rule-0"),
        (MailSettings(rules=(Rule("from", "a", "folder", "Wo\trk"),)), "rule-0"),
        (MailSettings(forwarding=Forwarding(("not an address",))), "addresses"),
        (MailSettings(forwarding=Forwarding(tuple(f"a{i}@x.org" for i in range(5)))), "addresses"),
        (MailSettings(rules=(Rule("from", "", "junk"),)), "rule-0"),
        (MailSettings(rules=(Rule("body", "x", "junk"),)), "rule-0"),
        (MailSettings(rules=(Rule("from", "x", "forward", "nobody"),)), "rule-0"),
        (MailSettings(rules=(Rule("from", "x", "folder", "Nope"),)), "rule-0"),
        (MailSettings(rules=tuple(Rule("from", "x", "junk") for _ in range(51))), "rules"),
    ],
)
def test_check_names_the_field(settings: MailSettings, field: str) -> None:
    assert field in check(settings, frozenset({"INBOX", "Work"}))


def test_check_accepts_good_settings() -> None:
    for settings in CASES.values():
        folders = frozenset({"INBOX", "Work", 'My "Folder"'})
        assert check(settings, folders) == {}


# ------------------------------------------------------------------ behaviour


def outcome(settings: MailSettings, raw: bytes, now: dt.datetime | None = None) -> SieveOutcome:
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    msg = SieveMessage(headers, raw, "alice@example.org", "bob@pillarbox.test", len(raw))
    return run_script(parse(render(UserScript(), settings)), msg, now=now)


MAIL = (
    b"From: Boss <boss@example.org>\r\nTo: bob@pillarbox.test\r\nCc: list@example.net\r\n"
    b"Subject: Quarterly numbers\r\n\r\nhi\r\n"
)
NOON = dt.datetime(2026, 12, 10, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("rules", "fileinto", "redirects", "keep"),
    [
        ((Rule("from", "BOSS@example", "folder", "Work"),), ("Work",), (), False),
        ((Rule("subject", "quarterly", "junk"),), ("Junk",), (), False),
        (
            (Rule("to", "list@example.net", "forward", "me@example.org"),),
            (),
            ("me@example.org",),
            False,
        ),
        ((Rule("from", "boss", "discard"),), (), (), False),
        ((Rule("from", "nobody", "discard"),), (), (), True),
        # first match wins
        (
            (Rule("from", "boss", "folder", "A"), Rule("subject", "numbers", "folder", "B")),
            ("A",),
            (),
            False,
        ),
    ],
)
def test_rules_act_as_shown(
    rules: tuple[Rule, ...], fileinto: tuple[str, ...], redirects: tuple[str, ...], keep: bool
) -> None:
    out = outcome(MailSettings(rules=rules), MAIL)
    assert tuple(m for m, _ in out.fileinto) == fileinto
    assert out.redirects == redirects
    assert out.keep is keep


@pytest.mark.parametrize(
    ("start", "end", "replies"),
    [
        ("", "", True),
        ("2026-12-10", "2026-12-10", True),
        ("2026-12-01", "2026-12-24", True),
        ("2026-12-11", "", False),
        ("", "2026-12-09", False),
    ],
)
def test_vacation_dates(start: str, end: str, replies: bool) -> None:
    settings = MailSettings(vacation=Vacation(True, start, end, "Away", "Gone.", 5))
    out = outcome(settings, MAIL, now=NOON)
    assert (out.vacation is not None) is replies
    if replies:
        assert out.vacation is not None
        assert (out.vacation.reason, out.vacation.subject, out.vacation.days) == (
            "Gone.",
            "Away",
            5,
        )
    assert out.keep


@pytest.mark.parametrize(
    ("aliases", "why"), [((), "not addressed to the user"), (("info@pillarbox.test",), "")]
)
def test_vacation_answers_mail_to_an_alias(aliases: tuple[str, ...], why: str) -> None:
    to_alias = MAIL.replace(b"To: bob@pillarbox.test", b"To: info@pillarbox.test")
    out = outcome(MailSettings(vacation=Vacation(True, "", "", "", "Gone.", 7, aliases)), to_alias)
    assert out.vacation is not None
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(to_alias)
    assert refuse_reason(out.vacation, head, "alice@example.org", "bob@pillarbox.test") == why


@pytest.mark.parametrize("keep", [True, False])
def test_forwarding_keeps_a_copy_or_not(keep: bool) -> None:
    settings = MailSettings(
        forwarding=Forwarding(("a@example.net",), keep),
        rules=(Rule("from", "boss", "folder", "Work"),),
    )
    out = outcome(settings, MAIL)
    assert out.redirects == ("a@example.net",)
    # with a copy the rules still file it; without, nothing stays here
    assert tuple(m for m, _ in out.fileinto) == (("Work",) if keep else ())
    assert not out.keep
