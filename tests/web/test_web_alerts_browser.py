"""The alert banner and the "Send test alert" button in a real browser (chromium through
selenium), on a box whose real daemon delivers the test alert to the admin's INBOX."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.web.alert_box import alert_box
from tests.web.test_web_browser import browser, fill, pytestmark, shot, submit, text
from tests.web.web_helpers import ADMIN, PASSWORD, served
from webui.alertchecks import Memory
from webui.sizing import GiB

__all__ = ["browser", "pytestmark"]  # the browser fixture, and its skip without chromium


def test_banner_and_test_alert_button(tmp_path: Path, browser: WebDriver) -> None:
    b = browser
    with alert_box(tmp_path) as box, served(box.app) as base:
        box.mail_used[0] = 0.96
        box.memory[0] = Memory(4 * GiB, GiB // 4, 0, 0)
        box.check()
        b.get(base + "/login")
        fill(b, {"email": ADMIN, "password": PASSWORD})
        submit(b, "Sign in")
        banner = b.find_element(By.ID, "alert-banner")
        assert "2 problems need attention" in banner.text
        items = banner.find_elements(By.CSS_SELECTOR, "li.alert-item")
        assert [i.get_attribute("data-key") for i in items] == ["disk:mail", "memory:ram"]
        assert "Mail disk 96% full" in items[0].text and "Memory is running out" in items[1].text
        assert "alert-critical" in (banner.get_attribute("class") or "")
        assert b.find_element(By.ID, "alert-to").text == ADMIN
        shot(b, "30-alert-banner")

        submit(b, "Send test alert")
        assert f"A test alert is on its way to {ADMIN}." in text(b)
        shot(b, "31-alert-test-sent")
        assert box.mailed("Test alert") == 1

        box.mail_used[0] = 0.40
        box.memory[0] = Memory(4 * GiB, 3 * GiB, 0, 0)
        box.check()
        b.get(base + "/")
        assert not b.find_elements(By.ID, "alert-banner")
