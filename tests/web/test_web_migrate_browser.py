"""'Bring your old mail' in a real browser (Debian's chromium through selenium): a preset
fills the server fields, the progress bar follows the daemon's counts while the job runs,
and the page shows the summary when it ends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from appliance.accounts import Accounts
from appliance.ctl.protocol import CtlError
from tests.web.test_web_browser import CHROMEDRIVER, browser, fill, shot, submit, text
from tests.web.web_helpers import ADMIN, PASSWORD, Env, make_app, new_env, served

__all__ = ["browser"]

pytestmark = pytest.mark.skipif(
    not CHROMEDRIVER.exists() or shutil.which("chromium") is None,
    reason="needs Debian's chromium and chromium-driver (tests/apt-packages.txt)",
)


class JobCtl:
    """migrate_* as the daemon answers them, with a job the test moves along."""

    def __init__(self) -> None:
        self.job: dict[str, Any] | None = None
        self.started: list[dict[str, Any]] = []

    def __call__(self, cmd: str, **args: Any) -> Any:
        if cmd == "migrate_status":
            jobs = [dict(self.job)] if self.job else []
            return {"running": bool(self.job and self.job["status"] == "running"), "jobs": jobs}
        if cmd == "migrate_start":
            self.started.append(args)
            self.job = {
                "job_id": "j1", "kind": "imap", "user": args["user"], "params": args,
                "status": "running", "message": "", "total": 400, "copied": 0, "skipped": 0,
                "failed": 0, "failures": [], "folder": "INBOX", "rate": 0.0, "started": 0.0,
            }  # fmt: skip
            return {"job_id": "j1"}
        if cmd == "status":
            return {"version": "0.1.0", "uptime": 1.0, "services": {}}
        raise CtlError(f"unknown command {cmd!r}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Env, JobCtl]]:
    env = new_env(tmp_path)
    accounts = Accounts(env.cfg.accounts_db)
    accounts.add_domain("pillarbox.test")
    accounts.add_user(ADMIN, PASSWORD, is_admin=True)
    ctl = JobCtl()
    env.ctl.call = ctl  # type: ignore[method-assign]
    with served(make_app(env)) as base:
        yield base, env, ctl


def test_presets_progress_and_summary(server: tuple[str, Env, JobCtl], browser: WebDriver) -> None:
    base, _env, ctl = server
    b = browser
    b.get(base + "/login")
    fill(b, {"email": ADMIN, "password": PASSWORD})
    submit(b, "Sign in")
    b.get(base + "/migrate/")
    host = b.find_element(By.ID, "f-host")
    assert host.get_attribute("value") == "imap.gmail.com"
    b.find_element(By.CSS_SELECTOR, 'input[name="preset"][value="icloud"]').click()
    assert host.get_attribute("value") == "imap.mail.me.com"
    assert "app-specific password" in b.find_element(By.ID, "preset-hint").text
    fill(b, {"login": "me@icloud.com", "password": "abcd-efgh-ijkl-mnop"})
    submit(b, "Start copying")
    assert ctl.started[0]["host"] == "imap.mail.me.com"
    assert ctl.started[0]["password"] == "abcd-efgh-ijkl-mnop"
    assert "The import started" in text(b)
    assert ctl.job is not None
    ctl.job.update(copied=150, skipped=10, rate=52.5, folder="Sent")

    def bar_value(driver: WebDriver) -> bool:
        bar = driver.find_element(By.CSS_SELECTOR, ".migrate-bar")
        return bar.get_attribute("value") == "160"

    # polled by migrate.js, no reload; the script may replace the bar between lookups
    WebDriverWait(b, 15, ignored_exceptions=(StaleElementReferenceException,)).until(bar_value)
    assert "52.5" in text(b) and "Sent" in text(b)
    shot(b, "30-old-mail-progress")
    ctl.job.update(
        status="done", copied=390, skipped=10, failed=0, folder="",
        message="copied 390 (390 in this run), skipped 10 duplicates, failed 0",
    )  # fmt: skip
    WebDriverWait(b, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "skipped 10 duplicates" in text(d)
    )
    assert "done" in text(b)
    shot(b, "31-old-mail-done")
