"""The durable outbound spool: enqueue, load, save, remove, recovery, kill -9."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.queue.base import OutboundQueue
from appliance.queue.spool import CorruptEntry, EntryNotFound, Recipient, Spool

MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n"


def _message(tmp_path: Path, data: bytes = MESSAGE) -> Path:
    p = tmp_path / "in.eml"
    p.write_bytes(data)
    return p


def test_enqueue_roundtrip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q", clock=lambda: 1000.0)
    queue: OutboundQueue = spool  # satisfies the shared protocol
    qid = queue.enqueue("a@example.org", ["b@example.net", "c@example.com"], _message(tmp_path))
    assert spool.ids() == [qid]
    entry = spool.load(qid)
    assert entry.sender == "a@example.org"
    assert [r.address for r in entry.recipients] == ["b@example.net", "c@example.com"]
    assert all(r.status == "pending" and r.next_attempt == 1000.0 for r in entry.recipients)
    assert entry.created == 1000.0 and entry.size == len(MESSAGE)
    assert spool.message_path(qid).read_bytes() == MESSAGE
    assert (spool.message_path(qid).stat().st_mode & 0o777) == 0o600
    assert list(spool.tmp_dir.iterdir()) == []


def test_enqueue_copies_so_source_can_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    src = _message(tmp_path)
    qid = spool.enqueue("", ["x@example.net"], src)
    src.unlink()
    assert spool.message_path(qid).read_bytes() == MESSAGE


def test_enqueue_needs_recipients(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    with pytest.raises(ValueError):
        spool.enqueue("a@example.org", [], _message(tmp_path))
    assert len(spool) == 0


def test_missing_source_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    with pytest.raises(OSError):
        spool.enqueue("a@example.org", ["b@example.net"], tmp_path / "missing.eml")
    assert len(spool) == 0
    assert list(spool.tmp_dir.iterdir()) == []
    assert list(spool.msg_dir.iterdir()) == []


def test_save_updates_state_and_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    qid = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    entry = spool.load(qid)
    rcpt = dataclasses.replace(
        entry.recipients[0],
        attempts=2,
        last_error="451 4.7.1 try later",
        next_attempt=5000.0,
        tls="verified",
    )
    spool.save(dataclasses.replace(entry.with_recipients([rcpt]), delay_warned=True))
    again = Spool(tmp_path / "q").load(qid)
    assert again.recipients[0] == rcpt
    assert again.delay_warned
    assert again.next_attempt == 5000.0


def test_ids_sorted_oldest_first(tmp_path: Path) -> None:
    now = [100.0]
    spool = Spool(tmp_path / "q", clock=lambda: now[0])
    ids = []
    for i in range(5):
        now[0] = 100.0 + i
        ids.append(spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path)))
    assert spool.ids() == ids
    assert [e.id for e in spool.entries()] == ids


def test_remove(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    qid = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    spool.remove(qid)
    assert spool.ids() == []
    assert not spool.message_path(qid).exists()
    with pytest.raises(EntryNotFound):
        spool.remove(qid)
    with pytest.raises(EntryNotFound):
        spool.load(qid)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", "abc", "0123456789abcdef/x"])
def test_bad_ids_rejected(tmp_path: Path, bad: str) -> None:
    spool = Spool(tmp_path / "q")
    with pytest.raises(EntryNotFound):
        spool.load(bad)


def test_corrupt_metadata_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    good = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    bad = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    spool.meta_path(bad).write_text("{not json")
    with pytest.raises(CorruptEntry):
        spool.load(bad)
    assert [e.id for e in spool.entries()] == [good]


def test_listener_called(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    seen: list[str] = []
    spool.add_listener(seen.append)
    qid = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    spool.remove_listener(seen.append)
    spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    assert seen == [qid]


def test_recover_removes_only_old_orphans(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    qid = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    orphan = spool.msg_dir / "0000000000000AAAAAAAAAA.eml"
    orphan.write_bytes(MESSAGE)
    junk = spool.tmp_dir / "x.json.1234"
    junk.write_bytes(b"{}")
    fresh = spool.msg_dir / "0000000000000BBBBBBBBBB.eml"
    fresh.write_bytes(MESSAGE)
    old = time.time() - 7200
    for p in (orphan, junk):
        os.utime(p, (old, old))
    assert spool.recover(min_age=3600) == 2
    assert not orphan.exists() and not junk.exists()
    assert fresh.exists()
    assert spool.message_path(qid).exists()
    assert spool.ids() == [qid]


def test_recipient_json_roundtrip() -> None:
    r = Recipient("x@example.net", "failed", 3, 1.5, 2.5, "550 5.1.1 no", "mx.example", "none")
    assert Recipient.from_json(r.to_json()) == r


WRITER = """
import sys
from pathlib import Path
from appliance.queue.spool import Spool
spool = Spool(Path(sys.argv[1]))
src = Path(sys.argv[2])
n = 0
while True:
    qid = spool.enqueue("a@example.org", ["b@example.net"], src)
    n += 1
    if n == 20:
        print("ready", flush=True)
"""


def test_kill_9_leaves_only_complete_entries(tmp_path: Path) -> None:
    """A writer killed mid-stream never leaves a listed entry without its full message."""
    qdir = tmp_path / "q"
    body = MESSAGE + b"x" * 200_000 + b"\r\n"
    src = _message(tmp_path, body)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(qdir), str(src)],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    spool = Spool(qdir)
    ids = spool.ids()
    assert len(ids) >= 20
    for entry in spool.entries():
        assert entry.size == len(body)
        assert spool.message_path(entry.id).read_bytes() == body
    # Orphans (message committed, metadata not yet) are cleaned, entries are kept.
    spool.recover(min_age=0)
    assert spool.ids() == ids
    assert list(spool.tmp_dir.iterdir()) == []
    assert {p.name[:-4] for p in spool.msg_dir.iterdir()} == set(ids)


def test_failing_listener_does_not_fail_enqueue(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")

    def boom(queue_id: str) -> None:
        raise RuntimeError("event loop is closed")

    spool.add_listener(boom)
    qid = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    assert spool.ids() == [qid]


def test_ids_are_case_insensitive(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q")
    qid = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    assert spool.load(qid.lower()).id == qid
    spool.remove(qid.lower())
    assert spool.ids() == []
