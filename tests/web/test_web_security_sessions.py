"""Issue 16: web sessions are revocable server-side, and app passwords do not open the
web UI (item 6). Real HTTP through webui.httpd where the cookie itself matters."""

from __future__ import annotations

import http.cookiejar
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance.accounts import Accounts
from tests.harness import write_config
from tests.web.web_helpers import ADMIN, CSRF_RE, PASSWORD, Env, make_app, post
from webui import serve


def _login(client: FlaskClient, email: str, password: str) -> int:
    return int(post(client, "/login", {"email": email, "password": password}).status_code)


def _signed_out(admin: FlaskClient) -> FlaskClient:
    client = admin.application.test_client()
    return client


def test_app_password_does_not_open_the_web_ui(admin: FlaskClient, env: Env) -> None:
    _, secret = Accounts(env.cfg.accounts_db).add_app_password(ADMIN, "phone")
    client = _signed_out(admin)
    assert _login(client, ADMIN, secret) == 403
    r = client.get("/users")
    assert r.status_code == 302 and "/login" in r.location
    assert _login(client, ADMIN, PASSWORD) == 302  # the account password still works
    assert client.get("/users").status_code == 200


def test_login_throttle_shares_one_budget_across_spellings(admin: FlaskClient) -> None:
    client = _signed_out(admin)
    for spelling in ("ADMIN@pillarbox.test", " admin@pillarbox.test", "<admin@pillarbox.test>"):
        assert _login(client, spelling, "wrong") == 403
    assert _login(client, "admin@pillarbox.test.", PASSWORD) == 429


def test_logout_makes_the_old_cookie_worthless(admin: FlaskClient, env: Env) -> None:
    client = _signed_out(admin)
    assert _login(client, ADMIN, PASSWORD) == 302
    cookie = client.get_cookie("pillarbox_session")
    assert cookie is not None
    stolen = admin.application.test_client()
    stolen.set_cookie("pillarbox_session", cookie.value)
    assert stolen.get("/users").status_code == 200  # a copy works while the session lives
    assert post(client, "/logout", {}, form_page="/").status_code == 302
    r = stolen.get("/users")
    assert r.status_code == 302 and "/login" in r.location


def test_password_change_ends_the_users_other_sessions(admin: FlaskClient, env: Env) -> None:
    other = _signed_out(admin)
    assert _login(other, ADMIN, PASSWORD) == 302
    page = f"/users/{ADMIN}"
    new = "another horse battery staple"
    r = post(admin, f"{page}/password", {"password": new, "confirm": new}, form_page=page)
    assert r.status_code == 302
    assert admin.get("/users").status_code == 200  # the session that changed it stays
    r = other.get("/users")
    assert r.status_code == 302 and "/login" in r.location


def test_password_set_outside_the_web_ends_sessions(admin: FlaskClient, env: Env) -> None:
    """`pillarbox user passwd` (the CLI writes accounts.sqlite directly) ends web sessions
    made under the old password, though the web never saw the change."""
    client = _signed_out(admin)
    assert _login(client, ADMIN, PASSWORD) == 302
    assert client.get("/users").status_code == 200
    Accounts(env.cfg.accounts_db).set_password(ADMIN, "a completely new horse staple")
    r = client.get("/users")
    assert r.status_code == 302 and "/login" in r.location
    assert client.get("/users").status_code == 302  # the session is gone, not just refused once
    assert _login(client, ADMIN, "a completely new horse staple") == 302
    assert client.get("/users").status_code == 200


def test_idle_and_lifetime_expiry_delete_the_row(admin: FlaskClient, env: Env) -> None:
    client = _signed_out(admin)
    assert _login(client, ADMIN, PASSWORD) == 302
    sessions = client.application.extensions["pillarbox"].sessions
    before = sessions.count()
    env.clock[0] += 31 * 60
    assert client.get("/users").status_code == 302
    assert sessions.count() < before + 1  # the expired row is gone (a fresh one may exist)
    # Lifetime: active every 20 minutes, still out after 12 hours.
    assert _login(client, ADMIN, PASSWORD) == 302
    for _ in range(12 * 3 + 2):
        env.clock[0] += 20 * 60
        if client.get("/users").status_code != 200:
            break
    else:
        pytest.fail("a session outlived its 12-hour lifetime")


def test_anonymous_sessions_are_bounded(env: Env, accounts_template: Path) -> None:
    app = make_app(env)
    store = app.extensions["pillarbox"].sessions
    store.max_sessions = 20
    for _ in range(60):
        app.test_client().get("/login")  # each makes a CSRF token and a row
    assert store.count() <= 21


# ------------------------------------------------------------------ over real HTTP


@pytest.fixture
def live(tmp_path: Path, accounts_template: Path) -> Iterator[str]:
    cfg_path = write_config(tmp_path, listeners={"webs": []})
    from appliance import config

    cfg = config.load(cfg_path)
    cfg.accounts_db.parent.mkdir(parents=True, exist_ok=True)
    cfg.accounts_db.write_bytes(accounts_template.read_bytes())
    server = serve.create_server(cfg_path)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        scheme, host, port = server.addresses[0]
        yield f"{scheme}://{host}:{port}"
    finally:
        server.close()
        thread.join(10)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kw: object) -> None:
        return None


def _browser() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
    return opener, jar


def _status(
    opener: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None
) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_cookie_holds_only_an_id_and_logout_revokes_it(live: str) -> None:
    opener, jar = _browser()
    _, page = _status(opener, f"{live}/login")
    token = CSRF_RE.search(page)
    assert token
    code, _ = _status(
        opener,
        f"{live}/login",
        {"email": ADMIN, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert code == 302
    [cookie] = [c for c in jar if c.name == "pillarbox_session"]
    assert cookie.value and re.fullmatch(r"[A-Za-z0-9_-]{40,}", cookie.value)  # no data in it
    assert _status(opener, f"{live}/users")[0] == 200
    copy = http.cookiejar.CookieJar()
    copy.set_cookie(cookie)
    thief = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(copy), _NoRedirect())
    assert _status(thief, f"{live}/users")[0] == 200
    _, page = _status(opener, f"{live}/users")
    token = CSRF_RE.search(page)
    assert token
    assert _status(opener, f"{live}/logout", {"csrf_token": token.group(1)})[0] == 302
    assert _status(thief, f"{live}/users")[0] == 302


def test_switching_an_admin_off_ends_their_sessions(admin: FlaskClient, env: Env) -> None:
    boss = "boss@pillarbox.test"
    Accounts(env.cfg.accounts_db).add_user(boss, PASSWORD, is_admin=True)
    theirs = _signed_out(admin)
    assert _login(theirs, boss, PASSWORD) == 302
    page = f"/users/{boss}"
    assert post(admin, f"{page}/disabled", {"disabled": "1"}, form_page=page).status_code == 302
    assert post(admin, f"{page}/disabled", {"disabled": "0"}, form_page=page).status_code == 302
    r = theirs.get("/users")  # switched on again, but the old session stays ended
    assert r.status_code == 302 and "/login" in r.location
