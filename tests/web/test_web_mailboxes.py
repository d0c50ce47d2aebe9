"""Domains, users, aliases and app passwords through the web forms."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from appliance.accounts import Accounts
from tests.addresses import REFUSED
from tests.web.web_helpers import ADMIN, PASSWORD, Env, post

ANNA = "anna@pillarbox.test"


def accounts(env: Env) -> Accounts:
    return Accounts(env.cfg.accounts_db)


def add_anna(client: FlaskClient, **extra: str) -> None:
    data = {
        "local": "anna",
        "domain": "pillarbox.test",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "quota": "500",
        **extra,
    }
    r = post(client, "/users", data)
    assert r.status_code == 302, r.get_data(as_text=True)


# ------------------------------------------------------------------ domains


def test_domain_add_list_remove(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/domains", {"domain": "Example.ORG"})
    assert r.status_code == 302 and "/dns?domain=example.org" in r.location
    assert "example.org" in accounts(env).list_domains()
    assert "example.org" in admin.get("/domains").get_data(as_text=True)
    r = post(admin, "/domains/example.org/delete", {}, form_page="/domains")
    assert r.status_code == 302
    assert "example.org" not in accounts(env).list_domains()


@pytest.mark.parametrize("name", ["", "nodot", "bad_domain!.org", "-x.org"])
def test_domain_invalid_shows_error(admin: FlaskClient, name: str) -> None:
    r = post(admin, "/domains", {"domain": name})
    assert r.status_code == 400
    assert "not a valid domain name" in r.get_data(as_text=True)


def test_domain_duplicate_and_in_use(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/domains", {"domain": "pillarbox.test"})
    assert r.status_code == 400 and "already exists" in r.get_data(as_text=True)
    r = post(admin, "/domains/pillarbox.test/delete", {}, form_page="/domains")
    assert r.status_code == 302
    page = admin.get("/domains").get_data(as_text=True)
    assert "still has 1 user" in page
    assert "pillarbox.test" in accounts(env).list_domains()


# ------------------------------------------------------------------ users


def test_user_add(admin: FlaskClient, env: Env) -> None:
    add_anna(admin)
    user = accounts(env).get_user(ANNA)
    assert user is not None and not user.is_admin
    assert user.quota_bytes == 500 * 1024 * 1024
    assert accounts(env).authenticate(ANNA, PASSWORD) is not None
    assert ANNA in admin.get("/users").get_data(as_text=True)


def test_user_add_admin_flag(admin: FlaskClient, env: Env) -> None:
    add_anna(admin, admin="1")
    user = accounts(env).get_user(ANNA)
    assert user is not None and user.is_admin


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"confirm": "different!"}, "not the same"),
        ({"password": "short", "confirm": "short"}, "at least 8 characters"),
        ({"quota": "-5"}, "whole number of megabytes"),
        ({"quota": "lots"}, "whole number of megabytes"),
        ({"domain": "elsewhere.org"}, "Choose one of your domains"),
        ({"local": "a b"}, "not allowed"),
        ({"local": "admin"}, "already exists"),
    ],
)
def test_user_add_errors(admin: FlaskClient, env: Env, extra: dict[str, str], message: str) -> None:
    data = {
        "local": "anna",
        "domain": "pillarbox.test",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "quota": "0",
        **extra,
    }
    r = post(admin, "/users", data)
    assert r.status_code == 400
    assert message in r.get_data(as_text=True)
    assert accounts(env).get_user(ANNA) is None


def test_user_page_unknown_is_404(admin: FlaskClient) -> None:
    assert admin.get("/users/nobody@pillarbox.test").status_code == 404


def test_change_password(admin: FlaskClient, env: Env) -> None:
    add_anna(admin)
    page = f"/users/{ANNA}"
    r = post(
        admin, f"{page}/password", {"password": "new secret pw", "confirm": "other"}, form_page=page
    )
    assert r.status_code == 400 and "not the same" in r.get_data(as_text=True)
    r = post(admin, f"{page}/password", {"password": "short", "confirm": "short"}, form_page=page)
    assert r.status_code == 400 and "at least 8" in r.get_data(as_text=True)
    r = post(
        admin,
        f"{page}/password",
        {"password": "new secret pw", "confirm": "new secret pw"},
        form_page=page,
    )
    assert r.status_code == 302
    assert accounts(env).authenticate(ANNA, "new secret pw") is not None
    assert accounts(env).authenticate(ANNA, PASSWORD) is None


def test_change_quota(admin: FlaskClient, env: Env) -> None:
    add_anna(admin)
    page = f"/users/{ANNA}"
    assert post(admin, f"{page}/quota", {"quota": "x"}, form_page=page).status_code == 400
    assert post(admin, f"{page}/quota", {"quota": "0"}, form_page=page).status_code == 302
    user = accounts(env).get_user(ANNA)
    assert user is not None and user.quota_bytes == 0


def test_delete_user_needs_typed_address(admin: FlaskClient, env: Env) -> None:
    add_anna(admin)
    page = f"/users/{ANNA}"
    r = post(admin, f"{page}/delete", {"confirm": "anna"}, form_page=page)
    assert r.status_code == 400 and f"Type {ANNA} to confirm" in r.get_data(as_text=True)
    assert accounts(env).get_user(ANNA) is not None
    r = post(admin, f"{page}/delete", {"confirm": ANNA.upper()}, form_page=page)
    assert r.status_code == 302
    assert accounts(env).get_user(ANNA) is None


def test_cannot_delete_self(admin: FlaskClient, env: Env) -> None:
    page = f"/users/{ADMIN}"
    r = post(admin, f"{page}/delete", {"confirm": ADMIN}, form_page="/users")
    assert r.status_code == 400
    assert "signed in with" in r.get_data(as_text=True)
    assert accounts(env).get_user(ADMIN) is not None


def test_switch_off_and_on(admin: FlaskClient, env: Env) -> None:
    add_anna(admin)
    page = f"/users/{ANNA}"
    r = post(admin, f"{page}/disabled", {"disabled": "1"}, form_page=page)
    assert r.status_code == 302
    assert accounts(env).authenticate(ANNA, PASSWORD) is None
    assert not accounts(env).resolve(ANNA).exists
    assert "switched off" in admin.get(page).get_data(as_text=True)
    post(admin, f"{page}/disabled", {"disabled": "0"}, form_page=page)
    assert accounts(env).authenticate(ANNA, PASSWORD) is not None


def test_cannot_switch_off_self(admin: FlaskClient, env: Env) -> None:
    page = f"/users/{ADMIN}"
    r = post(admin, f"{page}/disabled", {"disabled": "1"}, form_page=page)
    assert r.status_code == 400 and "account you use" in r.get_data(as_text=True)
    user = accounts(env).get_user(ADMIN)
    assert user is not None and not user.disabled


def test_app_password_shown_once_and_works(admin: FlaskClient, env: Env) -> None:
    add_anna(admin)
    page = f"/users/{ANNA}"
    r = post(admin, f"{page}/app-passwords", {"label": "Anna's phone"}, form_page=page)
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    start = body.index('id="new-app-password">') + len('id="new-app-password">')
    secret = body[start : body.index("<", start)]
    assert len(secret) == 36  # 8-hex public id + four groups of 6 hex
    assert accounts(env).authenticate(ANNA, secret) is not None
    again = admin.get(page).get_data(as_text=True)
    assert secret not in again and "Anna&#39;s phone" in again
    (app,) = accounts(env).list_app_passwords(ANNA)
    r = post(admin, f"{page}/app-passwords/{app.id}/delete", {}, form_page=page)
    assert r.status_code == 302
    assert accounts(env).authenticate(ANNA, secret) is None


def test_app_password_needs_label(admin: FlaskClient) -> None:
    add_anna(admin)
    page = f"/users/{ANNA}"
    r = post(admin, f"{page}/app-passwords", {"label": "  "}, form_page=page)
    assert r.status_code == 400 and "Give the device a name" in r.get_data(as_text=True)


# ------------------------------------------------------------------ aliases


def test_alias_add_and_remove(admin: FlaskClient, env: Env) -> None:
    add_anna(admin)
    r = post(admin, "/aliases", {"source": "info@pillarbox.test", "target": ANNA})
    assert r.status_code == 302
    assert accounts(env).resolve("info@pillarbox.test").local == (ANNA,)
    assert "info@pillarbox.test" in admin.get(f"/users/{ANNA}").get_data(as_text=True)
    r = post(
        admin,
        "/aliases/delete",
        {"source": "info@pillarbox.test", "target": ANNA},
        form_page="/aliases",
    )
    assert r.status_code == 302
    assert not accounts(env).resolve("info@pillarbox.test").exists


def test_catch_all_alias(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/aliases", {"source": "@pillarbox.test", "target": ADMIN})
    assert r.status_code == 302
    assert accounts(env).resolve("random@pillarbox.test").local == (ADMIN,)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("info@pillarbox.test", "not-an-address", "is not an email address"),
        ("info@elsewhere.org", ADMIN, "is not served here"),
        (ADMIN, "x@example.net", "an alias cannot shadow it"),
        ("", ADMIN, "is not an email address"),
    ],
)
def test_alias_errors(admin: FlaskClient, source: str, target: str, message: str) -> None:
    r = post(admin, "/aliases", {"source": source, "target": target})
    assert r.status_code == 400
    assert message in r.get_data(as_text=True)


def test_remove_missing_alias_flashes_error(admin: FlaskClient) -> None:
    r = post(
        admin,
        "/aliases/delete",
        {"source": "x@pillarbox.test", "target": ADMIN},
        form_page="/aliases",
    )
    assert r.status_code == 302
    assert "no alias" in admin.get("/aliases").get_data(as_text=True)


@pytest.mark.parametrize("local", REFUSED)
def test_user_and_alias_forms_refuse_what_smtp_refuses(
    admin: FlaskClient, env: Env, local: str
) -> None:
    """One validator: the names SMTP would refuse (553) are never created here."""
    data = {
        "local": local,
        "domain": "pillarbox.test",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "quota": "0",
    }
    r = post(admin, "/users", data)
    assert r.status_code == 400
    assert "not allowed as a mailbox name" in r.get_data(as_text=True)
    r = post(admin, "/aliases", {"source": f"{local}@pillarbox.test", "target": ADMIN})
    assert r.status_code == 400
    assert "not allowed as a mailbox name" in r.get_data(as_text=True)
    assert [u.email for u in accounts(env).list_users()] == [ADMIN]
    assert accounts(env).list_aliases() == []
