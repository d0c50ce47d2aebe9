"""First boot: the setup secret, the locked wizard, the admin account, CSRF."""

from __future__ import annotations

import stat

import pytest
from flask.testing import FlaskClient

from appliance.setupsecret import read_or_create_secret, secret_matches, secret_path
from tests.web.web_helpers import ADMIN, PASSWORD, Env, csrf, post
from webui.setup import suggested_domain


def test_secret_created_once_0600_and_stable(env: Env) -> None:
    cfg = env.cfg
    first = read_or_create_secret(cfg)
    path = secret_path(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(cfg) == first
    assert len(first.replace("-", "")) == 20
    assert not set(first) & set("01OIL")


def test_secret_comparison_ignores_case_and_dashes(env: Env) -> None:
    secret = read_or_create_secret(env.cfg)
    assert secret_matches(env.cfg, secret.lower().replace("-", " "))
    assert not secret_matches(env.cfg, secret[:-1])
    assert not secret_matches(env.cfg, "")


def test_app_start_creates_secret(client: FlaskClient, env: Env) -> None:
    assert secret_path(env.cfg).exists()


@pytest.mark.parametrize(
    "path", ["/", "/users", "/aliases", "/domains", "/dns", "/certificate", "/storage", "/login"]
)
def test_locked_wizard_redirects_everything_to_setup(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 302
    assert r.location.endswith("/setup/")


def test_public_files_work_before_setup(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/mail/config-v1.1.xml").status_code == 200


def test_wrong_secret_refused_then_throttled(client: FlaskClient, env: Env) -> None:
    for _ in range(3):
        r = post(client, "/setup/", {"secret": "AAAA-BBBB-CCCC-DDDD-EEEE"})
        assert r.status_code == 403
        assert "not the setup code" in r.get_data(as_text=True)
    # Fourth attempt falls into the back-off: refused even with the right secret.
    r = post(client, "/setup/", {"secret": read_or_create_secret(env.cfg)})
    assert r.status_code == 429
    assert "Too many wrong attempts" in r.get_data(as_text=True)
    env.clock[0] += 5
    r = post(client, "/setup/", {"secret": read_or_create_secret(env.cfg)})
    assert r.status_code == 302


def test_admin_step_needs_unlock(client: FlaskClient) -> None:
    r = client.get("/setup/admin")
    assert r.status_code == 302 and r.location.endswith("/setup/")


def _unlock(client: FlaskClient, env: Env) -> None:
    r = post(client, "/setup/", {"secret": read_or_create_secret(env.cfg)})
    assert r.status_code == 302


@pytest.mark.parametrize(
    ("form", "field_error"),
    [
        ({"domain": "not a domain", "local": "admin"}, "is not a valid domain name"),
        ({"domain": "example.org", "local": "a b"}, "the part before the @"),
        ({"domain": "example.org", "local": "admin", "confirm": "other"}, "not the same"),
        (
            {"domain": "example.org", "local": "admin", "password": "short", "confirm": "short"},
            "at least 8 characters",
        ),
    ],
)
def test_admin_form_errors_are_shown(
    client: FlaskClient, env: Env, form: dict[str, str], field_error: str
) -> None:
    _unlock(client, env)
    data = {"password": PASSWORD, "confirm": PASSWORD, **form}
    r = post(client, "/setup/admin", data)
    assert r.status_code == 400
    body = r.get_data(as_text=True)
    assert field_error in body
    assert 'aria-invalid="true"' in body


def test_setup_creates_domain_and_admin_and_signs_in(client: FlaskClient, env: Env) -> None:
    _unlock(client, env)
    page = client.get("/setup/admin").get_data(as_text=True)
    assert 'value="pillarbox.test"' in page  # suggested from mail.pillarbox.test
    r = post(
        client,
        "/setup/admin",
        {"domain": "pillarbox.test", "local": "Admin", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert r.status_code == 302 and "/dns" in r.location
    from appliance.accounts import Accounts

    accounts = Accounts(env.cfg.accounts_db)
    user = accounts.get_user(ADMIN)
    assert user is not None and user.is_admin
    assert accounts.authenticate(ADMIN, PASSWORD) is not None
    assert client.get("/").status_code == 200
    # The wizard is closed for good.
    assert client.get("/setup/").location.endswith("/login")
    assert client.get("/setup/admin").location.endswith("/login")


def test_suggested_domain() -> None:
    assert suggested_domain("mail.example.org") == "example.org"
    assert suggested_domain("example.org") == "example.org"


def test_post_without_csrf_is_400(client: FlaskClient, env: Env) -> None:
    r = client.post("/setup/", data={"secret": read_or_create_secret(env.cfg)})
    assert r.status_code == 400
    assert "form has expired" in r.get_data(as_text=True)


def test_post_with_wrong_csrf_is_400(client: FlaskClient, env: Env) -> None:
    csrf(client, "/setup/")
    r = client.post(
        "/setup/", data={"secret": read_or_create_secret(env.cfg), "csrf_token": "forged"}
    )
    assert r.status_code == 400


def test_csrf_header_accepted(client: FlaskClient, env: Env) -> None:
    token = csrf(client, "/setup/")
    r = client.post(
        "/setup/", data={"secret": read_or_create_secret(env.cfg)}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 302
