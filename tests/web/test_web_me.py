"""Issue 20, self-service for a mailbox user who is not an admin (webui.me): storage,
password change, app passwords, devices, two-step sign-in with recovery codes.
The browser walks the same pages in test_web_me_browser.py; routes and authorization in
test_web_me_authz.py."""

from __future__ import annotations

import hashlib
import imaplib
import plistlib
import re
import smtplib
import ssl
from typing import Any

import pytest
import segno
from flask.testing import FlaskClient

from appliance.accounts import Accounts
from appliance.ctl.protocol import CtlError
from tests.harness import Daemon
from tests.web.web_helpers import Env, FakeCtl, post
from webui.context import default_ctl
from webui.totp import decode_secret, hotp, step_at
from webui.useragent import summary

BOB = "bob@pillarbox.test"
BOB_PASSWORD = "bob horse battery staple"
MB = 1024 * 1024


class UsageCtl(FakeCtl):
    """The fake daemon, also answering ``mailbox.usage`` from ``usage``."""

    def __init__(self, usage: dict[str, dict[str, int]]) -> None:
        super().__init__()
        self.usage = usage

    def call(self, cmd: str, **args: Any) -> Any:
        if cmd == "mailbox.usage":
            self.calls.append(cmd)
            self.call_args.append(args)
            if args.get("user") not in self.usage:
                raise CtlError("no such mailbox")
            return self.usage[args["user"]]
        return super().call(cmd, **args)


def _bob(admin: FlaskClient, env: Env, quota: int = 100 * MB, ua: str = "") -> FlaskClient:
    accounts = Accounts(env.cfg.accounts_db)
    if accounts.get_user(BOB) is None:
        accounts.add_user(BOB, BOB_PASSWORD, quota_bytes=quota)
    return _login(admin, ua)


def _login(admin: FlaskClient, ua: str = "", password: str = BOB_PASSWORD) -> FlaskClient:
    client = admin.application.test_client()
    headers = {"User-Agent": ua} if ua else {}
    r = post(client, "/login", {"email": BOB, "password": password}, headers=headers)
    assert r.status_code == 302 and r.location == "/me", r.status_code
    return client


def test_account_page_shows_address_and_storage(admin: FlaskClient, env: Env) -> None:
    env.ctl = UsageCtl({BOB: {"bytes": 85 * MB, "messages": 1234, "quota": 100 * MB}})
    bob = _bob(admin, env)
    body = bob.get("/me").get_data(as_text=True)
    assert BOB in body
    assert "85.0 MB of 100.0 MB used (85 %) in 1234 messages" in body
    assert f'max="{100 * MB}" value="{85 * MB}"' in body  # the <meter> bar
    assert "getting full" in body
    assert "/users" not in body and "Mailboxes" not in body  # no admin navigation
    # The limit shown is the one in force as the daemon says (the user's own, else the
    # box's default), not the user's own setting alone.
    env.ctl.usage[BOB] = {"bytes": 3 * MB, "messages": 2, "quota": 1024 * MB}
    Accounts(env.cfg.accounts_db).set_quota(BOB, 0)
    body = bob.get("/me").get_data(as_text=True)
    assert "3.0 MB of 1024.0 MB used (0 %) in 2 messages." in body
    env.ctl.usage[BOB] = {"bytes": 3 * MB, "messages": 2, "quota": 0}
    body = bob.get("/me").get_data(as_text=True)
    assert "3.0 MB used in 2 messages. Your mailbox has no storage limit." in body
    env.ctl.running = False
    env.ctl.usage.clear()
    body = bob.get("/me").get_data(as_text=True)
    assert "does not answer right now" in body


def test_storage_and_last_use_come_from_the_real_daemon(
    admin: FlaskClient, env: Env, tmp_path: Any
) -> None:
    """The daemon counts the stored bytes (ctl mailbox.usage); an IMAP login with an app
    password shows as its last use."""
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_user(BOB, BOB_PASSWORD, quota_bytes=2 * MB)
    _, secret = accounts.add_app_password(BOB, "laptop")
    admin.application.extensions["pillarbox"].ctl_factory = default_ctl
    with Daemon(env.cfg_path, wait_for=("smtp", "imap")) as d:
        body = "x" * 70 + "\r\n"
        msg = f"From: a@remote.test\r\nTo: {BOB}\r\nSubject: big\r\n\r\n" + body * 7000
        with smtplib.SMTP(*d.addr("smtp"), timeout=20) as s:
            assert s.sendmail("a@remote.test", [BOB], msg) == {}
        bob = _login(admin)
        page = bob.get("/me").get_data(as_text=True)
        assert re.search(r"0\.[45] MB of 2\.0 MB used \(2[0-9] %\) in 1 message\.", page), page
        page = bob.get("/me/app-passwords").get_data(as_text=True)
        assert "never" in page
        with imaplib.IMAP4(*d.addr("imap"), timeout=20) as c:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE  # the dev instance's self-signed certificate
            c.starttls(ssl_context=tls)
            c.login(BOB, secret)
        page = bob.get("/me/app-passwords").get_data(as_text=True)
        assert "never" not in page
        with pytest.raises(CtlError, match="no mailbox"):
            default_ctl(env.cfg.ctl_socket).call("mailbox.usage", user="nobody@pillarbox.test")


def test_password_change_needs_the_current_one_and_ends_other_sessions(
    admin: FlaskClient, env: Env
) -> None:
    bob = _bob(admin, env)
    other = _login(admin)
    new = "a new horse battery staple"
    r = post(bob, "/me/password", {"current": "wrong", "password": new, "confirm": new})
    assert r.status_code == 403 and "not your current password" in r.get_data(as_text=True)
    _, app_secret = Accounts(env.cfg.accounts_db).add_app_password(BOB, "phone")
    r = post(bob, "/me/password", {"current": app_secret, "password": new, "confirm": new})
    assert r.status_code == 403  # an app password is no current password
    r = post(bob, "/me/password", {"current": BOB_PASSWORD, "password": new, "confirm": new + "x"})
    assert r.status_code == 400 and "not the same" in r.get_data(as_text=True)
    r = post(
        bob, "/me/password", {"current": BOB_PASSWORD, "password": "short", "confirm": "short"}
    )
    assert r.status_code == 400 and "at least 8 characters" in r.get_data(as_text=True)
    assert other.get("/me").status_code == 200  # nothing changed yet
    r = post(bob, "/me/password", {"current": BOB_PASSWORD, "password": new, "confirm": new})
    assert r.status_code == 302
    assert "1 other sign-in(s) ended" in bob.get("/me").get_data(as_text=True)
    assert bob.get("/me").status_code == 200  # this session stays
    r = other.get("/me")
    assert r.status_code == 302 and "/login" in r.location
    accounts = Accounts(env.cfg.accounts_db)
    assert accounts.authenticate(BOB, new, app_passwords=False) is not None
    assert accounts.authenticate(BOB, BOB_PASSWORD, app_passwords=False) is None


def test_password_change_is_throttled(admin: FlaskClient, env: Env) -> None:
    bob = _bob(admin, env)
    new = "a new horse battery staple"
    codes = [
        post(bob, "/me/password", {"current": "guess", "password": new, "confirm": new}).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [403, 403, 403] and codes[-1] == 429
    r = post(bob, "/me/password", {"current": BOB_PASSWORD, "password": new, "confirm": new})
    assert r.status_code == 429  # even the right one waits


def test_app_password_shown_once_with_qr_and_profile(admin: FlaskClient, env: Env) -> None:
    bob = _bob(admin, env)
    r = post(bob, "/me/app-passwords", {"label": ""})
    assert r.status_code == 400
    r = post(bob, "/me/app-passwords", {"label": "Bob's phone"})
    page = r.get_data(as_text=True)
    secret = re.search(r'id="new-app-password">([0-9a-f-]{36})<', page)
    assert secret
    # The QR code holds exactly the password.
    assert segno.make(secret.group(1), error="m").svg_data_uri(scale=5) in page
    listing = bob.get("/me/app-passwords").get_data(as_text=True)
    assert "Bob&#39;s phone" in listing and "never" in listing
    assert secret.group(1) not in listing  # shown once only
    accounts = Accounts(env.cfg.accounts_db)
    assert accounts.authenticate(BOB, secret.group(1)) is not None  # works for mail
    r = post(bob, "/me/app-passwords/profile", {"secret": secret.group(1)})
    assert r.status_code == 200 and r.mimetype == "application/x-apple-aspen-config"
    [account] = plistlib.loads(r.data)["PayloadContent"]
    assert account["EmailAddress"] == BOB and account["IncomingMailServerUsername"] == BOB
    assert account["IncomingPassword"] == secret.group(1) == account["OutgoingPassword"]
    assert post(bob, "/me/app-passwords/profile", {"secret": BOB_PASSWORD}).status_code == 403
    # An app password does not open the web.
    other = admin.application.test_client()
    assert post(other, "/login", {"email": BOB, "password": secret.group(1)}).status_code == 403
    [app] = accounts.list_app_passwords(BOB)
    assert post(bob, f"/me/app-passwords/{app.id}/revoke", {}, form_page="/me").status_code == 302
    assert accounts.list_app_passwords(BOB) == []
    assert accounts.authenticate(BOB, secret.group(1)) is None
    for n in range(20):
        accounts.add_app_password(BOB, f"device {n}")
    r = post(bob, "/me/app-passwords", {"label": "one too many"})
    assert r.status_code == 400 and "at most 20" in r.get_data(as_text=True)


def test_devices_list_and_sign_out(admin: FlaskClient, env: Env) -> None:
    firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    bob = _bob(admin, env, ua=firefox)
    env.clock[0] += 120
    phone = _login(admin, ua=iphone)
    env.clock[0] += 120
    laptop = _login(admin)
    page = bob.get("/me/devices").get_data(as_text=True)
    assert "Firefox on Windows <strong>(this browser)</strong>" in page
    assert "Safari on iPhone" in page and "127.0.0.1" in page
    keys = re.findall(r'name="key" value="([0-9a-f]{64})"', page)
    assert len(keys) == 2  # no sign-out button for this browser
    phone_cookie = phone.get_cookie("pillarbox_session")
    assert phone_cookie is not None
    phone_key = hashlib.sha256(phone_cookie.value.encode()).hexdigest()
    assert phone_key in keys
    assert post(bob, "/me/devices/end", {"key": phone_key}).status_code == 302
    assert phone.get("/me").status_code == 302  # signed out
    assert laptop.get("/me").status_code == 200
    assert post(bob, "/me/devices/end-others", {}).status_code == 302
    assert laptop.get("/me").status_code == 302
    assert bob.get("/me").status_code == 200
    page = bob.get("/me/devices").get_data(as_text=True)
    assert not re.findall(r'name="key" value="([0-9a-f]{64})"', page)


def _code(secret: str, t: float, shift: int = 0) -> str:
    return hotp(decode_secret(secret), step_at(t) + shift)


def test_two_step_for_a_user_with_recovery_codes(admin: FlaskClient, env: Env) -> None:
    page = "/account/two-step"
    bob = _bob(admin, env)
    assert post(bob, f"{page}/start", {}, form_page=page).status_code == 302
    body = bob.get(page).get_data(as_text=True)
    secret = re.search(r"<code>([A-Z2-7]{32})</code>", body)
    assert secret and 'src="data:image/svg+xml' in body
    r = post(bob, f"{page}/confirm", {"code": _code(secret.group(1), env.clock[0])}, form_page=page)
    codes = re.findall(
        r"<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>", r.get_data(as_text=True)
    )
    assert len(codes) == 10
    # Sign-in now takes the code; a recovery code works once instead.
    other = admin.application.test_client()
    r = post(other, "/login", {"email": BOB, "password": BOB_PASSWORD})
    assert r.location.endswith("/login/code")
    assert other.get("/me").status_code == 302
    r = post(other, "/login/code", {"code": codes[0]})
    assert r.status_code == 302 and r.location == "/me"
    again = admin.application.test_client()
    post(again, "/login", {"email": BOB, "password": BOB_PASSWORD})
    assert post(again, "/login/code", {"code": codes[0]}).status_code == 403
    # New codes need the password and replace the old ones.
    r = post(bob, f"{page}/recovery", {"password": "wrong"}, form_page=page)
    assert r.status_code == 403
    r = post(bob, f"{page}/recovery", {"password": BOB_PASSWORD}, form_page=page)
    fresh = re.findall(
        r"<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>", r.get_data(as_text=True)
    )
    assert r.status_code == 200 and len(fresh) == 10 and not set(fresh) & set(codes)
    assert post(again, "/login/code", {"code": codes[1]}).status_code == 403  # old: void
    assert post(again, "/login/code", {"code": fresh[0]}).status_code == 302
    assert 'id="recovery-left">9<' in bob.get(page).get_data(as_text=True)


@pytest.mark.parametrize(
    ("ua", "name"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/120.0.0.0 Safari/537.36",
            "Chrome on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/120.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like"
            " Gecko) Version/17.1 Safari/605.1.15",
            "Safari on macOS",
        ),
        ("curl/7.88.1", "curl"),
        ("", "Unknown browser"),
    ],
)
def test_user_agent_summary(ua: str, name: str) -> None:
    assert summary(ua) == name
