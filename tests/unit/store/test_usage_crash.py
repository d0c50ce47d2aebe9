"""SIGKILL inside delivery and expunge: the usage totals still equal what is on disk
(they change only inside the transactions that add or remove rows; files left by the
crash are adopted or dropped by the next scan, which keeps them in step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.store.maildir import MaildirStore
from tests.unit.store.crash_worker import USER
from tests.unit.store.test_usage_totals import assert_exact

WORKER = Path(__file__).with_name("crash_worker.py")


def run(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(WORKER), *args], capture_output=True, text=True, timeout=60
    )
    killed = args[-1].startswith("die:")
    assert proc.returncode == (-9 if killed else 0), proc.stderr


@pytest.mark.parametrize(
    "die",
    [
        "die:link:3",  # after two deliveries, between the tmp file and its link
        "die:fsync:7",  # mid-delivery, before the index commit
        "appliance.store.index.transaction:3",  # before the third commit
    ],
)
def test_kill_during_delivery_keeps_usage_exact(tmp_path: Path, die: str) -> None:
    root = tmp_path / "mail"
    if not die.startswith("die:"):
        die = f"die:{die}"
    run("deliver", str(root), "0", "5", die)
    store = MaildirStore(root, lambda e: None, lambda p: b"")
    assert_exact(store)
    run("deliver", str(root), "100", "2")
    assert_exact(store)


def test_kill_during_expunge_keeps_usage_exact(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    run("deliver", str(root), "0", "6")
    store = MaildirStore(root, lambda e: None, lambda p: b"")
    uids = [m.uid for m in store.snapshot(USER, "INBOX").messages]
    store.store_flags(USER, "INBOX", uids, "add", ["\\Deleted"])
    run("expunge", str(root), "die:unlink:3")  # two files gone, index not committed
    fresh = MaildirStore(root, lambda e: None, lambda p: b"")
    assert_exact(fresh)
    assert fresh.usage(USER).messages in range(1, 6)
