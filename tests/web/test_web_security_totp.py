"""Issue 16 item 6: an admin's optional second factor (TOTP, RFC 6238) for the web UI."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from flask.testing import FlaskClient

from tests.web.web_helpers import ADMIN, PASSWORD, Env, post
from webui.totp import decode_secret, hotp, step_at

PAGE = "/account/two-step"


@pytest.mark.parametrize(
    ("t", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_appendix_b_sha1_vectors(t: int, code: str) -> None:
    assert hotp(b"12345678901234567890", step_at(t), digits=8) == code


def _code(secret: str, t: float, shift: int = 0) -> str:
    return hotp(decode_secret(secret), step_at(t) + shift)


def _enrol(admin: FlaskClient, env: Env) -> tuple[str, list[str]]:
    body = admin.get(PAGE).get_data(as_text=True)
    assert "off" in body
    assert post(admin, f"{PAGE}/start", {}, form_page=PAGE).status_code == 302
    body = admin.get(PAGE).get_data(as_text=True)
    assert 'src="data:image/svg+xml' in body  # the QR code, inline (CSP img-src data:)
    secret = re.search(r"<code>([A-Z2-7]{32})</code>", body)
    assert secret
    r = post(admin, f"{PAGE}/confirm", {"code": "000000"}, form_page=PAGE)
    assert r.status_code == 400 and "wrong" in r.get_data(as_text=True)
    r = post(
        admin, f"{PAGE}/confirm", {"code": _code(secret.group(1), env.clock[0])}, form_page=PAGE
    )
    assert r.status_code == 200
    codes = re.findall(
        r"<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>", r.get_data(as_text=True)
    )
    assert len(codes) == 10
    return secret.group(1), codes


def _password_step(admin: FlaskClient) -> FlaskClient:
    client = admin.application.test_client()
    r = post(
        client, "/login?next=/users", {"email": ADMIN, "password": PASSWORD}, form_page="/login"
    )
    assert r.status_code == 302 and r.location.endswith("/login/code")
    r = client.get("/users")
    assert r.status_code == 302 and "/login" in r.location  # not signed in yet
    return client


def test_otpauth_uri_is_standard(admin: FlaskClient) -> None:
    from webui.totp import provisioning_uri

    uri = provisioning_uri("JBSWY3DPEHPK3PXP", ADMIN, "Pillarbox")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert unquote(parts.path) == f"/Pillarbox:{ADMIN}"
    query = parse_qs(parts.query)
    assert query["secret"] == ["JBSWY3DPEHPK3PXP"] and query["issuer"] == ["Pillarbox"]
    assert query["digits"] == ["6"] and query["period"] == ["30"] and query["algorithm"] == ["SHA1"]


def test_sign_in_needs_the_code_once_enrolled(admin: FlaskClient, env: Env) -> None:
    secret, _ = _enrol(admin, env)
    client = _password_step(admin)
    # The code used to confirm enrolment is spent: a replay in the same step is refused.
    r = post(client, "/login/code", {"code": _code(secret, env.clock[0])})
    assert r.status_code == 403
    r = post(client, "/login/code", {"code": _code(secret, env.clock[0], shift=2)})
    assert r.status_code == 403  # two steps ahead: outside the window
    env.clock[0] += 30
    r = post(client, "/login/code", {"code": _code(secret, env.clock[0], shift=1)})
    assert r.status_code == 302 and r.location == "/users"  # one step of drift is fine
    assert client.get("/users").status_code == 200
    # The same code cannot sign in a second browser.
    other = _password_step(admin)
    r = post(other, "/login/code", {"code": _code(secret, env.clock[0], shift=1)})
    assert r.status_code == 403


def test_pending_second_step_expires(admin: FlaskClient, env: Env) -> None:
    secret, _ = _enrol(admin, env)
    client = _password_step(admin)
    env.clock[0] += 301
    r = post(client, "/login/code", {"code": _code(secret, env.clock[0])}, form_page="/login")
    assert r.status_code == 302 and r.location.endswith("/login")


def test_recovery_code_works_once(admin: FlaskClient, env: Env) -> None:
    _, codes = _enrol(admin, env)
    client = _password_step(admin)
    assert post(client, "/login/code", {"code": codes[0].lower()}).status_code == 302
    assert client.get("/users").status_code == 200
    other = _password_step(admin)
    assert post(other, "/login/code", {"code": codes[0]}).status_code == 403
    assert post(other, "/login/code", {"code": codes[1]}).status_code == 302


def test_wrong_codes_are_throttled(admin: FlaskClient, env: Env) -> None:
    _enrol(admin, env)
    client = _password_step(admin)
    statuses = [post(client, "/login/code", {"code": "123456"}).status_code for _ in range(5)]
    assert statuses[:3] == [403, 403, 403] and 429 in statuses


def test_disable_needs_password_and_code(admin: FlaskClient, env: Env) -> None:
    secret, _ = _enrol(admin, env)
    env.clock[0] += 30
    good = _code(secret, env.clock[0])
    r = post(admin, f"{PAGE}/disable", {"password": "wrong", "code": good}, form_page=PAGE)
    assert r.status_code == 403
    r = post(admin, f"{PAGE}/disable", {"password": PASSWORD, "code": "000000"}, form_page=PAGE)
    assert r.status_code == 403
    r = post(admin, f"{PAGE}/disable", {"password": PASSWORD, "code": good}, form_page=PAGE)
    assert r.status_code == 302
    client = admin.application.test_client()
    r = post(client, "/login", {"email": ADMIN, "password": PASSWORD})
    assert r.status_code == 302 and not r.location.endswith("/login/code")


def test_ten_wrong_codes_lock_the_code_step_for_every_address(admin: FlaskClient, env: Env) -> None:
    secret, _ = _enrol(admin, env)
    for i in range(10):  # from ten addresses: the per-address throttle never trips
        client = _password_step(admin)
        ip = {"REMOTE_ADDR": f"198.51.100.{i}"}
        token = client.get("/login/code", environ_base=ip).get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', token)
        assert match
        data = {"code": "000000", "csrf_token": match.group(1)}
        assert client.post("/login/code", data=data, environ_base=ip).status_code == 403
    env.clock[0] += 30
    client = _password_step(admin)
    r = post(client, "/login/code", {"code": _code(secret, env.clock[0])})
    assert r.status_code == 429  # even the right code waits out the lock
    env.clock[0] += 300
    client = _password_step(admin)
    assert post(client, "/login/code", {"code": _code(secret, env.clock[0])}).status_code == 302


def test_turning_it_on_ends_other_sessions(admin: FlaskClient, env: Env) -> None:
    other = admin.application.test_client()
    r = post(other, "/login", {"email": ADMIN, "password": PASSWORD})
    assert r.status_code == 302 and other.get("/users").status_code == 200
    _enrol(admin, env)
    assert admin.get("/users").status_code == 200
    assert other.get("/users").status_code == 302
