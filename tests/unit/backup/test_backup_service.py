"""The daemon's backup service on its own event loop: scheduler, reload, ctl handlers."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.backup import schedule
from appliance.backup.initialize import init_repository
from appliance.backup.service import BackupDeps
from appliance.backup.service import BackupService as _BackupService
from appliance.backup.store_lock import open_store
from appliance.runtime import CommandError


def make_ctx(cfg: config.Config) -> Any:
    return SimpleNamespace(
        config=cfg,
        accounts=Accounts(cfg.accounts_db),
        store=open_store(cfg.mail_dir),
        ctl_handlers={},
    )


def BackupService(ctx: Any, **kwargs: Any) -> _BackupService:
    """The service built from the parts make_ctx holds."""
    return _BackupService(
        ctx.config, BackupDeps(ctx.accounts, ctx.store), ctx.ctl_handlers, **kwargs
    )


async def wait_for_result(ctx: Any, limit: float = 60) -> dict[str, Any]:
    for _ in range(int(limit / 0.05)):
        st: dict[str, Any] = await ctx.ctl_handlers["backup_status"]({})
        if st["state"] == "idle" and st.get("last"):
            return st
        await asyncio.sleep(0.05)
    raise TimeoutError("no backup result")


def test_dev_scheduler_catches_up_then_waits_for_the_daily_slot(cfg: config.Config) -> None:
    assert cfg.dev and cfg.backup.schedule == "daily"
    init_repository(cfg)
    ctx = make_ctx(cfg)

    async def main() -> None:
        svc = BackupService(ctx, catch_up_delay=0)
        assert {"backup_run", "backup_list", "backup_status", "backup_restore"} <= set(
            ctx.ctl_handlers
        )
        await svc.start()
        try:
            st = await wait_for_result(ctx)
            assert st["last"]["ok"] and st["last"]["trigger"] == "scheduled"
            for _ in range(200):  # the scheduler recomputes once the run is over
                if svc._next_run is not None and svc._next_run > st["last"]["finished"] + 1:
                    break
                await asyncio.sleep(0.05)
            nxt = datetime.fromisoformat(svc.status()["next_run"])
            assert nxt.strftime("%H:%M") == cfg.backup.time
            snaps = await ctx.ctl_handlers["backup_list"]({})
            assert len(snaps) == 1
        finally:
            await svc.stop()

    asyncio.run(main())


def test_reload_turns_the_scheduler_off(cfg: config.Config) -> None:
    ctx = make_ctx(cfg)

    async def main() -> None:
        svc = BackupService(ctx, catch_up_delay=schedule.CATCH_UP_DELAY)
        await svc.start()
        assert svc._scheduler is not None
        ctx.config = dataclasses.replace(
            cfg, backup=dataclasses.replace(cfg.backup, schedule="off")
        )
        await svc.reload(ctx.config)
        assert svc._scheduler is None and svc.status()["next_run"] is None
        await svc.stop()

    asyncio.run(main())


def test_commands_refuse_without_a_target(tmp_path: Path) -> None:
    cfg = config.loads('dev = true\ndata_dir = "."\n', tmp_path)
    ctx = make_ctx(cfg)

    async def main() -> None:
        svc = BackupService(ctx)
        await svc.start()
        assert svc._scheduler is None
        with pytest.raises(CommandError, match="no backup target"):
            await ctx.ctl_handlers["backup_run"]({})
        with pytest.raises(CommandError, match="no backup target"):
            await ctx.ctl_handlers["backup_list"]({})
        with pytest.raises(CommandError, match="uids"):
            await ctx.ctl_handlers["backup_restore"]({"user": "a@b.c", "uids": ["x"]})
        st = await ctx.ctl_handlers["backup_status"]({})
        assert st["state"] == "never" and st["target"] == "none"
        await svc.stop()

    asyncio.run(main())


def test_scheduler_backs_off_while_another_process_runs_a_backup(cfg: config.Config) -> None:
    from appliance.backup import runner

    ctx = make_ctx(cfg)

    async def main() -> None:
        svc = BackupService(ctx, catch_up_delay=0)
        with runner.run_lock(cfg, "the timer's run"):
            await svc.start()
            for _ in range(200):
                if svc._skip_until:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            assert svc._skip_until > svc.clock() + 30  # not a busy loop of attempts
            assert svc._next_run is not None and svc._next_run >= svc._skip_until
            assert runner.read_status(cfg).get("last") is None
        await svc.stop()

    asyncio.run(main())


def test_init_creates_the_repository_once_then_reports_it_ready(cfg: config.Config) -> None:
    """The wizard's "save and test": a real restic repository at the local target; the
    password waits on the recovery sheet; a second call leaves the repository alone."""
    ctx = make_ctx(cfg)

    async def main() -> None:
        BackupService(ctx)
        first = await ctx.ctl_handlers["backup_init"]({})
        assert first["created"] is True and first["location"] == str(cfg.backup.path)
        sheet = await ctx.ctl_handlers["backup_sheet"]({})
        assert sheet["password"] and not sheet["acknowledged"]
        again = await ctx.ctl_handlers["backup_init"]({})
        assert again == {"location": str(cfg.backup.path), "created": False}
        assert (await ctx.ctl_handlers["backup_sheet"]({}))["password"] == sheet["password"]

    asyncio.run(main())


def test_init_says_why_an_unreachable_target_fails(tmp_path: Path, cfg: config.Config) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    ctx = make_ctx(
        dataclasses.replace(cfg, backup=dataclasses.replace(cfg.backup, path=blocked / "repo"))
    )

    async def main() -> None:
        BackupService(ctx)
        with pytest.raises(CommandError, match="restic init failed"):
            await ctx.ctl_handlers["backup_init"]({})
        assert not ctx.config.backup.password_file.exists()  # a retry starts clean

    asyncio.run(main())
