"""The wizard in a real browser: Debian's chromium through selenium against the web UI's server.

Walks first boot (wrong code, right code, a weak then a good password), then the main
pages, an app password, a disk format with its progress page, and saves a screenshot of
each step to tests/web/screenshots/.
"""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from appliance import config
from appliance.setupsecret import read_or_create_secret
from tests.harness import REPO, wait_port, write_config
from tests.web.web_helpers import (
    ADMIN,
    HELPER,
    PASSWORD,
    QUEUE_ENTRY,
    Env,
    make_app,
    new_env,
    served,
)
from webui.helper import RootHelper

SHOTS = Path(__file__).parent / "screenshots"
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not CHROMEDRIVER.exists() or shutil.which("chromium") is None,
    reason="needs Debian's chromium and chromium-driver (tests/apt-packages.txt)",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Env]]:
    env = new_env(tmp_path)
    domain = "pillarbox.test"
    env.resolver.records.update(
        {
            (domain, "MX"): ["10 mail.pillarbox.test"],
            ("mail.pillarbox.test", "A"): ["192.0.2.10"],
            (domain, "TXT"): ["v=spf1 mx -all"],
            (f"_dmarc.{domain}", "TXT"): ["v=DMARC1; p=none"],
        }
    )
    app = make_app(env)
    # A slow helper (1 s per call) so the progress page is seen running, then polled to done.
    app.extensions["pillarbox"].helper = RootHelper(
        argv=("/bin/sh", "-c", f'sleep 1; exec "{sys.executable}" "{HELPER}"'),
        env={"PILLARBOX_ROOT_HELPER_FAKE": str(env.record), "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    with served(app) as base:
        yield base, env


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 200, 800), 4000))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def fill(driver: WebDriver, values: dict[str, str]) -> None:
    for name, value in values.items():
        box = driver.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)


def replaced(old: WebElement) -> Callable[[WebDriver], bool]:
    """A wait condition: the document `old` belonged to has been replaced. Chromium
    answers a query about an element of a document it is tearing down with either a
    stale-element error or (under load) a generic inspector error ("Node with given
    id does not belong to the document"); both mean the old page is gone."""

    def gone(_driver: WebDriver) -> bool:
        try:
            old.is_enabled()
        except WebDriverException:
            return True
        return False

    return gone


def submit(driver: WebDriver, label: str) -> None:
    """Click a button and wait until the next page has replaced this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()
    WebDriverWait(driver, 20).until(replaced(old))


def text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_wizard_walkthrough(server: tuple[str, Env], browser: WebDriver) -> None:
    base, env = server
    b = browser
    b.get(base + "/")
    assert b.current_url == base + "/setup/"
    shot(b, "01-unlock")

    fill(b, {"secret": "AAAA-BBBB-CCCC-DDDD-EEEE"})
    submit(b, "Unlock setup")
    assert "not the setup code" in text(b)
    shot(b, "02-unlock-wrong")

    fill(b, {"secret": read_or_create_secret(env.cfg).lower()})
    submit(b, "Unlock setup")
    assert b.current_url == base + "/setup/admin"
    fill(b, {"local": "admin", "password": "short", "confirm": "short"})
    submit(b, "Create account")
    assert "at least 8 characters" in text(b)
    shot(b, "03-admin-weak-password")

    fill(b, {"password": PASSWORD, "confirm": PASSWORD})
    submit(b, "Create account")
    assert b.current_url.startswith(base + "/dns")
    assert f"admin account {ADMIN} is ready" in text(b)
    rows = b.find_elements(By.CSS_SELECTOR, "table.records tbody tr")
    assert len(rows) >= 10
    assert b.find_elements(By.CSS_SELECTOR, "tr.row-ok") and b.find_elements(
        By.CSS_SELECTOR, "tr.row-error"
    )
    shot(b, "04-dns")

    b.get(base + "/")
    assert "Mail service" in text(b) and "Running" in text(b)
    shot(b, "05-dashboard")

    b.get(base + "/users")
    fill(b, {"local": "anna", "password": PASSWORD, "confirm": PASSWORD + "x", "quota": "500"})
    submit(b, "Create mailbox")
    assert "not the same" in text(b)
    fill(b, {"password": PASSWORD, "confirm": PASSWORD})
    submit(b, "Create mailbox")
    assert "Mailbox anna@pillarbox.test created" in text(b)
    shot(b, "06-users")

    b.get(base + "/users/anna@pillarbox.test")
    fill(b, {"label": "Anna's phone"})
    submit(b, "Create app password")
    secret = b.find_element(By.ID, "new-app-password").text
    assert len(secret) == 36  # 8-hex public id + four groups of 6 hex
    shot(b, "07-app-password")

    b.get(base + "/aliases")
    fill(b, {"source": "info@pillarbox.test", "target": "anna@pillarbox.test"})
    submit(b, "Add alias")
    assert "now goes to anna@pillarbox.test" in text(b)
    shot(b, "08-aliases")

    env.ctl.queue = [QUEUE_ENTRY]
    for path, name in (
        ("/queue", "08b-queue"),
        ("/clients", "09-clients"),
        ("/certificate", "10-certificate"),
        ("/hardware", "11-hardware"),
        ("/domains", "12-domains"),
    ):
        b.get(base + path)
        assert "Internal Server Error" not in text(b)
        shot(b, name)

    b.get(base + "/storage")
    shot(b, "13-storage")
    b.find_element(By.XPATH, "//summary[contains(., 'Erase and prepare')]").click()
    fill(b, {"confirm": "sdb"})
    submit(b, "Erase and prepare")
    job = b.find_element(By.ID, "job")
    assert job.get_attribute("data-state") == "running"
    assert not b.find_element(By.ID, "job-back").is_displayed()
    shot(b, "14-format-running")
    WebDriverWait(b, 20).until(lambda d: "ready and holds your mail" in text(d))
    assert b.find_element(By.ID, "job-back").is_displayed()
    shot(b, "15-format-done")
    commands = env.helper_commands()
    assert [
        "mkfs.ext4",
        "-F",
        "-q",
        "-L",
        "pillarbox",
        "-m",
        "1",
        "-E",
        "lazy_itable_init=1",
        "/dev/sdb",
    ] in commands

    submit(b, "Sign out")
    assert b.current_url.startswith(base + "/login")
    shot(b, "16-signed-out")


def test_wizard_on_a_running_dev_instance(tmp_path: Path, browser: WebDriver) -> None:
    """What `make run` starts (`pillarbox run --dev`: the daemon plus the web UI as its
    child), set up in the browser, then used as a mail server by the new mailbox."""
    cfg_path = write_config(tmp_path / "box")
    cfg = config.load(cfg_path)
    log = (tmp_path / "run.log").open("wb")
    cli = [sys.executable, "-m", "appliance.cli"]
    proc = subprocess.Popen(
        [*cli, "run", "--dev", "--config", str(cfg_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        for addrs in (cfg.listeners.web, cfg.listeners.smtp, cfg.listeners.imaps):
            wait_port(addrs[0].host, addrs[0].port, timeout=60)
        base = f"http://127.0.0.1:{cfg.listeners.web[0].port}"
        secret = subprocess.run(
            [*cli, "setup-secret", "--config", str(cfg_path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            timeout=30,
        ).stdout.strip()
        b = browser
        b.get(base + "/")
        assert b.current_url == base + "/setup/"
        fill(b, {"secret": secret})
        submit(b, "Unlock setup")
        fill(b, {"local": "admin", "password": PASSWORD, "confirm": PASSWORD})
        submit(b, "Create account")
        assert "is ready" in text(b)
        shot(b, "20-devrun-dns")
        b.get(base + "/")
        assert "Running" in text(b)  # the dashboard asked the real daemon over ctl
        shot(b, "21-devrun-dashboard")
        b.get(base + "/users")
        fill(b, {"local": "maria", "password": PASSWORD, "confirm": PASSWORD, "quota": "100"})
        submit(b, "Create mailbox")
        created = text(b)
        domain = created.split("Mailbox maria@", 1)[1].split()[0]
        user = f"maria@{domain}"
        shot(b, "22-devrun-users")

        # The mailbox made in the browser receives mail over SMTP and reads it over IMAP.
        msg = f"From: a@remote.test\r\nTo: {user}\r\nSubject: made in the wizard\r\n\r\nhi\r\n"
        smtp = cfg.listeners.smtp[0]
        with smtplib.SMTP(smtp.host, smtp.port, timeout=20) as s:
            assert s.sendmail("a@remote.test", [user], msg) == {}
        ctx = ssl.create_default_context(cafile=str(cfg.tls.cert))
        ctx.check_hostname = False
        imaps = cfg.listeners.imaps[0]
        with imaplib.IMAP4_SSL(imaps.host, imaps.port, ssl_context=ctx, timeout=20) as c:
            c.login(user, PASSWORD)
            c.select("INBOX")
            typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            assert b"made in the wizard" in data[0][1]  # type: ignore[index]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
