"""Imports as daemon jobs (ctl migrate_*): IMAP IDLE clients see the mail arrive, and a
job cut by a daemon kill -9 is shown interrupted and resumes without duplicates."""

from __future__ import annotations

import imaplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.ctl.client import CtlClient
from appliance.tls import client_context
from tests.e2e.migrate.migrate_env import (
    PASSWORD,
    USER,
    Box,
    fill_dovecot,
    new_box,
    stored_messages,
)
from tests.e2e.migrate.test_import_imap import check_arrived, import_args
from tests.harness import Daemon, pillarbox
from tests.protocol.imap.dovecot_ref import DovecotRef, private_dovecot


@pytest.fixture
def dovecot() -> Iterator[DovecotRef]:
    with private_dovecot() as dv:
        yield dv


def params(dv: DovecotRef) -> dict[str, Any]:
    return {
        "kind": "imap",
        "user": USER,
        "host": "127.0.0.1",
        "port": dv.port,
        "login": dv.user,
        "verify": False,
        "pause": 0.2,
    }


def wait_job(ctl: CtlClient, jid: str, until: Any, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = ctl.call("migrate_status", job_id=jid)["jobs"]
        if jobs and until(jobs[0]):
            return dict(jobs[0])
        time.sleep(0.2)
    raise AssertionError(f"job {jid} did not get there: {jobs}")


def test_idle_clients_see_imported_mail(dovecot: DovecotRef, tmp_path: Path) -> None:
    box = new_box(tmp_path)
    expected = fill_dovecot(dovecot.instance.maildir(dovecot.user), {"INBOX": 30, "Work": 5})
    with Daemon(box.path, wait_for=("imaps",)) as daemon:
        host, port = daemon.addr("imaps")
        client = imaplib.IMAP4_SSL(host, port, ssl_context=client_context(verify=False), timeout=30)
        client.login(USER, PASSWORD)
        client.select("INBOX")
        client.send(b"i1 IDLE\r\n")
        assert client.readline().startswith(b"+")
        # the daemon runs: the CLI hands the job to it and follows its progress
        r = pillarbox(*import_args(box, dovecot), input=dovecot.password + "\n", check=False)
        assert r.returncode == 0, r.stderr
        assert "started in the daemon" in r.stdout
        seen = [client.readline() for _ in range(3)]  # FLAGS (new keywords), EXISTS, RECENT
        assert any(x.startswith(b"* ") and x.rstrip().endswith(b" EXISTS") for x in seen), seen
        client.send(b"DONE\r\n")
        while not client.readline().startswith(b"i1 OK"):
            pass
        client.logout()
    check_arrived(box, expected)


@pytest.mark.timeout(600)
def test_daemon_killed_mid_import_resumes_without_duplicates(
    dovecot: DovecotRef, tmp_path: Path
) -> None:
    box = new_box(tmp_path)
    expected = fill_dovecot(dovecot.instance.maildir(dovecot.user), {"INBOX": 900, "Sent": 100})
    daemon = Daemon(box.path)
    daemon.start()
    try:
        ctl = CtlClient(box.cfg.ctl_socket)
        jid = ctl.call("migrate_start", **params(dovecot), password=dovecot.password)["job_id"]
        job = wait_job(ctl, jid, lambda j: j["copied"] >= 200)
        assert job["status"] == "running" and job["total"] == 1000
        daemon.kill()
        daemon.start()
        ctl = CtlClient(box.cfg.ctl_socket)
        job = wait_job(ctl, jid, lambda j: True)
        assert job["status"] == "interrupted"
        assert "start it again to resume" in job["message"]
        # resuming needs the password again: it is never stored
        with pytest.raises(Exception, match="password of the old mailbox is needed"):
            ctl.call("migrate_start", **params(dovecot))
        ctl.call("migrate_start", **params(dovecot), password=dovecot.password)
        job = wait_job(ctl, jid, lambda j: j["status"] != "running")
        assert job["status"] == "done", job
        assert job["copied"] == 1000 and job["failed"] == 0
    finally:
        daemon.stop()
    check_arrived(box, expected)
    assert sum(len(v) for v in stored_messages(box).values()) == 1000


def test_start_refuses_unknown_user_and_a_second_job(dovecot: DovecotRef, tmp_path: Path) -> None:
    box: Box = new_box(tmp_path)
    fill_dovecot(dovecot.instance.maildir(dovecot.user), {"INBOX": 400})
    with Daemon(box.path):
        ctl = CtlClient(box.cfg.ctl_socket)
        with pytest.raises(Exception, match=r"no local user 'ghost@example\.org'"):
            ctl.call(
                "migrate_start", **{**params(dovecot), "user": "ghost@example.org"}, password="x"
            )
        jid = ctl.call("migrate_start", **params(dovecot), password=dovecot.password)["job_id"]
        with pytest.raises(Exception, match="an import is running already"):
            ctl.call("migrate_start", **params(dovecot), password=dovecot.password)
        ctl.call("migrate_cancel", job_id=jid)
        job = wait_job(ctl, jid, lambda j: j["status"] != "running")
        assert job["status"] == "cancelled"
