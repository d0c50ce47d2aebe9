"""Issue 20: a signed-in mailbox user who is not an admin reaches no admin page and no
other user's data. Every route of the app is enumerated from ``app.url_map``: a new
admin route is covered without touching this file, and a new self-service route must not
take an address."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from appliance.accounts import Accounts
from tests.web.web_helpers import ADMIN, CSRF_RE, PASSWORD, QUEUE_ENTRY, Env, post
from webui.security import PUBLIC_ENDPOINTS, self_service

BOB = "bob@pillarbox.test"  # the signed-in user, not an admin
CAROL = "carol@pillarbox.test"  # another user whose data bob must not reach
CAROL_PASSWORD = "carol horse battery staple"

# Arguments that name a user or their data: a self-service route takes none of them (it
# acts on the session's user; an id it takes is looked up within that user's data).
USER_ARGUMENTS = {"email", "user", "address", "login", "domain", "source", "target", "mailbox"}


def _rules(app: Flask) -> list[tuple[Rule, str]]:
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule, method))
    return out


def _is_admin_route(endpoint: str) -> bool:
    return endpoint not in PUBLIC_ENDPOINTS and not self_service(endpoint)


@pytest.fixture
def users(admin: FlaskClient, env: Env) -> dict[str, Any]:
    """bob and carol (no admins); carol has an app password and a web session."""
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_user(BOB, PASSWORD, quota_bytes=100 * 1024 * 1024)
    accounts.add_user(CAROL, CAROL_PASSWORD)
    carol_app, carol_secret = accounts.add_app_password(CAROL, "carol-phone-label")
    carol = admin.application.test_client()
    assert post(carol, "/login", {"email": CAROL, "password": CAROL_PASSWORD}).status_code == 302
    bob = admin.application.test_client()
    r = post(bob, "/login", {"email": BOB, "password": PASSWORD})
    assert r.status_code == 302 and r.location == "/me"
    cookie = carol.get_cookie("pillarbox_session")
    assert cookie is not None
    env.ctl.queue = [dict(QUEUE_ENTRY)]
    return {
        "bob": bob,
        "carol": carol,
        "carol_app": carol_app.id,
        "carol_secret": carol_secret,
        "carol_key": hashlib.sha256(cookie.value.encode()).hexdigest(),
    }


def _url(rule: Rule, ids: dict[str, Any]) -> str:
    values: dict[str, Any] = {}
    for arg in rule.arguments:
        values[arg] = {
            "email": CAROL,
            "app_id": ids["carol_app"],
            "domain": "pillarbox.test",
            "name": "sdb",
            "queue_id": QUEUE_ENTRY["id"],
            "job_id": "0" * 32,
            "token": "x" * 43,
            "filename": "style.css",
        }[arg]
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


# What a POST carries: enough that each admin action would go through if the check
# were missing (a new user, carol's new password, carol's deletion, a disk format...).
FORM = {
    "local": "mallory",
    "domain": "pillarbox.test",
    "password": "mallory horse battery",
    "quota": "1",
    "admin": "1",
    "source": "postmaster@pillarbox.test",
    "target": BOB,
    "label": "stolen",
    "disabled": "1",
    "hostname": "evil.example",
    "action": "reboot",
}
CONFIRM = {
    "mail.user_delete": CAROL,
    "hardware.format_disk": "sdb",
    "mail.user_password": "mallory horse battery",
    "mail.users": "mallory horse battery",
}


def _state(env: Env) -> dict[str, Any]:
    accounts = Accounts(env.cfg.accounts_db)
    people = accounts.list_users()
    return {
        "users": people,
        "stamps": [accounts.password_stamp(u.email) for u in people],
        "aliases": accounts.list_aliases(),
        "domains": accounts.list_domains(),
        "apps": [accounts.list_app_passwords(u.email) for u in people],
        "config": env.cfg_path.read_bytes(),
        "helper": env.helper_commands(),
        "queue": list(env.ctl.queue),
    }


def test_no_admin_route_answers_a_signed_in_user(
    users: dict[str, Any], env: Env, admin: FlaskClient, app_routes: list[tuple[Rule, str]]
) -> None:
    bob: FlaskClient = users["bob"]
    token = CSRF_RE.search(bob.get("/me").get_data(as_text=True))
    assert token
    before = _state(env)
    calls_before = len(env.ctl.calls)
    checked: set[str] = set()
    for rule, method in app_routes:
        if not _is_admin_route(rule.endpoint):
            continue
        url = _url(rule, users)
        if method == "GET":
            r = bob.get(url)
        else:
            data = {**FORM, "csrf_token": token.group(1)}
            data["confirm"] = CONFIRM.get(rule.endpoint, CAROL)
            r = bob.post(url, data=data)
        body = r.get_data(as_text=True)
        where = f"{method} {url} ({rule.endpoint})"
        if rule.endpoint == "dashboard.index" and method == "GET":
            assert r.status_code == 302 and r.location == "/me", where
        else:
            assert r.status_code == 403, f"{where}: {r.status_code}"
            assert "for the admins of this box" in body, where
        assert CAROL not in body and "carol-phone-label" not in body, where
        assert bob.get("/me").status_code == 200, f"{where} signed bob out"
        checked.add(rule.endpoint)
    assert len(checked) >= 40 and checked >= {  # every admin route, not a handful
        "mail.users",
        "mail.user",
        "mail.user_password",
        "mail.user_delete",
        "mail.app_password_add",
        "mail.aliases",
        "hardware.format_disk",
        "dashboard.power",
        "clients.apple_profile",
        "backup.restore",
    }
    assert _state(env) == before  # nothing changed: no user, password, alias, disk, config
    commands = {"queue.delete", "queue.retry", "queue.flush", "reload", "backup_run"}
    assert not commands & set(env.ctl.calls[calls_before:])
    assert bob.get("/no-such-page").status_code == 404  # an unknown path is no admin page


def test_admin_gets_the_same_get_routes(
    users: dict[str, Any], admin: FlaskClient, app_routes: list[tuple[Rule, str]]
) -> None:
    """The 403s above are about the role: the admin is let through on the same URLs."""
    for rule, method in app_routes:
        if method == "GET" and _is_admin_route(rule.endpoint):
            url = _url(rule, users)
            assert admin.get(url).status_code != 403, url


def test_self_service_routes_take_no_address(app_routes: list[tuple[Rule, str]]) -> None:
    found = [rule for rule, _ in app_routes if self_service(rule.endpoint)]
    assert {r.endpoint for r in found} >= {
        "me.index",
        "me.password",
        "me.app_passwords",
        "me.app_password_add",
        "me.app_password_revoke",
        "me.app_password_profile",
        "me.sessions",
        "me.session_end",
        "me.sessions_end_others",
        "twofactor.page",
        "twofactor.recovery",
    }
    for rule in found:
        assert not set(rule.arguments) & USER_ARGUMENTS, rule.rule


def test_self_service_acts_on_the_own_account_only(users: dict[str, Any], env: Env) -> None:
    bob: FlaskClient = users["bob"]
    carol: FlaskClient = users["carol"]
    accounts = Accounts(env.cfg.accounts_db)
    page = bob.get("/me/app-passwords").get_data(as_text=True)
    assert "carol-phone-label" not in page and CAROL not in page
    devices = bob.get("/me/devices").get_data(as_text=True)
    assert users["carol_key"] not in devices
    # Carol's app password id, session key and secret, sent by bob, do nothing.
    r = post(bob, f"/me/app-passwords/{users['carol_app']}/revoke", {}, form_page="/me")
    assert r.status_code == 302
    assert [a.id for a in accounts.list_app_passwords(CAROL)] == [users["carol_app"]]
    assert (
        post(bob, "/me/devices/end", {"key": users["carol_key"]}, form_page="/me").status_code
        == 302
    )
    assert carol.get("/me").status_code == 200  # carol is still signed in
    r = post(bob, "/me/app-passwords/profile", {"secret": users["carol_secret"]}, form_page="/me")
    assert r.status_code == 403
    assert users["carol_secret"] not in r.get_data(as_text=True)
    # Bob's password change needs bob's password and changes bob's only.
    stamp = accounts.password_stamp(CAROL)
    r = post(
        bob,
        "/me/password",
        {"current": CAROL_PASSWORD, "password": "x horse battery", "confirm": "x horse battery"},
        form_page="/me",
    )
    assert r.status_code == 403
    assert accounts.password_stamp(CAROL) == stamp
    assert accounts.authenticate(BOB, PASSWORD, app_passwords=False) is not None
    # The usage bob's page asks the daemon for is bob's.
    env.ctl.calls.clear()
    env.ctl.call_args.clear()
    bob.get("/me")
    assert {"user": BOB} in env.ctl.call_args


def test_demoted_admin_loses_admin_pages_at_once(admin: FlaskClient, env: Env) -> None:
    """The role is read from accounts.sqlite on every request, not kept in the session."""
    assert admin.get("/users").status_code == 200
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_user("boss@pillarbox.test", PASSWORD, is_admin=True)
    boss = admin.application.test_client()
    assert (
        post(boss, "/login", {"email": "boss@pillarbox.test", "password": PASSWORD}).location == "/"
    )
    assert boss.get("/users").status_code == 200
    accounts.set_admin("boss@pillarbox.test", False)
    assert boss.get("/users").status_code == 403
    assert boss.get("/me").status_code == 200
    assert ADMIN  # the first admin is untouched


@pytest.fixture
def app_routes(admin: FlaskClient) -> list[tuple[Rule, str]]:
    return _rules(admin.application)
