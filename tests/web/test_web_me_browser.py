"""Issue 20: a mailbox user who is not an admin helps themselves, in a real browser
(Debian's chromium through selenium) against the web UI on a real HTTP server: sign-in,
storage, password change, app passwords (QR code, Apple profile, revoke), devices (sign
out one, sign out everywhere else), two-step sign-in with recovery codes; admin pages
refused. At desktop width and at 390 px (a phone), with screenshots in
tests/web/screenshots/me-*.png."""

from __future__ import annotations

import http.cookiejar
import plistlib
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from appliance.accounts import Accounts
from tests.web.test_web_browser import browser, fill, pytestmark, replaced, text
from tests.web.test_web_me import UsageCtl
from tests.web.web_helpers import ADMIN, CSRF_RE, PASSWORD, Env, make_app, new_env, served
from webui.totp import decode_secret, hotp, step_at

__all__ = ["browser", "pytestmark"]  # the fixture and the chromium skip, shared

SHOTS = Path(__file__).parent / "screenshots"
BOB = "bob@pillarbox.test"
BOB_PASSWORD = "bob horse battery staple"
NEW_PASSWORD = "bob's brand new horse staple"
MB = 1024 * 1024
PHONE = (390, 844)
DESKTOP = (1280, 1000)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Env]]:
    env = new_env(tmp_path)
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_domain("pillarbox.test")
    accounts.add_user(ADMIN, PASSWORD, is_admin=True)
    accounts.add_user(BOB, BOB_PASSWORD, quota_bytes=500 * MB)
    env.ctl = UsageCtl({BOB: {"bytes": 412 * MB, "messages": 5321, "quota": 500 * MB}})
    with served(make_app(env)) as base:
        yield base, env


def shot(driver: WebDriver, name: str, size: tuple[int, int] = DESKTOP) -> None:
    SHOTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size[0], min(max(int(height) + 200, size[1]), 4000))
    driver.save_screenshot(str(SHOTS / f"me-{name}.png"))
    driver.set_window_size(*size)


def fits(driver: WebDriver) -> None:
    """Nothing sticks out sideways: no horizontal scrolling at this width."""
    wide = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= wide[1], f"{driver.current_url} is {wide[0]} px wide in {wide[1]} px"


def sign_in(b: WebDriver, base: str, password: str = BOB_PASSWORD) -> None:
    b.get(base + "/login")
    fill(b, {"email": BOB, "password": password})
    submit(b, "Sign in")


def click(b: WebDriver, button: WebElement) -> None:
    """Click a link or a form's button and wait until the page that answers it is loaded
    (on a busy machine the next find could otherwise meet the half-replaced document)."""
    old = b.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(b, 20).until(replaced(old))
    WebDriverWait(b, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def submit(b: WebDriver, label: str) -> None:
    click(b, b.find_element(By.XPATH, f"//button[normalize-space()='{label}']"))


def code(secret: str, t: float) -> str:
    return hotp(decode_secret(secret), step_at(t))


class OtherBrowser:
    """A second signed-in browser of bob's, over plain HTTP (urllib with a cookie jar)."""

    def __init__(self, base: str, ua: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kw: object) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )
        self.opener.addheaders = [("User-Agent", ua)]
        page = self.get("/login")[1]
        token = CSRF_RE.search(page)
        assert token
        status = self.get(
            "/login", {"email": BOB, "password": BOB_PASSWORD, "csrf_token": token.group(1)}
        )[0]
        assert status == 302
        assert self.signed_in()

    def get(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, data=body, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def signed_in(self) -> bool:
        return self.get("/me")[0] == 200


def test_user_helps_themselves_at_desktop_width(
    server: tuple[str, Env], browser: WebDriver
) -> None:
    base, env = server
    b = browser
    b.get(base + "/")
    assert "/login" in b.current_url
    sign_in(b, base)
    assert b.current_url == base + "/me"
    page = text(b)
    assert BOB in page and "412.0 MB of 500.0 MB used (82 %) in 5321 messages" in page
    meter = b.find_element(By.ID, "quota-meter")
    assert meter.get_attribute("value") == str(412 * MB) and meter.is_displayed()
    nav = [a.text for a in b.find_elements(By.CSS_SELECTOR, "nav.menav a")]
    assert nav[:4] == ["Account", "Security", "App passwords", "Devices"]
    assert not b.find_elements(By.CSS_SELECTOR, "nav.mainnav a")  # no admin menu
    shot(b, "01-account")

    # Admin pages are refused, with a way back.
    b.get(base + "/users")
    assert "for the admins of this box" in text(b)
    shot(b, "02-admin-page-refused")
    click(b, b.find_element(By.LINK_TEXT, "Go to My account"))
    assert b.current_url == base + "/me"
    b.get(base + "/")
    assert b.current_url == base + "/me"

    # App passwords: create (shown once, QR code, Apple profile), list, revoke.
    click(b, b.find_element(By.LINK_TEXT, "App passwords"))
    fill(b, {"label": "Bob's phone"})
    submit(b, "Create app password")
    secret = b.find_element(By.ID, "new-app-password").text
    current = b.find_element(By.CSS_SELECTOR, "nav.menav a[aria-current=page]")
    assert current.text == "App passwords"
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{6}){4}", secret)
    qr = b.find_element(By.ID, "new-app-qr")
    assert qr.is_displayed() and b.execute_script("return arguments[0].naturalWidth", qr) > 100
    row = b.find_element(By.XPATH, '//tr[td[normalize-space()="Bob\'s phone"]]')
    assert "never" in row.text
    shot(b, "03-app-password-new")
    # A mail login with it (Accounts.authenticate, as IMAP/SMTP use it) is its last use.
    assert Accounts(env.cfg.accounts_db).authenticate(BOB, secret) is not None
    profile = b.execute_script(
        """const f = document.querySelector('form[action$="/profile"]');
           return fetch(f.action, {method: 'POST', body: new FormData(f)})
             .then(r => r.text());"""
    )
    [account] = plistlib.loads(profile.encode())["PayloadContent"]
    assert account["IncomingPassword"] == secret and account["EmailAddress"] == BOB
    b.get(base + "/me/app-passwords")
    assert secret not in b.page_source  # once only
    row = b.find_element(By.XPATH, '//tr[td[normalize-space()="Bob\'s phone"]]')
    assert "never" not in row.text
    shot(b, "04-app-passwords")
    click(b, row.find_element(By.XPATH, ".//button[normalize-space()='Revoke']"))
    assert "App password revoked" in text(b) and "No app passwords yet" in text(b)
    assert Accounts(env.cfg.accounts_db).authenticate(BOB, secret) is None

    # Devices: two other browsers; sign out one, then everywhere else.
    firefox = OtherBrowser(base, "Mozilla/5.0 (Windows NT 10.0; rv:120.0) Gecko Firefox/120.0")
    tablet = OtherBrowser(base, "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) Safari/604.1")
    click(b, b.find_element(By.LINK_TEXT, "Devices"))
    rows = b.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")
    assert len(rows) == 3
    assert "(this browser)" in b.find_element(By.CSS_SELECTOR, "tr.current").text
    assert "Firefox on Windows" in text(b) and "Safari on iPad" in text(b)
    shot(b, "05-devices")
    row = b.find_element(By.XPATH, "//tr[td[contains(., 'Firefox on Windows')]]")
    click(b, row.find_element(By.XPATH, ".//button[normalize-space()='Sign out']"))
    assert "That device is signed out" in text(b)
    assert not firefox.signed_in() and tablet.signed_in()
    submit(b, "Sign out everywhere else")
    assert "Signed out everywhere else (1 sign-in(s) ended)" in text(b)
    assert not tablet.signed_in()
    assert len(b.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")) == 1

    # Password: the current one is required; other sessions end, this one stays.
    other = OtherBrowser(base, "curl/8")
    click(b, b.find_element(By.LINK_TEXT, "Account"))
    fill(b, {"current": "not my password", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    submit(b, "Change password")
    assert "That is not your current password" in text(b)
    fill(b, {"current": BOB_PASSWORD, "password": "short", "confirm": "short"})
    submit(b, "Change password")
    assert "at least 8 characters" in text(b)
    shot(b, "06-password-error")
    fill(b, {"current": BOB_PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    submit(b, "Change password")
    assert "Your password is changed" in text(b) and "1 other sign-in(s) ended" in text(b)
    assert b.current_url == base + "/me" and not other.signed_in()

    # Two-step sign-in: QR enrolment, recovery codes, new recovery codes.
    click(b, b.find_element(By.LINK_TEXT, "Security"))
    submit(b, "Set up two-step sign-in")
    qr = b.find_element(By.CSS_SELECTOR, "img.qr")
    assert b.execute_script("return arguments[0].naturalWidth", qr) > 100
    key = b.find_element(By.XPATH, "//p[contains(., 'by hand')]/code").text
    shot(b, "07-two-step-enrol")
    fill(b, {"code": code(key, env.clock[0])})
    submit(b, "Turn on")
    codes = [c.text for c in b.find_elements(By.CSS_SELECTOR, "ul.recovery-codes code")]
    assert len(codes) == 10 and len(set(codes)) == 10
    shot(b, "08-recovery-codes")
    click(b, b.find_element(By.LINK_TEXT, "Done"))
    b.find_element(By.ID, "f-recovery-password").send_keys(NEW_PASSWORD)
    submit(b, "Make new recovery codes")
    fresh = [c.text for c in b.find_elements(By.CSS_SELECTOR, "ul.recovery-codes code")]
    assert len(fresh) == 10 and not set(fresh) & set(codes)

    # Signing in now takes a code: a recovery code once, then the app's code.
    submit(b, "Sign out")
    sign_in(b, base, NEW_PASSWORD)
    assert b.current_url == base + "/login/code"
    fill(b, {"code": codes[0]})
    submit(b, "Sign in")
    assert "wrong or was already used" in text(b)  # replaced by the new ones
    fill(b, {"code": fresh[0]})
    submit(b, "Sign in")
    assert b.current_url == base + "/me"
    submit(b, "Sign out")
    env.clock[0] += 30  # the enrolment's code is spent; the next step's is fresh
    sign_in(b, base, NEW_PASSWORD)
    fill(b, {"code": code(key, env.clock[0])})
    submit(b, "Sign in")
    assert b.current_url == base + "/me"
    click(b, b.find_element(By.LINK_TEXT, "Security"))
    assert b.find_element(By.ID, "recovery-left").text == "9"
    shot(b, "09-two-step-on")


def test_main_pages_at_phone_width(server: tuple[str, Env], browser: WebDriver) -> None:
    base, _ = server
    b = browser
    b.set_window_size(*PHONE)
    width = b.execute_script("return window.innerWidth")
    assert width <= PHONE[0]
    sign_in(b, base)
    assert b.current_url == base + "/me"
    fits(b)
    assert b.find_element(By.ID, "quota-meter").is_displayed()
    shot(b, "phone-01-account", PHONE)
    click(b, b.find_element(By.LINK_TEXT, "App passwords"))
    fill(b, {"label": "Bob's phone"})
    submit(b, "Create app password")
    secret = b.find_element(By.ID, "new-app-password")
    qr = b.find_element(By.ID, "new-app-qr")
    assert secret.is_displayed() and qr.is_displayed()
    right = b.execute_script("return arguments[0].getBoundingClientRect().right", qr)
    assert right <= width  # the whole QR code is on screen
    fits(b)
    shot(b, "phone-02-app-password", PHONE)
    b.get(base + "/me/app-passwords")
    fits(b)
    shot(b, "phone-03-app-passwords", PHONE)
    OtherBrowser(base, "Mozilla/5.0 (Linux; Android 14) Chrome/120.0 Mobile Safari/537.36")
    click(b, b.find_element(By.LINK_TEXT, "Devices"))
    assert "Chrome on Android" in text(b)
    sign_out = b.find_element(By.XPATH, "//button[normalize-space()='Sign out everywhere else']")
    assert sign_out.is_displayed()
    fits(b)
    shot(b, "phone-04-devices", PHONE)
    click(b, b.find_element(By.LINK_TEXT, "Security"))
    submit(b, "Set up two-step sign-in")
    qr = b.find_element(By.CSS_SELECTOR, "img.qr")
    assert b.execute_script("return arguments[0].getBoundingClientRect().right", qr) <= width
    fits(b)
    shot(b, "phone-05-two-step", PHONE)
    b.get(base + "/users")
    assert "for the admins of this box" in text(b)
    fits(b)
    shot(b, "phone-06-admin-refused", PHONE)
