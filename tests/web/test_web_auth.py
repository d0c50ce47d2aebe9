"""Sign-in, throttling, idle expiry, cookies and headers."""

from __future__ import annotations

from flask.testing import FlaskClient

from appliance.accounts import Accounts
from tests.harness import write_config
from tests.web.web_helpers import ADMIN, PASSWORD, Env, complete_setup, make_app, post


def _fresh(admin: FlaskClient) -> FlaskClient:
    """Sign out so the next request starts without a session."""
    r = post(admin, "/logout", {}, form_page="/")
    assert r.status_code == 302
    return admin


def test_login_ok_and_next_is_same_site_only(admin: FlaskClient) -> None:
    client = _fresh(admin)
    r = post(
        client, "/login?next=/users", {"email": ADMIN, "password": PASSWORD}, form_page="/login"
    )
    assert r.status_code == 302 and r.location == "/users"
    _fresh(client)
    r = post(
        client,
        "/login?next=//evil.example/x",
        {"email": ADMIN, "password": PASSWORD},
        form_page="/login",
    )
    assert r.location == "/"


def test_wrong_password_is_generic_403(admin: FlaskClient) -> None:
    client = _fresh(admin)
    r = post(client, "/login", {"email": ADMIN, "password": "wrong password"})
    assert r.status_code == 403
    assert "wrong" in r.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_non_admin_signs_in_to_their_own_page_only(admin: FlaskClient, env: Env) -> None:
    """Issue 20: every mailbox user signs in; one who is not an admin lands on /me and
    gets 403 from admin pages (tests/web/test_web_me_authz.py checks every route)."""
    Accounts(env.cfg.accounts_db).add_user("bob@pillarbox.test", PASSWORD)
    client = _fresh(admin)
    r = post(client, "/login", {"email": "bob@pillarbox.test", "password": PASSWORD})
    assert r.status_code == 302 and r.location == "/me"
    assert client.get("/users").status_code == 403


def test_login_throttled_after_failures(admin: FlaskClient, env: Env) -> None:
    client = _fresh(admin)
    for _ in range(3):
        assert post(client, "/login", {"email": ADMIN, "password": "nope-nope"}).status_code == 403
    r = post(client, "/login", {"email": ADMIN, "password": PASSWORD})
    assert r.status_code == 429
    assert "Too many failed attempts" in r.get_data(as_text=True)
    env.clock[0] += 2
    assert post(client, "/login", {"email": ADMIN, "password": PASSWORD}).status_code == 302


def test_idle_session_expires_after_30_minutes(admin: FlaskClient, env: Env) -> None:
    env.clock[0] += 29 * 60
    assert admin.get("/").status_code == 200  # activity renews the session
    env.clock[0] += 29 * 60
    assert admin.get("/").status_code == 200
    env.clock[0] += 31 * 60
    r = admin.get("/")
    assert r.status_code == 302 and "/login" in r.location
    page = admin.get(r.location).get_data(as_text=True)
    assert "signed out after 30 minutes" in page


def test_logout_needs_post_with_csrf(admin: FlaskClient) -> None:
    assert admin.get("/logout").status_code == 405
    assert admin.post("/logout").status_code == 400
    assert admin.get("/").status_code == 200
    _fresh(admin)
    assert admin.get("/").status_code == 302


def test_session_cookie_flags_dev(client: FlaskClient) -> None:
    r = client.get("/setup/")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain-http dev server


def test_session_cookie_secure_whenever_https(env: Env, tmp_path: object) -> None:
    env.cfg_path = write_config(env.cfg_path.parent, dev=False, listeners={"web": ["127.0.0.1:0"]})
    app = make_app(env)
    r = app.test_client().get("/setup/", base_url="https://pillarbox.local")
    assert "Secure" in r.headers["Set-Cookie"]
    # Plain http on the LAN (http://pillarbox.local): a Secure cookie would be dropped by
    # the browser and nobody could log in.
    r = app.test_client().get("/setup/", base_url="http://pillarbox.local")
    assert "Secure" not in r.headers["Set-Cookie"]
    assert "HttpOnly" in r.headers["Set-Cookie"]


def test_security_headers(client: FlaskClient) -> None:
    r = client.get("/setup/")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"


def test_disabled_admin_session_is_dropped(admin: FlaskClient, env: Env) -> None:
    Accounts(env.cfg.accounts_db).set_disabled(ADMIN, True)
    r = admin.get("/users")
    # The only admin is disabled: the box counts as not set up again.
    assert r.status_code == 302


def test_second_client_must_sign_in(admin: FlaskClient, env: Env) -> None:
    other = admin.application.test_client()
    r = other.get("/users")
    assert r.status_code == 302 and "/login?next=/users" in r.location
    complete = other.get("/setup/")
    assert complete.location.endswith("/login")


def test_complete_setup_helper_signs_in(client: FlaskClient, env: Env) -> None:
    complete_setup(client, env.cfg)
    assert client.get("/users").status_code == 200
