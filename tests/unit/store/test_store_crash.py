"""SIGKILL mid-delivery and mid-expunge: no acknowledged message lost, no half message."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore
from tests.unit.store.crash_worker import USER, body

WORKER = Path(__file__).with_name("crash_worker.py")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True)


def _check_integrity(store: MaildirStore) -> dict[int, int]:
    """Every stored message is complete; returns {n: uid}."""
    snap = store.snapshot(USER, INBOX)
    seen: dict[int, int] = {}
    for m in snap.messages:
        data = store.open_message(USER, INBOX, m.uid).read()
        match = re.search(rb"X-N: (\d+)", data)
        assert match, f"UID {m.uid} has no X-N header: {data[:60]!r}"
        n = int(match.group(1))
        assert data == body(n), f"UID {m.uid} is a partial or altered message"
        assert m.size == len(data)
        seen[n] = m.uid
    files = [p for sub in ("new", "cur") for p in (store.user_dir(USER) / sub).iterdir()]
    assert len(files) == len(snap.messages)
    uids = [m.uid for m in snap.messages]
    assert uids == sorted(set(uids))
    return seen


def test_kill_during_delivery(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    rng = random.Random(1234)
    acked: dict[int, int] = {}
    start = 0
    for _ in range(6):
        proc = _spawn("deliver", str(root), str(start), "10000")
        assert proc.stdout is not None
        wanted = rng.randint(1, 15)
        deadline = time.monotonic() + 30
        got = 0
        while got < wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            _, n_text, uid_text = line.split()
            acked[int(n_text)] = int(uid_text)
            got += 1
        time.sleep(rng.uniform(0, 0.02))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
        for line in rest.splitlines():
            _, n_text, uid_text = line.split()
            acked[int(n_text)] = int(uid_text)
        assert got == wanted, "worker did not deliver"
        start += 10000
    store = MaildirStore(root, lambda e: None, lambda p: b"")
    stored = _check_integrity(store)
    for n, uid in acked.items():
        assert stored.get(n) == uid, f"acknowledged message {n} (UID {uid}) lost"
    # The store keeps going after the crashes with a UID above everything seen.
    src = tmp_path / "after.eml"
    src.write_bytes(body(999_999))
    [a] = store.deliver([DeliveryTarget(USER)], src)
    assert a.uid > max(stored.values())


def test_kill_during_expunge(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    store = MaildirStore(root, lambda e: None, lambda p: b"")
    store.ensure_user(USER)
    src = tmp_path / "m.eml"
    rng = random.Random(99)
    for rnd in range(3):
        for n in range(rnd * 1000, rnd * 1000 + 60):
            src.write_bytes(body(n))
            store.deliver([DeliveryTarget(USER)], src)
        snap = store.snapshot(USER, INBOX)
        doomed = [m.uid for m in snap.messages if m.uid % 2 == 0]
        store.store_flags(USER, INBOX, doomed, "add", ["\\Deleted"])
        keep = {m.uid for m in snap.messages} - set(doomed)
        proc = _spawn("expunge", str(root))
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        fresh = MaildirStore(root, lambda e: None, lambda p: b"")
        stored = _check_integrity(fresh)
        assert keep <= set(stored.values()), "a message not flagged \\Deleted was lost"
        after = fresh.snapshot(USER, INBOX)
        left = {m.uid for m in after.messages if "\\Deleted" in m.flags}
        assert fresh.expunge(USER, INBOX) == sorted(left)
        assert {m.uid for m in fresh.snapshot(USER, INBOX).messages} == keep | {
            m.uid for m in after.messages if m.uid not in doomed
        }
        store = fresh


@pytest.mark.parametrize(
    "die",
    [
        "die:fsync:1",  # message file written, not yet durable
        "die:link:1",  # before the link into new/
        "die:fsync:2",  # linked, directory not yet fsynced
        "die:appliance.store.index.insert_message:1",  # directory fsynced, no index row
    ],
)
def test_delivery_killed_at_each_step(tmp_path: Path, die: str) -> None:
    root = tmp_path / "mail"
    store = MaildirStore(root, lambda e: None, lambda p: b"")
    store.ensure_user(USER)
    src = tmp_path / "m.eml"
    src.write_bytes(body(1))
    store.deliver([DeliveryTarget(USER)], src)
    proc = _spawn("deliver", str(root), "2", "1", die)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert out == ""  # never acknowledged
    fresh = MaildirStore(root, lambda e: None, lambda p: b"")
    stored = _check_integrity(fresh)
    assert stored[1] == 1
    # An unacknowledged delivery leaves nothing (its intent record makes the re-scan
    # remove a linked file), never a part; its reserved UID is wasted, not re-used.
    assert set(stored) == {1}
    src.write_bytes(body(3))
    [a] = fresh.deliver([DeliveryTarget(USER)], src)
    assert a.uid > max(stored.values())


@pytest.mark.parametrize("k", [1, 8, 15])
def test_expunge_killed_between_unlinks(tmp_path: Path, k: int) -> None:
    root = tmp_path / "mail"
    store = MaildirStore(root, lambda e: None, lambda p: b"")
    store.ensure_user(USER)
    src = tmp_path / "m.eml"
    for n in range(30):
        src.write_bytes(body(n))
        store.deliver([DeliveryTarget(USER)], src)
    store.store_flags(USER, INBOX, list(range(2, 31, 2)), "add", ["\\Deleted"])
    highest = store.status(USER, INBOX).highest_modseq
    proc = _spawn("expunge", str(root), f"die:unlink:{k}")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and out == ""
    fresh = MaildirStore(root, lambda e: None, lambda p: b"")
    stored = _check_integrity(fresh)
    assert set(range(1, 31, 2)) <= set(stored.values())
    gone = set(range(1, 31)) - set(stored.values())
    assert len(gone) == k - 1  # unlinks done before the kill are seen as expunged
    assert set(fresh.changes(USER, INBOX, highest).expunged) == gone
    fresh.expunge(USER, INBOX)
    assert {m.uid for m in fresh.snapshot(USER, INBOX).messages} == set(range(1, 31, 2))


def test_two_processes_deliver_concurrently(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    MaildirStore(root, lambda e: None, lambda p: b"").ensure_user(USER)
    procs = [_spawn("deliver", str(root), str(i * 1000), "25") for i in range(3)]
    acked: dict[int, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        for line in out.splitlines():
            _, n_text, uid_text = line.split()
            acked[int(n_text)] = int(uid_text)
    assert len(acked) == 75
    assert sorted(acked.values()) == list(range(1, 76))
    stored = _check_integrity(MaildirStore(root, lambda e: None, lambda p: b""))
    assert stored == acked
