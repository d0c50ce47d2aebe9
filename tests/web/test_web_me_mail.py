"""The user's own mail settings pages (webui/me_mail.py) against the daemon's real
sieve.* and mailbox.* handlers: what each form stores in the Sieve script, validation,
own script text kept, storage use, emptying Junk/Trash, and per route that nobody reads
or changes another user's settings or mail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance.accounts import Accounts
from appliance.filters.sieve_parse import parse
from appliance.filters.sieve_settings import Forwarding, MailSettings, Rule, Vacation, read, render
from tests.web.mail_ctl import MailCtl
from tests.web.web_helpers import ADMIN, PASSWORD, Env, admin_client, post

OTHER = "other@pillarbox.test"
OTHER_SCRIPT = render(
    read(None),
    MailSettings(
        vacation=Vacation(True, "", "", "Other's secret subject", "Other's secret reply", 7),
        forwarding=Forwarding(("other-fwd@example.net",), True),
        rules=(Rule("from", "other-secret-sender", "junk"),),
    ),
)


BOB = "bob@pillarbox.test"  # a mailbox user who is not an admin


@pytest.fixture(params=[BOB, ADMIN], ids=["user", "admin"])
def me(
    env: Env, accounts_template: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[FlaskClient, MailCtl, str]]:
    """A client signed in (through the sign-in form) as a mailbox user, or as the admin,
    beside OTHER, whose script and mail must stay out of reach."""
    ctl = MailCtl(cfg=env.cfg)
    env.ctl = ctl
    client = admin_client(env, accounts_template)
    user: str = request.param
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_user(OTHER, PASSWORD, quota_bytes=50 * 1024 * 1024)
    if user == BOB:
        accounts.add_user(BOB, PASSWORD)
        client = client.application.test_client()
        r = post(client, "/login", {"email": BOB, "password": PASSWORD})
        assert r.status_code == 302 and r.location == "/me"
    accounts.set_quota(user, 1024 * 1024)
    ctl.sieve.save_script(OTHER, OTHER_SCRIPT)
    for mailbox in ("INBOX", "Junk", "Trash"):
        ctl.put(OTHER, mailbox, f"other {mailbox}", tmp_path)
    ctl.store.ensure_user(user)
    yield client, ctl, user


def settings_of(ctl: MailCtl, user: str) -> MailSettings:
    return read(ctl.sieve.get_script(user)).settings


def test_vacation_form_writes_the_script(me: tuple[FlaskClient, MailCtl, str], env: Env) -> None:
    client, ctl, user = me
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_alias("info@pillarbox.test", user)
    accounts.add_alias("@pillarbox.test", user)  # a catch-all is no address of the user
    accounts.add_alias("sales@pillarbox.test", OTHER)
    form = {
        "enabled": "1",
        "start": "2026-12-20",
        "end": "2027-01-02",
        "subject": "Away for the holidays",
        "body": 'Back on 3 January.\r\nUrgent? Call "Anna".',
        "days": "3",
    }
    r = post(client, "/me/mail/vacation", form)
    assert r.status_code == 302, r.get_data(as_text=True)
    script = ctl.sieve.get_script(user)
    assert script is not None
    parse(script)
    assert settings_of(ctl, user).vacation == Vacation(
        True,
        "2026-12-20",
        "2027-01-02",
        "Away for the holidays",
        'Back on 3 January.\nUrgent? Call "Anna".',
        3,
        ("info@pillarbox.test",),
    )
    page = client.get("/me/mail/vacation").get_data(as_text=True)
    assert 'value="2026-12-20"' in page and "Away for the holidays" in page
    assert "Mail sent to\n     info@pillarbox.test is answered too." in page
    assert "checked" in page
    r = post(client, "/me/mail/vacation", {**form, "enabled": ""})  # off: text kept
    assert r.status_code == 302
    assert settings_of(ctl, user).vacation.enabled is False
    assert "vacation :days" not in (ctl.sieve.get_script(user) or "")  # no reply is sent


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"end": "2026-12-01"}, "end", "before the first day"),
        ({"start": "20.12.2026"}, "start", "YYYY-MM-DD"),
        ({"body": "  "}, "body", "Write the reply"),
        ({"days": "0"}, "days", "Between 1 and 30"),
        ({"subject": "Away\r\nBcc: all@example.net"}, "subject", "One line"),
    ],
)
def test_vacation_form_refuses_bad_input(
    me: tuple[FlaskClient, MailCtl, str], change: dict[str, str], field: str, text: str
) -> None:
    client, ctl, user = me
    form = {
        "enabled": "1",
        "start": "2026-12-20",
        "end": "",
        "subject": "",
        "body": "x",
        "days": "7",
    }
    r = post(client, "/me/mail/vacation", {**form, **change})
    assert r.status_code == 400
    assert text in r.get_data(as_text=True) and f'id="e-{field}"' in r.get_data(as_text=True)
    assert ctl.sieve.get_script(user) is None


def test_forwarding_form(me: tuple[FlaskClient, MailCtl, str]) -> None:
    client, ctl, user = me
    r = post(client, "/me/mail/forwarding", {"addresses": "A@Example.net\r\nb@example.org"})
    assert r.status_code == 302
    assert settings_of(ctl, user).forwarding == Forwarding(
        ("a@example.net", "b@example.org"), False
    )
    r = post(client, "/me/mail/forwarding", {"addresses": "a@example.net", "keep": "1"})
    assert settings_of(ctl, user).forwarding == Forwarding(("a@example.net",), True)
    for bad, text in (
        (user, "yourself"),
        ("nope", "Not an email address"),
        ("\n".join(f"x{i}@example.net" for i in range(5)), "At most 4"),
    ):
        r = post(client, "/me/mail/forwarding", {"addresses": bad})
        assert r.status_code == 400 and text in r.get_data(as_text=True)
    assert settings_of(ctl, user).forwarding == Forwarding(("a@example.net",), True)
    r = post(client, "/me/mail/forwarding", {"addresses": ""})
    assert r.status_code == 302
    assert ctl.sieve.get_script(user) is None  # nothing left: no script at all


def test_filter_rules_add_move_delete(me: tuple[FlaskClient, MailCtl, str]) -> None:
    client, ctl, user = me
    ctl.store.create_mailbox(user, "Work")
    assert "Work" in client.get("/me/mail/filters").get_data(as_text=True)
    rules = [
        {"field": "from", "contains": "boss@", "action": "folder", "folder": "Work"},
        {"field": "subject", "contains": "pills", "action": "junk"},
        {"field": "to", "contains": "list@", "action": "forward", "address": "Me@Example.org"},
        {"field": "from", "contains": "noise", "action": "discard"},
    ]
    for rule in rules:
        r = post(client, "/me/mail/filters", rule)
        assert r.status_code == 302, r.get_data(as_text=True)
    assert settings_of(ctl, user).rules == (
        Rule("from", "boss@", "folder", "Work"),
        Rule("subject", "pills", "junk"),
        Rule("to", "list@", "forward", "me@example.org"),
        Rule("from", "noise", "discard"),
    )
    assert (
        post(client, "/me/mail/filters/2/up", {}, form_page="/me/mail/filters").status_code == 302
    )
    assert [r.contains for r in settings_of(ctl, user).rules] == [
        "boss@",
        "list@",
        "pills",
        "noise",
    ]
    assert (
        post(client, "/me/mail/filters/0/delete", {}, form_page="/me/mail/filters").status_code
        == 302
    )
    assert [r.contains for r in settings_of(ctl, user).rules] == ["list@", "pills", "noise"]
    for path in ("/me/mail/filters/3/delete", "/me/mail/filters/0/up"):
        assert post(client, path, {}, form_page="/me/mail/filters").status_code == 404
    for bad in (
        {"field": "from", "contains": "x", "action": "folder", "folder": "Nope"},
        {"field": "from", "contains": "", "action": "junk"},
        {"field": "body", "contains": "x", "action": "junk"},
        {"field": "from", "contains": "x", "action": "forward", "address": "nobody"},
    ):
        r = post(client, "/me/mail/filters", bad)
        assert r.status_code == 400 and 'id="e-rule"' in r.get_data(as_text=True)
    assert len(settings_of(ctl, user).rules) == 3


def test_own_script_text_is_kept_and_pointed_out(me: tuple[FlaskClient, MailCtl, str]) -> None:
    client, ctl, user = me
    own = 'require ["body", "fileinto"];\nif body :contains "invoice" { fileinto "INBOX"; }\n'
    ctl.sieve.save_script(user, own)
    page = client.get("/me/mail/vacation").get_data(as_text=True)
    assert 'id="script-note"' in page and "ManageSieve" in page
    post(client, "/me/mail/forwarding", {"addresses": "a@example.net", "keep": "1"})
    script = ctl.sieve.get_script(user) or ""
    assert script.endswith('if body :contains "invoice" { fileinto "INBOX"; }\n')
    assert script.startswith('require ["body", "copy", "fileinto"];')
    post(client, "/me/mail/forwarding", {"addresses": ""})  # own text left: the script stays
    assert 'body :contains "invoice"' in (ctl.sieve.get_script(user) or "")


def test_storage_page_and_emptying(me: tuple[FlaskClient, MailCtl, str], tmp_path: Path) -> None:
    client, ctl, user = me
    for i in range(3):
        ctl.put(user, "Junk", f"junk {i}", tmp_path)
    ctl.put(user, "Trash", "old", tmp_path)
    ctl.put(user, "INBOX", "hello", tmp_path)
    page = client.get("/me/mail/").get_data(as_text=True)
    assert 'id="quota-meter" min="0" max="1048576"' in page
    assert re.search(r"<td>Junk</td>\s*<td data-label=\"Messages\">3</td>", page)
    assert "/me/mail/empty/junk" in page and "/me/mail/empty/trash" in page
    confirm = client.get("/me/mail/empty/junk").get_data(as_text=True)
    assert "Delete 3 messages" in confirm
    r = post(client, "/me/mail/empty/junk", {})
    assert r.status_code == 302
    assert "Junk is empty: 3 messages deleted." in client.get("/me/mail/").get_data(as_text=True)
    assert ctl.store.status(user, "Junk").messages == 0
    assert ctl.store.status(user, "INBOX").messages == 1
    assert post(client, "/me/mail/empty/trash", {}).status_code == 302
    assert ctl.store.status(user, "Trash").messages == 0
    assert client.get("/me/mail/empty/inbox").status_code == 404


ROUTES = [
    ("GET", "/me/mail/", None),
    ("GET", "/me/mail/vacation", None),
    ("POST", "/me/mail/vacation", {"enabled": "1", "body": "mine", "days": "7"}),
    ("GET", "/me/mail/forwarding", None),
    ("POST", "/me/mail/forwarding", {"addresses": "mine@example.net"}),
    ("GET", "/me/mail/filters", None),
    ("POST", "/me/mail/filters", {"field": "from", "contains": "mine", "action": "junk"}),
    ("POST", "/me/mail/filters/0/up", {}),
    ("POST", "/me/mail/filters/0/delete", {}),
    ("GET", "/me/mail/empty/junk", None),
    ("POST", "/me/mail/empty/junk", {}),
    ("POST", "/me/mail/empty/trash", {}),
]


@pytest.mark.parametrize(("method", "path", "form"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_no_route_reaches_another_users_settings(
    me: tuple[FlaskClient, MailCtl, str], method: str, path: str, form: dict[str, str] | None
) -> None:
    client, ctl, user = me
    # Another user's name wherever a careless view might look for one.
    smuggled = {"user": OTHER, "email": OTHER, "mailbox": OTHER, "account": OTHER}
    query = "?" + "&".join(f"{k}={v}" for k, v in smuggled.items())
    ctl.call_args.clear()
    if method == "GET":
        r = client.get(path + query)
    else:
        r = post(client, path + query, {**(form or {}), **smuggled}, form_page="/me/mail/filters")
    assert r.status_code in (200, 302, 404), r.status_code
    text = r.get_data(as_text=True)
    for secret in ("Other's secret", "other-fwd@example.net", "other-secret-sender"):
        assert secret not in text
    assert ctl.sieve.get_script(OTHER) == OTHER_SCRIPT
    for mailbox in ("INBOX", "Junk", "Trash"):
        assert ctl.store.status(OTHER, mailbox).messages == 1
    users = {a.get("user") for a in ctl.call_args if "user" in a}
    assert users <= {user}


def test_signed_out_visitors_are_sent_to_sign_in(env: Env, accounts_template: Path) -> None:
    client = admin_client(env, accounts_template)
    with client.session_transaction() as session:
        session.clear()
    for method, path, _ in ROUTES:
        r = client.get(path) if method == "GET" else client.post(path, data={})
        assert r.status_code in (302, 400), (method, path)
        if r.status_code == 302:
            assert "/login" in r.location


def test_daemon_down_says_so(me: tuple[FlaskClient, MailCtl, str]) -> None:
    client, ctl, _user = me
    ctl.running = False
    for path in ("/me/mail/", "/me/mail/vacation", "/me/mail/forwarding", "/me/mail/filters"):
        r = client.get(path)
        assert r.status_code == 503 and "not answering" in r.get_data(as_text=True)
