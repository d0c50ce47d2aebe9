"""The IMAP service inside the real daemon (`pillarbox run`), as the harness starts it."""

from __future__ import annotations

import imaplib
from pathlib import Path

from appliance.tls import client_context
from tests.harness import Daemon, write_config


def test_daemon_serves_imap_and_imaps(tmp_path: Path) -> None:
    with Daemon(write_config(tmp_path), wait_for=("imap", "imaps")) as daemon:
        plain = imaplib.IMAP4(*daemon.addr("imap"), timeout=10)
        assert "LOGINDISABLED" in plain.capabilities
        plain.starttls(client_context(verify=False))
        assert "AUTH=PLAIN" in plain.capability()[1][0].decode().split()
        plain.logout()
        secure = imaplib.IMAP4_SSL(
            *daemon.addr("imaps"), ssl_context=client_context(verify=False), timeout=10
        )
        assert "AUTH=PLAIN" in secure.capabilities
        secure.logout()
    assert "imap=stopped" in daemon.log()
