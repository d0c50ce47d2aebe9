"""The free-space reserve and the spare file (appliance/store/reserve.py), issue 17.4.

Real files and a real SQLite index; only statvfs is faked where a number must be chosen.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from appliance.store import reserve
from appliance.store.base import INBOX, DeliveryTarget, StorageFull
from appliance.store.index import Index
from appliance.store.maildir import MaildirStore

MiB = 1 << 20


class FakeVfs:
    def __init__(self, free: int, total: int = 1000 * MiB) -> None:
        self.free = free
        self.total = total
        self.calls = 0

    def __call__(self, path: Path) -> os.statvfs_result:
        self.calls += 1
        blocks = self.total // 4096
        avail = self.free // 4096
        return os.statvfs_result((4096, 4096, blocks, avail, avail, 0, 0, 0, 0, 255))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reserve_bytes_auto_is_max_of_100_mib_and_one_percent() -> None:
    assert reserve.reserve_bytes(-1, 1000 * MiB) == 100 * MiB
    assert reserve.reserve_bytes(-1, 50_000 * MiB) == 500 * MiB
    assert reserve.reserve_bytes(5 * MiB, 50_000 * MiB) == 5 * MiB
    assert reserve.reserve_bytes(0, 50_000 * MiB) == 0


def test_check_refuses_below_reserve_and_caches_statvfs(tmp_path: Path) -> None:
    vfs, clock = FakeVfs(free=150 * MiB), Clock()
    g = reserve.DiskGuard(tmp_path, clock=clock, statvfs=vfs)
    g.check(-1, 40 * MiB)  # 110 MiB left >= 100 MiB (and the spare file is made)
    with pytest.raises(reserve.InsufficientStorage):
        g.check(-1, 60 * MiB)
    calls = vfs.calls
    vfs.free = 10 * MiB
    g.check(-1, 40 * MiB)  # still the cached 150 MiB
    assert vfs.calls == calls
    clock.now += reserve.CACHE_SECONDS
    with pytest.raises(reserve.InsufficientStorage):
        g.check(-1, 0)
    g.check(0, 10**12)  # 0 turns the reserve off
    assert isinstance(reserve.InsufficientStorage("x"), StorageFull)


def test_spare_file_created_with_real_blocks_and_released(tmp_path: Path) -> None:
    g = reserve.DiskGuard(tmp_path, statvfs=FakeVfs(free=500 * MiB))
    g.check(8 * MiB)
    spare = tmp_path / reserve.SPARE_NAME
    assert spare.stat().st_size == 2 * MiB  # a quarter of the reserve
    assert spare.stat().st_blocks * 512 >= 2 * MiB  # allocated, not sparse
    assert g.release_spare()
    assert not spare.exists()
    assert not g.release_spare()
    g.check(8 * MiB)
    assert spare.exists()


def test_a_mail_dir_not_made_yet_is_measured_on_its_parent(tmp_path: Path) -> None:
    g = reserve.DiskGuard(tmp_path / "mail" / "not-yet")
    g.check(1)  # the filesystem of tmp_path; no spare file without the directory
    assert g.space()[1] > 0
    assert not (tmp_path / "mail").exists()


def test_no_spare_without_room_above_the_reserve(tmp_path: Path) -> None:
    g = reserve.DiskGuard(tmp_path, statvfs=FakeVfs(free=9 * MiB))
    g.check(8 * MiB)  # 1 MiB above the reserve: not enough for a 2 MiB spare
    assert not (tmp_path / reserve.SPARE_NAME).exists()


@pytest.mark.parametrize(
    ("exc", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EIO, "I/O error"), False),
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.OperationalError("database is locked"), False),
        (StorageFull("full"), True),
        (ValueError("x"), False),
    ],
)
def test_is_disk_full(exc: BaseException, full: bool) -> None:
    assert reserve.is_disk_full(exc) is full


class _Op:
    def __init__(self, root: Path, failures: int) -> None:
        self.root = root
        self.failures = failures
        self.calls = 0

    @reserve.frees_space
    def delete(self, n: int) -> int:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return n


def test_frees_space_retries_once_after_releasing_the_spare(tmp_path: Path) -> None:
    spare = tmp_path / reserve.SPARE_NAME
    spare.write_bytes(b"\0" * 4096)
    assert _Op(tmp_path, failures=1).delete(7) == 7
    assert not spare.exists()
    op = _Op(tmp_path, failures=1)  # no spare left: the error stands
    with pytest.raises(sqlite3.OperationalError):
        op.delete(7)
    assert op.calls == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")
def test_an_index_on_a_full_disk_opens_and_is_not_rebuilt(tmp_path: Path) -> None:
    """Opening an index must not write (PRAGMA user_version): on a full disk the write
    failed, the failure was taken for corruption and the index moved aside."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        path = mnt / "idx.sqlite"
        first = Index(path)
        first.conn().execute(
            "INSERT INTO mailboxes (name, uidvalidity, uidnext,"
            " highest_modseq) VALUES ('INBOX', 1, 1, 1)"
        )
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            for step in (1 << 16, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"x" * step)
        os.close(fd)
        assert os.statvfs(mnt).f_bavail == 0
        conn = Index(path).conn()  # another thread's connection, on the full disk
        assert conn.execute("SELECT name FROM mailboxes").fetchall() == [("INBOX",)]
        assert not list(mnt.glob("*.corrupt-*"))
        conn.close()
        first.close()
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_store_reads_skip_optional_writes_when_the_index_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SELECT (claiming \\Recent, re-scan) and a summary miss work when every index
    write fails with SQLITE_FULL; the messages are still found in new/."""
    store = MaildirStore(tmp_path / "mail", lambda e: None, lambda p: b"summary")
    src = tmp_path / "m.eml"
    src.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    for _ in range(3):
        store.deliver([DeliveryTarget("a@example.org")], src)
    from appliance.store import index

    real = index.transaction

    def full(conn: sqlite3.Connection) -> object:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(index, "transaction", full)
    folder = store.user_dir("a@example.org")
    (folder / "new" / "1700000000.M1P1.other").write_bytes(b"Subject: dropped\r\n\r\n")
    snap = store.snapshot("a@example.org", INBOX, claim_recent=True)
    assert len(snap.messages) == 3  # the dropped-in file waits for a re-scan with room
    assert store.claim_recent("a@example.org", INBOX, [1, 2, 3]) == frozenset()
    for m in snap.messages:
        with store.open_message("a@example.org", INBOX, m.uid) as fh:
            assert fh.read().endswith(b"body\r\n")
    assert len(list((folder / "new").iterdir())) == 4  # nothing moved to cur/
    monkeypatch.setattr(index, "transaction", real)
    snap = store.snapshot("a@example.org", INBOX, claim_recent=True)
    assert len(snap.messages) == 4 and len(snap.recent) == 4


def test_select_when_a_rename_to_cur_hits_enospc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a full ext4 a rename into cur/ can need a directory block: SELECT still
    works and every file stays where the index has it."""
    store = MaildirStore(tmp_path / "mail", lambda e: None, lambda p: b"summary")
    src = tmp_path / "m.eml"
    src.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    for _ in range(3):
        store.deliver([DeliveryTarget("a@example.org")], src)
    real_rename = os.rename
    calls = 0

    def rename(a: object, b: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_rename(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    snap = store.snapshot("a@example.org", INBOX, claim_recent=True)
    monkeypatch.setattr(os, "rename", real_rename)
    assert len(snap.messages) == 3
    folder = store.user_dir("a@example.org")
    assert len(list((folder / "new").iterdir())) == 3
    for m in snap.messages:
        with store.open_message("a@example.org", INBOX, m.uid) as fh:
            assert fh.read().endswith(b"body\r\n")
