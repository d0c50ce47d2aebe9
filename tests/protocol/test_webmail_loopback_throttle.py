"""Issue 21: with webmail on, Roundcube logs in to the daemon from 127.0.0.1 for every
user, so failures from 127.0.0.1 count for the account alone (slowed past the ceiling,
never refused) and never lock other webmail users out; the web front throttles them per
browser address (tests/web/test_web_webmail.py). Any other address keeps its budget."""

from __future__ import annotations

import contextlib
import imaplib
from pathlib import Path

from appliance import config
from appliance.accounts import Accounts, LoginThrottle
from appliance.ctl.client import CtlClient
from tests.harness import Daemon, write_config
from tests.protocol.test_login_throttle import _Imap

PASSWORD = "correct-Horse-battery-42"
USERS = [f"user{i}@example.org" for i in range(12)]


def _login(src: str, addr: tuple[str, int], user: str, password: str) -> str:
    imap = _Imap(src, *addr)
    try:
        imap.login(user, password)
        return "ok"
    except imaplib.IMAP4.error as exc:
        text = str(exc)
        assert "UNAVAILABLE" in text or "AUTHENTICATIONFAILED" in text, text
        return "throttled" if "UNAVAILABLE" in text else "failed"
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def test_loopback_failures_do_not_lock_webmail_out(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, webmail={"enabled": True})
    cfg = config.load(cfg_path)
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    for user in USERS:
        acc.add_user(user, PASSWORD)
    with Daemon(cfg_path, wait_for=("imaps",)) as d:
        addr = d.addr("imaps")
        # more failures than the per-address budget (10), each for a different user
        free = LoginThrottle().ip_free_failures
        assert len(USERS) > free
        for user in USERS:
            assert _login("127.0.0.1", addr, user, "wrong") == "failed"
        assert _login("127.0.0.1", addr, USERS[0], PASSWORD) == "ok"
        # another address is throttled as before
        outcomes = [_login("127.0.0.9", addr, USERS[1], "wrong") for _ in range(5)]
        assert outcomes[:3] == ["failed"] * 3
        assert "throttled" in outcomes[3:]


def test_switching_webmail_applies_at_reload(tmp_path: Path) -> None:
    """The dashboard's webmail switch writes the config and asks for a reload: loopback
    must become shared (and stop being shared) without a restart."""
    cfg_path = write_config(tmp_path, webmail={"enabled": False})
    cfg = config.load(cfg_path)
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    for user in USERS:
        acc.add_user(user, PASSWORD)
    free = LoginThrottle().ip_free_failures
    with Daemon(cfg_path, wait_for=("imaps",)) as d:
        addr = d.addr("imaps")
        ctl = CtlClient(cfg.ctl_socket, 30)
        # Off: 127.0.0.2 sprays the accounts and is throttled as any address.
        outcomes = [_login("127.0.0.2", addr, u, "wrong") for u in USERS]
        assert "throttled" in outcomes[free:], outcomes
        # On: loopback counts for the account alone.
        cfg_path.write_text(cfg_path.read_text().replace("enabled = false", "enabled = true"))
        assert ctl.call("reload") == {"reloaded": True}
        assert [_login("127.0.0.1", addr, u, "wrong") for u in USERS] == ["failed"] * len(USERS)
        assert ctl.call("status")["services"]["login-sources"]["shared"] == ["127.0.0.1", "::1"]
        # Off again: the next spray from loopback is throttled.
        cfg_path.write_text(cfg_path.read_text().replace("enabled = true", "enabled = false"))
        assert ctl.call("reload") == {"reloaded": True}
        outcomes = [_login("127.0.0.1", addr, u, "wrong") for u in USERS]
        assert "throttled" in outcomes[free:], outcomes
