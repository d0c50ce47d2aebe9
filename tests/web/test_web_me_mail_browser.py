"""The user's own mail settings in a real browser (Debian's chromium through selenium),
as a mailbox user who is not an admin: sign in, open My account > Mail, set an automatic
reply with dates, forwarding, filter rules (add, move, delete), look at storage use and
empty Junk after confirming. What each step stored is checked in the user's Sieve script
and mailbox, through the daemon's real ctl handlers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from appliance.accounts import Accounts
from appliance.filters.sieve_parse import parse
from appliance.filters.sieve_settings import Forwarding, MailSettings, Rule, Vacation, read, render
from tests.web.mail_ctl import MailCtl
from tests.web.test_web_browser import (
    SHOTS,
    browser,
    fill,
    pytestmark,
    replaced,
    shot,
    submit,
    text,
)
from tests.web.web_helpers import ADMIN, PASSWORD, Env, make_app, new_env, served

__all__ = ["browser", "pytestmark"]  # the chromium fixture and its skip condition

Server = tuple[str, Env, MailCtl]
BOB = "bob@pillarbox.test"  # not an admin


@pytest.fixture
def server(tmp_path: Path, accounts_template: Path) -> Iterator[Server]:
    env = new_env(tmp_path)
    cfg = env.cfg
    cfg.accounts_db.parent.mkdir(parents=True, exist_ok=True)
    cfg.accounts_db.write_bytes(accounts_template.read_bytes())
    Accounts(cfg.accounts_db).add_user(BOB, PASSWORD, quota_bytes=2 * 1024 * 1024)
    ctl = MailCtl(cfg=cfg)
    env.ctl = ctl
    ctl.store.ensure_user(BOB)
    ctl.store.create_mailbox(BOB, "Work")
    for i in range(3):
        ctl.put(BOB, "Junk", f"junk {i}", tmp_path)
    ctl.put(BOB, "INBOX", "hello", tmp_path)
    ctl.put(BOB, "Trash", "deleted", tmp_path)
    ctl.store.ensure_user(ADMIN)
    ctl.put(ADMIN, "Junk", "the admin's junk", tmp_path)
    with served(make_app(env)) as base:
        yield base, env, ctl


def sign_in(b: WebDriver, base: str, email: str) -> None:
    b.get(base + "/login")
    fill(b, {"email": email, "password": PASSWORD})
    submit(b, "Sign in")
    assert "/login" not in b.current_url


def settings(ctl: MailCtl) -> MailSettings:
    script = ctl.sieve.get_script(BOB)
    assert script is not None
    parse(script)
    return read(script).settings


def set_value(b: WebDriver, name: str, value: str) -> None:
    """Date inputs take typed text in the browser's locale format: set the value."""
    b.execute_script("arguments[0].value = arguments[1]", b.find_element(By.NAME, name), value)


def test_mail_settings_in_the_browser(server: Server, browser: WebDriver) -> None:
    base, _env, ctl = server
    b = browser
    sign_in(b, base, BOB)
    assert b.current_url == base + "/me"
    assert not b.find_elements(By.LINK_TEXT, "Mailboxes")  # no admin pages for bob
    old = b.find_element(By.TAG_NAME, "html")
    b.find_element(By.CSS_SELECTOR, "nav.menav").find_element(By.LINK_TEXT, "Mail").click()
    WebDriverWait(b, 20).until(replaced(old))
    assert b.current_url == base + "/me/mail/"

    # Automatic reply: a bad date range first, then a good one.
    b.find_element(By.LINK_TEXT, "Automatic reply").click()
    WebDriverWait(b, 20).until(lambda d: d.current_url.endswith("/me/mail/vacation"))
    b.find_element(By.NAME, "enabled").click()
    set_value(b, "start", "2026-12-20")
    set_value(b, "end", "2026-12-01")
    fill(b, {"subject": "Away", "body": "Back in January.\nAsk Anna meanwhile.", "days": "3"})
    submit(b, "Save automatic reply")
    assert "The last day is before the first day." in text(b)
    assert ctl.sieve.get_script(BOB) is None
    set_value(b, "end", "2027-01-02")
    submit(b, "Save automatic reply")
    assert "Automatic reply on." in text(b)
    assert settings(ctl).vacation == Vacation(
        True, "2026-12-20", "2027-01-02", "Away", "Back in January.\nAsk Anna meanwhile.", 3
    )
    assert b.find_element(By.NAME, "enabled").is_selected()
    shot(b, "me-mail-01-vacation")

    # Forwarding without a copy.
    b.get(base + "/me/mail/forwarding")
    fill(b, {"addresses": "anna@example.net\nbob@example.org"})
    keep = b.find_element(By.NAME, "keep")
    if keep.is_selected():
        keep.click()
    submit(b, "Save forwarding")
    assert "Forwarding saved." in text(b)
    assert settings(ctl).forwarding == Forwarding(("anna@example.net", "bob@example.org"), False)
    shot(b, "me-mail-02-forwarding")

    # Filter rules: a folder rule, a junk rule, move the second up, delete the first.
    b.get(base + "/me/mail/filters")
    Select(b.find_element(By.NAME, "field")).select_by_value("from")
    fill(b, {"contains": "boss@example.org"})
    Select(b.find_element(By.NAME, "action")).select_by_value("folder")
    Select(b.find_element(By.NAME, "folder")).select_by_visible_text("Work")
    submit(b, "Add rule")
    assert "Rule added." in text(b)
    Select(b.find_element(By.NAME, "field")).select_by_value("subject")
    fill(b, {"contains": "pills"})
    Select(b.find_element(By.NAME, "action")).select_by_value("junk")
    submit(b, "Add rule")
    rows = b.find_elements(By.CSS_SELECTOR, "#rules tbody tr")
    assert len(rows) == 2 and "pills" in rows[1].text
    assert settings(ctl).rules == (
        Rule("from", "boss@example.org", "folder", "Work"),
        Rule("subject", "pills", "junk"),
    )
    shot(b, "me-mail-03-filters")
    submit(b, "Move up")
    assert "Rule moved up." in text(b)
    assert [r.contains for r in settings(ctl).rules] == ["pills", "boss@example.org"]
    old = b.find_element(By.TAG_NAME, "html")
    b.find_elements(By.CSS_SELECTOR, "#rules button.danger")[0].click()  # the first rule's
    WebDriverWait(b, 20).until(replaced(old))
    assert "Rule deleted." in text(b)
    assert [r.contains for r in settings(ctl).rules] == ["boss@example.org"]
    # the other settings are untouched by rule edits
    assert settings(ctl).forwarding.addresses == ("anna@example.net", "bob@example.org")

    # Storage and Empty Junk, after a confirmation page.
    b.get(base + "/me/mail/")
    assert "of 2.1 MB used" in text(b)
    meter = b.find_element(By.ID, "quota-meter")
    assert meter.get_attribute("max") == str(2 * 1024 * 1024)
    assert int(meter.get_attribute("value") or 0) > 0
    junk_row = b.find_element(By.XPATH, "//table[@id='folders']//tr[td[1]='Junk']")
    assert junk_row.find_elements(By.TAG_NAME, "td")[1].text == "3"
    shot(b, "me-mail-04-storage")
    old = b.find_element(By.TAG_NAME, "html")
    junk_row.find_element(By.LINK_TEXT, "Empty Junk").click()
    WebDriverWait(b, 20).until(replaced(old))
    assert "Empty Junk?" in text(b)
    shot(b, "me-mail-05-empty-confirm")
    submit(b, "Delete 3 messages")
    assert "Junk is empty: 3 messages deleted." in text(b)
    assert ctl.store.status(BOB, "Junk").messages == 0
    assert ctl.store.status(BOB, "INBOX").messages == 1
    assert ctl.store.status(ADMIN, "Junk").messages == 1  # someone else's Junk stays
    assert ctl.sieve.get_script(ADMIN) is None
    junk_row = b.find_element(By.XPATH, "//table[@id='folders']//tr[td[1]='Junk']")
    assert junk_row.find_elements(By.TAG_NAME, "td")[1].text == "0"
    assert not junk_row.find_elements(By.LINK_TEXT, "Empty Junk")

    # Empty Trash: Cancel on the confirmation page keeps it, the button empties it.
    old = b.find_element(By.TAG_NAME, "html")
    b.find_element(By.LINK_TEXT, "Empty Trash").click()
    WebDriverWait(b, 20).until(replaced(old))
    old = b.find_element(By.TAG_NAME, "html")
    b.find_element(By.LINK_TEXT, "Cancel").click()
    WebDriverWait(b, 20).until(replaced(old))
    assert ctl.store.status(BOB, "Trash").messages == 1
    old = b.find_element(By.TAG_NAME, "html")
    b.find_element(By.LINK_TEXT, "Empty Trash").click()
    WebDriverWait(b, 20).until(replaced(old))
    submit(b, "Delete 1 message")
    assert "Trash is empty: 1 message deleted." in text(b)
    assert ctl.store.status(BOB, "Trash").messages == 0


def test_mail_pages_at_phone_width(server: Server, browser: WebDriver) -> None:
    base, _env, ctl = server
    b = browser
    b.set_window_size(390, 844)
    width = int(b.execute_script("return window.innerWidth"))
    sign_in(b, base, BOB)
    long_rule = Rule(
        "subject", "a-rather-long-subject-text-to-look-for", "forward", "x@example.org"
    )
    ctl.sieve.save_script(
        BOB,
        render(read(None), MailSettings(rules=(long_rule, Rule("from", "boss", "folder", "Work")))),
    )
    for path in ("/me/mail/", "/me/mail/vacation", "/me/mail/forwarding", "/me/mail/filters"):
        b.get(base + path)
        wide = int(b.execute_script("return document.documentElement.scrollWidth"))
        assert wide <= width, f"{path} is {wide} px wide in {width} px"
        b.save_screenshot(str(SHOTS / f"me-mail-phone-{path.strip('/').replace('/', '-')}.png"))
