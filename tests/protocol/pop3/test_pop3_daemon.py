"""The POP3 service inside the real daemon (`pillarbox run`), sharing the Maildir with
another process (this test) through the store's cross-process locking."""

from __future__ import annotations

import poplib
from pathlib import Path

from appliance import config
from appliance.accounts import Accounts
from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore
from tests.harness import Daemon, write_config
from tests.protocol.pop3.conftest import PASSWORD, USER, client_tls


def test_daemon_serves_pop3_and_pop3s(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("example.org")
    accounts.add_user(USER, PASSWORD)
    accounts.close()
    store = MaildirStore(cfg.mail_dir, lambda e: None, lambda p: b"")
    src = tmp_path / "m.eml"
    src.write_bytes(b"Subject: via daemon\r\n\r\nhello\r\n")
    store.deliver([DeliveryTarget(USER)], src)
    with Daemon(cfg_path, wait_for=("pop3", "pop3s")) as daemon:
        store.deliver([DeliveryTarget(USER)], src)  # while the daemon runs
        client = poplib.POP3(*daemon.addr("pop3"), timeout=10)
        client.stls(context=client_tls())
        client.user(USER)
        client.pass_(PASSWORD)
        assert client.stat() == (2, 2 * len(src.read_bytes()))
        assert client.retr(2)[1] == [b"Subject: via daemon", b"", b"hello"]
        client.dele(1)
        client.quit()
        tls = poplib.POP3_SSL(*daemon.addr("pop3s"), timeout=10, context=client_tls())
        tls.user(USER)
        tls.pass_(PASSWORD)
        assert tls.stat()[0] == 1
        tls.quit()
    assert [m.uid for m in store.snapshot(USER, INBOX).messages] == [2]
