"""Issue 21 in a real browser (Debian's chromium through selenium): Roundcube at /mail/ on
the real web front, with its real php-fpm pool, against the real daemon (IMAP, SMTP
submission). A mailbox user signs in to webmail, reads a message delivered over SMTP and
replies; the other local user receives the reply over IMAP. One server, one browser
session, the whole story in one test (make test is near its time limit)."""

from __future__ import annotations

import email.policy
import imaplib
import smtplib
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from appliance import config
from appliance.accounts import Accounts
from tests.harness import Daemon, write_config
from tests.web.test_web_browser import browser, fill, replaced, shot
from tests.web.test_web_browser import pytestmark as needs_chromium
from tests.web.webmail_helpers import needs_fpm, web_front, webmail_fpm

__all__ = ["browser"]
pytestmark = [needs_chromium, needs_fpm]

ALICE = "alice@pillarbox.test"
BOB = "bob@pillarbox.test"
PW = "correct horse battery staple 21"
SUBJECT = "Lunch on Friday?"
REPLY_TEXT = "Friday works, see you at noon."


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the dev certificate
    return ctx


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[str, Daemon]]:
    cfg_path = write_config(tmp_path / "box", listeners={"webs": []}, webmail={"enabled": True})
    cfg = config.load(cfg_path)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("pillarbox.test")
    accounts.add_user(ALICE, PW)
    accounts.add_user(BOB, PW)
    with (
        Daemon(cfg_path, wait_for=("imaps", "submissions")) as daemon,
        webmail_fpm(cfg_path),
        web_front(cfg_path) as front,
    ):
        scheme, host, port = front.addresses[0]
        yield f"{scheme}://{host}:{port}", daemon


def _send_from_bob(daemon: Daemon) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = BOB, ALICE, SUBJECT
    msg.set_content("Shall we try the new place on Friday?\n")
    host, port = daemon.addr("submissions")
    with smtplib.SMTP_SSL(host, port, context=_tls(), timeout=30) as s:
        s.login(BOB, PW)
        s.send_message(msg)


def _bob_finds(daemon: Daemon, subject: str, deadline: float) -> EmailMessage:
    host, port = daemon.addr("imaps")
    while True:
        with imaplib.IMAP4_SSL(host, port, ssl_context=_tls(), timeout=30) as imap:
            imap.login(BOB, PW)
            imap.select("INBOX", readonly=True)
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            if found[0]:
                num = found[0].split()[-1]
                _, data = imap.fetch(num, "(RFC822)")
                raw = data[0]
                assert isinstance(raw, tuple)
                msg = email.message_from_bytes(raw[1], policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                return msg
        assert time.monotonic() < deadline, f"bob has no {subject!r}"
        time.sleep(0.5)


def test_webmail_sign_in_read_and_reply(box: tuple[str, Daemon], browser: WebDriver) -> None:
    base, daemon = box
    b = browser
    wait = WebDriverWait(b, 30)
    _send_from_bob(daemon)

    b.get(base + "/mail/")
    assert "Pillarbox webmail" in b.title
    fill(b, {"_user": ALICE, "_pass": PW})
    old = b.find_element(By.TAG_NAME, "html")
    b.find_element(By.ID, "rcmloginsubmit").click()
    wait.until(replaced(old))
    row = wait.until(
        ec.element_to_be_clickable(
            (By.XPATH, f"//table[@id='messagelist']//tr[.//*[normalize-space()='{SUBJECT}']]")
        )
    )
    for folder in ("sent", "junk", "archive"):  # the store's folders, subscribed at login
        b.find_element(By.CSS_SELECTOR, f"#mailboxlist li.mailbox.{folder}")
    shot(b, "webmail-01-inbox")
    row.click()
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.ID, "messagecontframe")))
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "new place on Friday"))
    b.switch_to.default_content()
    shot(b, "webmail-02-message")

    old = b.find_element(By.TAG_NAME, "html")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#toolbar-menu a.reply"))).click()
    wait.until(replaced(old))
    body = wait.until(ec.element_to_be_clickable((By.ID, "composebody")))
    recipients = b.find_element(By.ID, "_to").get_attribute("value") or ""
    to_widget = b.find_element(By.CSS_SELECTOR, "#compose_to .recipient-input").text
    assert BOB in recipients or BOB in to_widget
    body.click()
    body.send_keys(REPLY_TEXT + "\n")
    shot(b, "webmail-03-reply")
    b.find_element(By.CSS_SELECTOR, "button.btn.send").click()

    reply = _bob_finds(daemon, f"Re: {SUBJECT}", time.monotonic() + 60)
    assert reply["From"] and ALICE in reply["From"]
    part = reply.get_body(preferencelist=("plain",))
    assert part is not None
    assert REPLY_TEXT in part.get_content()
    assert reply["In-Reply-To"]  # Roundcube threads the reply to bob's message
