"""Each alert condition injected into a box with its real daemon, and the alert mail read
by the admin over IMAP: exactly once for two runs of the checks, then once "Resolved".

Injected: SMART data through the reader the root helper's ``smart`` action feeds, disk
usage through the statvfs measurement (and, as root, a real tmpfs filled up), a backup
target that fails under the daemon's real backup run, an expired certificate file,
queue entries backdated in the daemon's real spool, a DNS answer changed in the fake
resolver, and memory readings.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.backup.initialize import init_repository
from appliance.ctl.client import CtlClient
from appliance.ctl.protocol import CtlError
from appliance.queue.spool import Spool
from tests.web.alert_box import HOST, Box, alert_box, expired_cert
from webui.alertchecks import Memory
from webui.sizing import GiB


def test_smart_failure_is_mailed_once_then_its_recovery_once(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        assert box.check(step=1801) == []  # healthy: nothing to say
        box.smart["passed"] = False
        box.check(step=1801)
        assert box.mailed("Disk failing: Mail HDD (/dev/sdb)") == 1
        box.smart["passed"] = True
        box.check(step=1801)
        subjects = box.subjects()
        assert sum("Resolved: Disk failing" in s for s in subjects) == 1
        assert len(subjects) == 2, subjects


def test_growing_bad_sectors_are_mailed_once_per_growth(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        box.smart["reallocated_sectors"] = 2  # the count first seen is the baseline
        assert box.check(step=1801) == []
        box.smart["reallocated_sectors"] = 8
        box.check(step=1801)
        assert box.mailed("Disk sectors going bad") == 1
        box.smart["pending_sectors"] = 3
        box.check(step=1801)
        assert box.mailed("Disk sectors going bad") == 2  # grew again: news
        box.smart["pending_sectors"] = 0  # remapped: fewer is no news
        box.check(step=1801)
        assert box.mailed("Disk sectors going bad") == 2
        (body,) = [b for b in box.bodies("Disk sectors going bad") if "11 now" in b]
        assert "2 then, 11 at most since, 11 now" in body
        box.check(step=7 * 86400)  # a week without growth
        assert box.mailed("Resolved: Disk sectors going bad") == 1


def test_mail_disk_past_85_and_95_percent(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        box.mail_used[0] = 0.87
        box.check()
        assert box.mailed("Mail disk 87% full") == 1
        box.mail_used[0] = 0.88  # still the 85 % level: no new mail
        box.check()
        box.mail_used[0] = 0.96
        box.check()
        assert box.mailed("Mail disk 96% full") == 1
        box.mail_used[0] = 0.50
        box.check()
        subjects = box.subjects()
        assert subjects.count(f"[{HOST}] Mail disk 87% full") == 1
        assert sum("Resolved: Mail disk" in s for s in subjects) == 1
        assert len(subjects) == 3, subjects


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_real_small_mail_filesystem_filled_up(tmp_path: Path) -> None:
    mount = tmp_path / "box" / "mailfs"
    mount.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    try:
        with alert_box(
            tmp_path / "box", real_disk=True, mail_dir=str(mount), limits={"disk_reserve": 1 << 20}
        ) as box:
            assert box.check() == []
            free = shutil.disk_usage(mount).free
            with (mount / "filler").open("wb") as fh:  # to about 90 % used
                fh.write(b"\0" * (free - int(0.10 * 64 * 2**20)))
            box.check()
            subjects = box.subjects()
            assert len(subjects) == 1 and "] Mail disk 9" in subjects[0], subjects
            (mount / "filler").unlink()
            box.check()
            assert sum("Resolved: Mail disk" in s for s in box.subjects()) == 1
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def wait_backup(ctl: CtlClient, before: object = None, timeout: float = 60.0) -> dict[str, Any]:
    """The status once a run other than ``before`` (an earlier status's "last") is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st: dict[str, Any] = ctl.call("backup_status")
        if st["state"] != "running" and st.get("last") and st["last"] != before:
            return st
        time.sleep(0.1)
    raise TimeoutError("the backup did not finish")


def test_a_failing_backup_target(tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    backup = {"target": "local", "path": str(usb / "repo"), "schedule": "off"}
    with alert_box(tmp_path / "box", backup=backup) as box:
        init_repository(box.cfg)
        ctl = CtlClient(box.cfg.ctl_socket)
        assert ctl.call("backup_run") == {"started": True}
        first = wait_backup(ctl)["last"]
        assert first["ok"]
        assert box.check() == []
        shutil.rmtree(usb)  # the USB disk is gone
        assert ctl.call("backup_run") == {"started": True}
        assert wait_backup(ctl, first)["last"]["ok"] is False
        box.check()
        assert box.mailed("Backup failed") == 1
        (body,) = box.bodies("Backup failed")
        assert "The last backup failed: " in body


def test_an_expired_certificate_whose_renewal_failed(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        assert box.check() == []
        cfg = box.cfg
        saved = cfg.tls.cert.read_bytes()  # the daemon's own, to read mail with
        try:
            expired_cert(cfg.tls.cert)
            acme = cfg.data_dir / "acme"
            acme.mkdir()
            (acme / "issued").write_text(HOST + "\n")
            (acme / "renew-error").write_text("the CA refused the order: rateLimited\n")
            box.check()
        finally:
            cfg.tls.cert.write_bytes(saved)
        assert box.mailed("Certificate expired") == 1
        (body,) = box.bodies("Certificate expired")
        assert "Automatic renewal failed: the CA refused the order: rateLimited." in body


def backdated(box: Box, age: float, recipients: list[str], last_error: str = "") -> str:
    """A queue entry made ``age`` seconds ago, already tried once (``last_error``) and
    not due again for a day, moved into the running daemon's spool whole."""
    now = time.time()
    staging = Spool(box.cfg.data_dir / "staging", clock=lambda: now - age)
    message = box.cfg.data_dir / "out.eml"
    message.write_bytes(b"From: admin@pillarbox.test\r\nSubject: hello\r\n\r\nhi\r\n")
    qid = staging.enqueue("admin@pillarbox.test", recipients, message, origin="submission")
    entry = staging.load(qid)
    tried = [
        dataclasses.replace(
            r,
            attempts=1 if last_error else 0,
            last_attempt=now - 600 if last_error else 0.0,
            last_error=last_error,
            next_attempt=now + 86400,
        )
        for r in entry.recipients
    ]
    staging.save(entry.with_recipients(tried))
    live = Spool(box.cfg.queue_dir)
    os.rename(staging.message_path(qid), live.message_path(qid))  # message, then metadata
    os.rename(staging.meta_path(qid), live.meta_path(qid))
    return qid


def test_a_queue_entry_waiting_over_an_hour(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        assert box.check() == []
        qid = backdated(box, 2 * 3600, ["bob@remote.example"], "451 4.7.1 try again later")
        box.check()
        assert box.mailed("Outgoing mail is waiting") == 1
        (body,) = box.bodies("Outgoing mail is waiting")
        assert "1 outgoing message has waited over an hour" in body
        assert "Last error: 451 4.7.1 try again later" in body
        CtlClient(box.cfg.ctl_socket).call("queue.delete", id=qid)
        box.check()
        assert box.mailed("Resolved: Outgoing mail is waiting") == 1
        assert box.mailed("port 25") == 0  # an SMTP answer is no blocked port


def test_port_25_blocked(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        timeout = "Timed out connecting to 192.0.2.{} on port 25"
        backdated(box, 900, ["a@one.example", "b@one.example"], timeout.format(1))
        backdated(box, 900, ["c@two.example"], timeout.format(2))
        box.check()
        assert box.mailed("Outgoing port 25 looks blocked") == 1
        assert box.mailed("Outgoing mail is waiting") == 0  # 15 minutes is not an hour
        (body,) = box.bodies("port 25 looks blocked")
        assert "outgoing relay (smarthost)" in body


def test_a_dns_answer_changed(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        assert box.check() == []  # MX, A, SPF, DMARC seen published
        box.resolver.records[("pillarbox.test", "MX")] = ["10 mx.elsewhere.example"]
        box.check()
        assert box.mailed("DNS records of pillarbox.test changed") == 1
        (body,) = box.bodies("DNS records of pillarbox.test changed")
        assert "Incoming mail (MX): MX pillarbox.test: Mail goes elsewhere" in body
        assert "found: 10 mx.elsewhere.example" in body
        box.resolver.dead = True  # no answer is not an answer: nothing changes
        box.check()
        assert len(box.subjects()) == 1
        box.resolver.dead = False
        box.resolver.records[("pillarbox.test", "MX")] = [f"10 {HOST}"]
        box.check()
        assert box.mailed("Resolved: DNS records of pillarbox.test changed") == 1


def test_memory_and_swap_pressure(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        box.memory[0] = Memory(4 * GiB, GiB // 4, 2 * GiB, int(1.2 * GiB))
        box.check()
        assert box.mailed("Memory is running out") == 1
        assert box.mailed("Swap is filling up") == 1
        box.memory[0] = Memory(4 * GiB, int(0.5 * GiB), 2 * GiB, int(0.9 * GiB))
        box.check()  # 12.5 % free, 45 % swap: between the marks, still on
        assert len(box.subjects()) == 2
        box.memory[0] = Memory(4 * GiB, 2 * GiB, 2 * GiB, 0)
        box.check()
        assert box.mailed("Resolved: ") == 2


def test_daily_digest_of_what_is_still_wrong(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        box.mail_used[0] = 0.90
        box.check()
        box.check(times=2, step=12 * 3600)  # a day after the first alert
        box.check(times=2, step=600)
        subjects = box.subjects()
        assert sum("Daily summary: 1 problem still open" in s for s in subjects) == 1
        assert len(subjects) == 2, subjects
        (body,) = box.bodies("Daily summary")
        assert "* Mail disk 90% full (since " in body


def test_an_alert_address_elsewhere_goes_through_the_queue(tmp_path: Path) -> None:
    with alert_box(tmp_path, alerts={"email": "ops@remote.example"}) as box:
        box.mail_used[0] = 0.90
        box.check()
        log = box.daemon.log()
        assert "alert=sent to=ops@remote.example stored=0 queue_id=" in log
        assert box.subjects() == []  # nothing for the admin's own INBOX


def test_alert_send_refuses_what_it_cannot_deliver(tmp_path: Path) -> None:
    with alert_box(tmp_path) as box:
        ctl = CtlClient(box.cfg.ctl_socket)
        refused = [
            ({"to": "Boss <boss@remote.example>", "subject": "s", "text": "t"}, "one plain"),
            ({"to": "nobody@pillarbox.test", "subject": "s", "text": "t"}, "was not sent to"),
            ({"to": "admin@pillarbox.test", "subject": "", "text": "t"}, "args.subject"),
            ({"to": "admin@pillarbox.test", "subject": "s" * 201, "text": "t"}, "longer than 200"),
            ({"to": "admin@pillarbox.test", "subject": "s", "text": "t" * 65537}, "args.text"),
        ]
        for args, why in refused:
            with pytest.raises(CtlError, match=why):
                ctl.call("alert_send", **args)
        # A line break in the subject cannot add a header.
        ctl.call("alert_send", to="admin@pillarbox.test", subject="a\r\nBcc: x@y.example", text="t")
        (msg,) = box.messages()
        assert msg["Subject"] == "a Bcc: x@y.example" and msg["Bcc"] is None
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["From"] == "Pillarbox <postmaster@pillarbox.test>"  # the box's notifier
