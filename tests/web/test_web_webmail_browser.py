"""Issue 21 in a real browser (Debian's chromium through selenium): Roundcube at /mail/ on
the real web front, with its real php-fpm pool, against the real daemon (IMAP, SMTP
submission, ManageSieve). A mailbox user signs in to webmail, reads a message delivered
over SMTP and replies (the other local user receives the reply over IMAP), makes a filter
"subject contains INV-42 -> Receipts" in Roundcube's Filters page (a matching message
delivered over SMTP lands in Receipts), and sets a vacation reply (each sender gets it
once). One server, one browser session, the whole story in one test (make test is near
its time limit)."""

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
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

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
CAROL = "carol@pillarbox.test"
PW = "correct horse battery staple 21"
SUBJECT = "Lunch on Friday?"
REPLY_TEXT = "Friday works, see you at noon."
FOLDER = "Receipts"
AWAY = "Back on Monday, reading mail then."


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
    accounts.add_user(CAROL, PW)
    with (
        Daemon(cfg_path, wait_for=("imaps", "submissions", "managesieve")) as daemon,
        webmail_fpm(cfg_path),
        web_front(cfg_path) as front,
    ):
        scheme, host, port = front.addresses[0]
        yield f"{scheme}://{host}:{port}", daemon


def _send(daemon: Daemon, sender: str, subject: str, text: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ALICE, subject
    msg.set_content(text)
    host, port = daemon.addr("submissions")
    with smtplib.SMTP_SSL(host, port, context=_tls(), timeout=30) as s:
        s.login(sender, PW)
        s.send_message(msg)


def _visible(b: WebDriver, css: str) -> WebElement:
    """The first shown element matching ``css`` (Roundcube keeps hidden copies in menus)."""

    def shown(d: WebDriver) -> WebElement | None:
        return next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None)

    found = WebDriverWait(b, 30).until(shown)
    assert found is not None
    return found


def _imap(daemon: Daemon, user: str) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL(*daemon.addr("imaps"), ssl_context=_tls(), timeout=30)
    imap.login(user, PW)
    return imap


def _messages(daemon: Daemon, user: str, folder: str, *search: str) -> list[EmailMessage]:
    with _imap(daemon, user) as imap:
        imap.select(folder, readonly=True)
        _, found = imap.search(None, *search)
        out = []
        for num in found[0].split():
            _, data = imap.fetch(num, "(RFC822)")
            raw = data[0]
            assert isinstance(raw, tuple)
            msg = email.message_from_bytes(raw[1], policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out


def _wait_for(
    daemon: Daemon, user: str, folder: str, search: tuple[str, ...], count: int = 1
) -> list[EmailMessage]:
    deadline = time.monotonic() + 60
    while True:
        found = _messages(daemon, user, folder, *search)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{user} has no {search} in {folder}"
        time.sleep(0.5)


def test_webmail_sign_in_read_and_reply(box: tuple[str, Daemon], browser: WebDriver) -> None:
    base, daemon = box
    b = browser
    wait = WebDriverWait(b, 30)
    _send(daemon, BOB, SUBJECT, "Shall we try the new place on Friday?\n")
    with _imap(daemon, ALICE) as imap:  # a folder of her own for the filter to file into
        assert imap.create(FOLDER)[0] == "OK" and imap.subscribe(FOLDER)[0] == "OK"

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
    old = b.find_element(By.TAG_NAME, "html")
    b.find_element(By.CSS_SELECTOR, "button.btn.send").click()
    wait.until(replaced(old))  # sent: Roundcube goes back to the mail list
    wait.until(ec.presence_of_element_located((By.ID, "messagelist")))

    (reply,) = _wait_for(daemon, BOB, "INBOX", ("SUBJECT", f'"Re: {SUBJECT}"'))
    assert reply["From"] and ALICE in reply["From"]
    part = reply.get_body(preferencelist=("plain",))
    assert part is not None
    assert REPLY_TEXT in part.get_content()
    assert reply["In-Reply-To"]  # Roundcube threads the reply to bob's message

    # A filter in Roundcube's Filters page (managesieve plugin -> the daemon's ManageSieve)
    b.get(base + "/mail/?_task=settings&_action=plugin.managesieve")
    _visible(b, "a.create").click()
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.ID, "filter-box")))
    wait.until(ec.element_to_be_clickable((By.NAME, "_name"))).send_keys("Receipts")
    assert (
        Select(b.find_element(By.NAME, "_header[0]")).first_selected_option.get_attribute("value")
        == "subject"
    )
    assert (
        Select(b.find_element(By.NAME, "_rule_op[0]")).first_selected_option.get_attribute("value")
        == "contains"
    )
    b.find_element(By.NAME, "_rule_target[0][]").send_keys("INV-42")
    assert (
        Select(b.find_element(By.NAME, "_action_type[0]")).first_selected_option.get_attribute(
            "value"
        )
        == "fileinto"
    )
    Select(b.find_element(By.NAME, "_action_mailbox[0]")).select_by_value(FOLDER)
    b.find_element(By.CSS_SELECTOR, "button.submit").click()
    b.switch_to.default_content()
    wait.until(ec.text_to_be_present_in_element((By.ID, "filterslist"), "Receipts"))
    shot(b, "webmail-04-filter")
    _send(daemon, BOB, "Your invoice INV-42", "Paid, thank you.\n")
    _wait_for(daemon, ALICE, FOLDER, ("SUBJECT", '"INV-42"'))
    assert _messages(daemon, ALICE, "INBOX", "SUBJECT", '"INV-42"') == []

    # A vacation reply: each sender gets it once
    b.get(base + "/mail/?_task=settings&_action=plugin.managesieve-vacation")
    wait.until(ec.element_to_be_clickable((By.NAME, "vacation_subject"))).send_keys("Away")
    b.find_element(By.NAME, "vacation_reason").send_keys(AWAY)
    Select(b.find_element(By.NAME, "vacation_status")).select_by_value("on")
    b.find_element(By.CSS_SELECTOR, "button.submit").click()  # saved in the background
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#messagestack .confirmation")))
    shot(b, "webmail-05-vacation")
    b.get(base + "/mail/?_task=settings&_action=plugin.managesieve-vacation")  # as stored
    wait.until(ec.element_to_be_clickable((By.NAME, "vacation_subject")))
    status = Select(b.find_element(By.NAME, "vacation_status")).first_selected_option
    assert status.get_attribute("value") == "on"
    for n in (1, 2):
        _send(daemon, CAROL, f"Question {n}", "Are you around?\n")
        _wait_for(daemon, ALICE, "INBOX", ("FROM", CAROL), count=n)
    _send(daemon, BOB, "One more thing", "About Friday...\n")
    _wait_for(daemon, ALICE, "INBOX", ("SUBJECT", '"One more thing"'))
    away = ("BODY", f'"{AWAY}"')
    assert len(_wait_for(daemon, BOB, "INBOX", away)) == 1  # after carol's two: both handled
    assert len(_messages(daemon, CAROL, "INBOX", *away)) == 1
    log = daemon.config.webmail.data / "logs" / "errors.log"
    errors = log.read_text() if log.exists() else ""
    assert "PHP Error" not in errors, errors
