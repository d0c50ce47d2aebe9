"""Issue 16 item 4 on real sockets against the real daemon: SMTP AUTH, IMAP LOGIN and
POP3 USER/PASS share one throttle keyed on the canonical account and the source IP.

- Failures in different spellings of one login (``bob@d.``, ``<bob@d>``, ``BOB@d``)
  count against one account: the right password in yet another spelling from the same
  address is refused while the back-off lasts.
- The owner with the right password on another address still gets in; past the
  per-account ceiling (failures from many addresses) the login is slowed, not refused.

Clients bind their source address inside 127.0.0.0/8 (Linux routes all of it to lo).
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Literal

import pytest

from appliance import config
from appliance.accounts import Accounts, LoginThrottle
from tests.harness import Daemon, write_config

PASSWORD = "correct-Horse-battery-42"
WRONG = "wrong-guess-00000"
DOMAIN = "example.org"
PROTOCOLS = ["smtp", "imap", "pop3"]
SUBNET = {"smtp": 1, "imap": 2, "pop3": 3}  # each protocol its own source addresses

Outcome = Literal["ok", "failed", "throttled"]


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Imap(imaplib.IMAP4_SSL):
    """IMAP over TLS from a chosen source address (imaplib has no source_address)."""

    def __init__(self, src: str, host: str, port: int) -> None:
        self.src, self.tls = src, _tls()
        super().__init__(host, port, ssl_context=self.tls, timeout=20)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout, (self.src, 0))
        return self.tls.wrap_socket(sock, server_hostname=self.host)


class _Pop3(poplib.POP3_SSL):
    """POP3 over TLS from a chosen source address (poplib has no source_address)."""

    def __init__(self, src: str, host: str, port: int) -> None:
        self.src, self.tls = src, _tls()
        super().__init__(host, port, timeout=20, context=self.tls)

    def _create_socket(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout, (self.src, 0))
        return self.tls.wrap_socket(sock, server_hostname=self.host)


def attempt(daemon: Daemon, proto: str, src: str, login: str, password: str) -> Outcome:
    """One login on a fresh connection from ``src``."""
    if proto == "smtp":
        host, port = daemon.addr("submissions")
        with smtplib.SMTP_SSL(
            host, port, context=_tls(), timeout=20, source_address=(src, 0)
        ) as smtp:
            smtp.ehlo()
            smtp.user, smtp.password = login, password
            try:
                smtp.auth("PLAIN", smtp.auth_plain)
            except smtplib.SMTPAuthenticationError as exc:
                assert exc.smtp_code in (454, 535), exc
                return "throttled" if exc.smtp_code == 454 else "failed"
            return "ok"
    if proto == "imap":
        imap = _Imap(src, *daemon.addr("imaps"))
        try:
            imap.login(login, password)
        except imaplib.IMAP4.error as exc:
            text = str(exc)
            assert "UNAVAILABLE" in text or "AUTHENTICATIONFAILED" in text, text
            return "throttled" if "UNAVAILABLE" in text else "failed"
        finally:
            imap.shutdown()
        return "ok"
    pop = _Pop3(src, *daemon.addr("pop3s"))
    try:
        pop.user(login)
        pop.pass_(password)
    except poplib.error_proto as exc:
        text = str(exc)
        assert "[SYS/TEMP]" in text or "[AUTH]" in text, text
        return "throttled" if "[SYS/TEMP]" in text else "failed"
    finally:
        pop.close()
    return "ok"


def user(name: str, proto: str) -> str:
    return f"{name}-{proto}@{DOMAIN}"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("login-throttle")
    cfg_path = write_config(root)
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain(DOMAIN)
    for proto in PROTOCOLS:
        for name in ("bob", "carol", "dave"):
            accounts.add_user(user(name, proto), PASSWORD)
    accounts.close()
    with Daemon(cfg_path, wait_for=("submissions", "imaps", "pop3s")) as d:
        yield d


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_spelling_variants_share_the_accounts_budget(daemon: Daemon, proto: str) -> None:
    bob = user("bob", proto)
    net = SUBNET[proto]
    here, elsewhere = f"127.0.{net}.1", f"127.0.{net}.2"
    free = LoginThrottle().free_failures  # the daemon's default
    spellings = [f"{bob}.", f"<{bob}>", bob.upper(), f"{bob}.", f"<{bob.upper()}.>"]
    for spelling in spellings[:free]:
        assert attempt(daemon, proto, here, spelling, WRONG) == "failed"
    # The right password in a spelling not used yet: still the same account, held back.
    assert attempt(daemon, proto, here, spellings[free], PASSWORD) == "throttled"
    # Another account from the same address is not locked out by bob's guesses.
    assert attempt(daemon, proto, here, user("carol", proto), PASSWORD) == "ok"
    # Bob himself, from another address, gets in at once.
    assert attempt(daemon, proto, elsewhere, bob, PASSWORD) == "ok"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_account_ceiling_slows_but_lets_the_owner_in(daemon: Daemon, proto: str) -> None:
    dave = user("dave", proto)
    net = SUBNET[proto]
    defaults = LoginThrottle()
    per_source = defaults.free_failures - 1  # stay under each (account, source) back-off
    sources = -(-defaults.account_ceiling // per_source)  # enough sources to pass the ceiling
    variants = [dave, f"<{dave}>", f"{dave.upper()}."]
    for s in range(sources):
        for i in range(per_source):
            src = f"127.0.{net}.{10 + s}"
            assert attempt(daemon, proto, src, variants[(s + i) % 3], WRONG) == "failed"
    start = time.monotonic()
    assert attempt(daemon, proto, f"127.0.{net}.200", f"<{dave}.>", PASSWORD) == "ok"
    assert time.monotonic() - start >= defaults.account_delay * 0.9  # slowed, not refused


def test_pop3_refuses_plaintext_login_on_loopback(daemon: Daemon) -> None:
    """Issue 16 (Low): USER/PASS need TLS from loopback too, like IMAP and SMTP AUTH."""
    pop = poplib.POP3(*daemon.addr("pop3"), timeout=20)
    try:
        caps = pop.capa()
        assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
            pop.user(user("carol", "pop3"))
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
            pop._shortcmd("AUTH PLAIN AGNhcm9sAHNlY3JldA==")  # type: ignore[attr-defined]
        pop.stls(context=_tls())
        pop.user(user("carol", "pop3"))
        pop.pass_(PASSWORD)
        assert pop.stat()[0] == 0
    finally:
        pop.close()
