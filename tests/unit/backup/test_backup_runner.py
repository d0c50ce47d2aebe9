from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.backup import password, runner
from appliance.backup.initialize import init_repository
from appliance.backup.restic import BackupError, Progress, Restic, repository_for


def test_init_creates_repository_and_private_password(cfg: config.Config) -> None:
    result = init_repository(cfg)
    assert result.created and result.password
    pw_file = cfg.backup.password_file
    assert pw_file is not None
    assert password.read(pw_file) == result.password
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert (Path(result.location) / "config").is_file()
    with pytest.raises(BackupError, match="already initialised"):
        init_repository(cfg)
    assert password.read(pw_file) == result.password


def test_init_existing_checks_the_password_before_keeping_it(cfg: config.Config) -> None:
    pw = init_repository(cfg).password
    assert pw is not None
    pw_file = cfg.backup.password_file
    assert pw_file is not None
    pw_file.unlink()  # a fresh box: only the recovery sheet is left
    with pytest.raises(BackupError, match="password does not open"):
        init_repository(cfg, existing_password="wrong-password")
    assert not pw_file.exists()
    result = init_repository(cfg, existing_password=f"  {pw}\n")
    assert not result.created and result.password is None
    assert password.read(pw_file) == pw
    assert password.sheet_state(pw_file).acknowledged


def test_init_failure_leaves_no_password(cfg: config.Config, tmp_path: Path) -> None:
    blocker = tmp_path / "usb"
    blocker.write_text("a file where the disk should be")
    with pytest.raises(BackupError):
        init_repository(cfg)
    assert cfg.backup.password_file is not None
    assert not cfg.backup.password_file.exists()


def test_run_saves_a_tagged_snapshot_and_applies_retention(cfg: config.Config) -> None:
    init_repository(cfg)
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    seen: list[Progress] = []
    r = runner.BackupRunner(cfg, acc, on_progress=seen.append)
    first = r.run("manual")
    assert first.ok, first.error
    assert first.forgot and first.summary["total_files"] >= 2
    assert seen and seen[0].total_files >= 1
    st = runner.read_status(cfg)
    assert st["state"] == "idle"
    assert st["last"]["snapshot_id"] == first.snapshot_id
    assert st["last_success"]["snapshot_id"] == first.snapshot_id
    second = r.run("scheduled")
    assert second.ok
    snaps = Restic(repository_for(cfg)).snapshots()
    # keep-daily: two runs on the same day leave the newer one
    assert [s.short_id for s in snaps] == [second.snapshot_id[:8]]
    assert "trigger-scheduled" in snaps[0].tags and "pillarbox" in snaps[0].tags
    assert snaps[0].hostname == cfg.hostname
    assert not (cfg.mail_dir / ".pillarbox-backup").exists()
    Restic(repository_for(cfg)).check()


def test_failed_run_is_reported_not_raised(cfg: config.Config) -> None:
    acc = Accounts(cfg.accounts_db)
    result = runner.BackupRunner(cfg, acc).run("manual")  # never initialised
    assert not result.ok
    assert "backup init" in result.error
    st = runner.read_status(cfg)
    assert st["last"]["ok"] is False and "last_success" not in st
    assert not (cfg.mail_dir / ".pillarbox-backup").exists()


def test_runs_do_not_overlap(cfg: config.Config) -> None:
    acc = Accounts(cfg.accounts_db)
    with runner.run_lock(cfg, "test"), pytest.raises(runner.BackupBusy):
        runner.BackupRunner(cfg, acc).run("manual")


def test_a_run_whose_process_died_shows_as_interrupted(cfg: config.Config) -> None:
    runner.write_status(cfg, {"state": "running", "phase": "upload", "pid": 2**22 + 12345})
    r = runner.BackupRunner(cfg, Accounts(cfg.accounts_db))
    assert r.status()["state"] == "interrupted"
    runner.write_status(cfg, {"state": "running", "phase": "upload", "pid": os.getpid()})
    assert r.status()["state"] == "running"


def test_a_run_without_a_target_fails_cleanly(tmp_path: Path) -> None:
    cfg = config.loads('dev = true\ndata_dir = "."\n', tmp_path)
    result = runner.BackupRunner(cfg, Accounts(cfg.accounts_db)).run("scheduled")
    assert not result.ok and "no backup target" in result.error
    assert runner.read_status(cfg)["last"]["error"] == result.error
