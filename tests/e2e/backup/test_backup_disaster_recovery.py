"""Issue 9's Done-when: back up a populated box, destroy it, restore a fresh one."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.backup import restore, runner
from appliance.backup.initialize import init_repository
from appliance.backup.restic import BackupError, Restic, repository_for
from appliance.backup.store_lock import open_store, user_lock
from tests.e2e.backup.backup_box import PASSWORD, USERS, Box, fingerprint, populate


def test_whole_box_comes_back_identical(new_box: Callable[[str], Box], tmp_path: Path) -> None:
    old = new_box("old")
    populate(old, tmp_path)
    before = fingerprint(old)
    assert old.cfg.source is not None
    config_text = old.cfg.source.read_bytes()
    sheet_password = init_repository(old.cfg).password
    assert sheet_password is not None

    result = runner.BackupRunner(old.cfg, old.accounts, user_lock=user_lock(old.store)).run()
    assert result.ok, result.error
    old.accounts.close()
    shutil.rmtree(old.cfg.data_dir)  # the box is gone: only the USB disk and the paper sheet

    new = new_box("new")
    with pytest.raises(BackupError, match="backup init"):
        restore.restore_box(new.cfg)  # no password on the new box yet
    init_repository(new.cfg, existing_password=sheet_password)
    box = restore.restore_box(new.cfg)
    assert box.config_restored
    assert sorted(box.users) == sorted(USERS)
    assert new.cfg.source is not None
    assert new.cfg.source.read_bytes() == config_text

    cfg = config.load(new.cfg.source)  # the restored config, as the daemon would load it
    new.accounts.close()
    restored = Box(cfg, open_store(cfg.mail_dir), Accounts(cfg.accounts_db))
    after = fingerprint(restored)
    assert after["users"] == before["users"]
    assert after["aliases"] == before["aliases"]
    assert after["domains"] == before["domains"]
    assert after["dkim"] == before["dkim"] and len(before["dkim"]) >= 4
    assert after["tls"] == before["tls"]
    assert after["queue"] == before["queue"] and len(before["queue"]) == 1
    assert after["sieve"] == before["sieve"] and before["sieve"]
    assert after["smarthost"] == before["smarthost"] == ["s3cr3t\n"]
    assert after["mail"].keys() == before["mail"].keys()
    for name, folder in before["mail"].items():
        # UIDVALIDITY, UIDNEXT, every UID, flag, keyword, date, key and byte
        assert after["mail"][name] == folder, name
    inbox = before["mail"]["alice@example.org/INBOX"]["messages"]
    assert [m[0] for m in inbox] == [1, 2, 4, 5, 6]  # the expunged UID 3 stays a gap
    assert restored.accounts.authenticate("bob@example.org", PASSWORD) is not None
    assert oct(cfg.tls.key.stat().st_mode & 0o777) == "0o600"


def test_restore_refuses_a_box_with_data_unless_forced(
    new_box: Callable[[str], Box], tmp_path: Path
) -> None:
    b = new_box("box")
    populate(b, tmp_path)
    init_repository(b.cfg)
    assert runner.BackupRunner(b.cfg, b.accounts, user_lock=user_lock(b.store)).run().ok
    with pytest.raises(BackupError, match="already has users"):
        restore.restore_box(b.cfg)
    b.accounts.add_user("late@example.org", PASSWORD)
    result = restore.restore_box(b.cfg, force=True, keep_config=True)
    assert not result.config_restored
    assert any(".pre-restore-" in p for p in result.moved_aside)
    emails = [u.email for u in Accounts(b.cfg.accounts_db).list_users()]
    assert "late@example.org" not in emails and sorted(emails) == sorted(USERS)
    aside = [Path(p) for p in result.moved_aside if "accounts.sqlite.pre-restore" in p]
    assert aside and aside[0].exists()  # moved aside, not deleted


@pytest.mark.slow
def test_interrupted_backup_keeps_previous_snapshot_usable(
    new_box: Callable[[str], Box], tmp_path: Path
) -> None:
    b = new_box("box")
    populate(b, tmp_path)
    before = fingerprint(b)
    init_repository(b.cfg)
    run = runner.BackupRunner(b.cfg, b.accounts, user_lock=user_lock(b.store))
    first = run.run()
    assert first.ok
    repo_dir = Path(repository_for(b.cfg).location)

    # 48 MiB of new, incompressible mail: restic needs several packs for it.
    big = tmp_path / "big.eml"
    big.write_bytes(b"Subject: big\r\n\r\n" + os.urandom(48 * 1024 * 1024))
    b.store.append("alice@example.org", "INBOX", big)
    packs_before = sum(1 for p in (repo_dir / "data").rglob("*") if p.is_file())

    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pid = run.restic_pid
            packs = sum(1 for p in (repo_dir / "data").rglob("*") if p.is_file())
            if pid is not None and packs > packs_before:
                os.kill(pid, signal.SIGKILL)  # mid-upload: some packs written, no snapshot
                killed.append(pid)
                return
            time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    second = run.run()
    t.join()
    assert killed, "restic finished before it could be killed"
    assert not second.ok and "restic backup failed" in second.error
    assert runner.read_status(b.cfg)["last_success"]["snapshot_id"] == first.snapshot_id

    restic = Restic(repository_for(b.cfg))
    assert [s.short_id for s in restic.snapshots()] == [first.snapshot_id[:8]]
    restic.unlock()  # the killed process's lock is stale
    restic.check()  # exit 0: the repository is consistent

    fresh = new_box("fresh")
    shutil.copy2(repository_for(b.cfg).password_file, tmp_path / "pw")
    init_repository(fresh.cfg, existing_password=(tmp_path / "pw").read_text())
    restore.restore_box(fresh.cfg, snapshot=first.snapshot_id[:8], keep_config=True)
    cfg = fresh.cfg
    after = fingerprint(Box(cfg, open_store(cfg.mail_dir), Accounts(cfg.accounts_db)))
    assert after["mail"] == before["mail"]
    assert after["users"] == before["users"]

    third = run.run()  # and the repository takes new backups again
    assert third.ok and third.forgot, third.error
