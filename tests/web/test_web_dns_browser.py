"""The DNS page's copy buttons in a real browser (Debian's chromium through selenium):
a click puts exactly the record's value on the clipboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from appliance.accounts import Accounts
from tests.web.test_web_browser import browser, fill, pytestmark, replaced
from tests.web.web_helpers import ADMIN, PASSWORD, Env, make_app, new_env, served
from webui import dnscheck

__all__ = ["browser", "pytestmark"]  # the fixture and the chromium skip, shared


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Env]]:
    env = new_env(tmp_path)
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_domain("pillarbox.test")
    accounts.add_user(ADMIN, PASSWORD, is_admin=True)
    with served(make_app(env)) as base:
        yield base, env


def test_copy_buttons_put_the_value_on_the_clipboard(
    server: tuple[str, Env], browser: WebDriver
) -> None:
    base, env = server
    b = browser
    b.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    b.get(base + "/login")
    fill(b, {"email": ADMIN, "password": PASSWORD})
    old = b.find_element(By.TAG_NAME, "html")
    b.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    WebDriverWait(b, 20).until(replaced(old))
    b.get(base + "/dns?domain=pillarbox.test")
    records = [r for r in dnscheck.expected_records(env.cfg, "pillarbox.test") if r.known]
    dkim = next(r for r in records if "k=rsa" in r.value)
    for rec in (records[0], dkim):  # the MX host (priority apart) and the long RSA key
        button = b.find_element(
            By.XPATH, f"//button[contains(@class,'copy-btn')][@data-copy='{rec.data}']"
        )
        b.execute_script("arguments[0].scrollIntoView()", button)
        button.click()
        WebDriverWait(b, 10).until(lambda d, btn=button: btn.text == "Copied")
        pasted = b.execute_async_script(
            "navigator.clipboard.readText().then(arguments[0], e => arguments[0]('ERR ' + e))"
        )
        assert pasted == rec.data
