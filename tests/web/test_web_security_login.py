"""Issue 16 item 4 on the web: failures from other addresses slow an account's sign-in
but never lock out the right password from a fresh address."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.accounts import LoginThrottle
from tests.web.web_helpers import ADMIN, CSRF_RE, PASSWORD, Env, admin_client, make_app


def _login(client: object, email: str, password: str, ip: str) -> int:
    from flask.testing import FlaskClient

    assert isinstance(client, FlaskClient)
    env_base = {"REMOTE_ADDR": ip}
    page = client.get("/login", environ_base=env_base).get_data(as_text=True)
    token = CSRF_RE.search(page)
    assert token
    data = {"email": email, "password": password, "csrf_token": token.group(1)}
    return client.post("/login", data=data, environ_base=env_base).status_code


def test_right_password_from_a_fresh_address_gets_in(env: Env, accounts_template: Path) -> None:
    admin_client(env, accounts_template)  # the box is set up
    throttle = LoginThrottle(account_ceiling=3, account_delay=0.05, clock=lambda: env.clock[0])
    app = make_app(env, throttle=throttle)
    for i in range(12):  # a botnet: each address stays under its own budget
        assert _login(app.test_client(), ADMIN, f"guess{i}", f"198.51.100.{i}") == 403
    assert throttle.slowdown(ADMIN) > 0
    started = time.monotonic()
    assert _login(app.test_client(), ADMIN, PASSWORD, "192.0.2.7") == 302
    assert time.monotonic() - started >= 0.05  # slowed, not refused
