"""The backup service inside the daemon: ctl commands and (in dev) the daily scheduler.

ctl commands (JSON args):
  backup_status                       state, live progress, last result, next run
  backup_run     {}                   start a backup now (returns at once; poll status)
  backup_list    {}                   snapshots in the repository
  backup_restore {user, snapshot?, mailbox?, uids?, wait?}
                                      append a user's backed-up mail under Restored/<date>
  backup_sheet   {}                   recovery sheet data; the password only until
  backup_sheet_ack {}                 an admin confirms it is stored (then never again)
  backup_init    {}                   create the repository at the configured target (the
                                      wizard's "save and test"); already there: connected

On the appliance a systemd timer runs ``pillarbox backup run --scheduled`` instead of the
in-daemon scheduler (which runs only in dev mode); both share the run lock, so the timer
and a "run now" from the web UI never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.accounts import Accounts
from appliance.backup import password, restore, schedule, store_lock
from appliance.backup.initialize import init_repository
from appliance.backup.restic import BackupError, NotConfigured, Restic, repository_for
from appliance.backup.runner import BackupBusy, BackupRunner, RunResult
from appliance.config import Config
from appliance.runtime import CommandError, CtlHandlers, Service, register
from appliance.store.base import MailStore

log = logging.getLogger(__name__)

NOT_INITIALISED = "the repository is not initialised (pillarbox backup init)"
MAX_WAIT_STEP = 60.0  # the scheduler re-reads the clock at least this often


@dataclass(frozen=True)
class BackupDeps:
    """What the backup service uses besides the config."""

    accounts: Accounts
    store: MailStore  # restores append here; backups hold a user's mailboxes


class BackupService:
    name = "backup"

    def __init__(
        self,
        config: Config,
        deps: BackupDeps,
        handlers: CtlHandlers,
        *,
        clock: Callable[[], float] = time.time,
        catch_up_delay: float = schedule.CATCH_UP_DELAY,
    ) -> None:
        self.config = config  # replaced on reload
        self.deps = deps
        self.clock = clock
        self.catch_up_delay = catch_up_delay
        self.runner = BackupRunner(
            config, deps.accounts, user_lock=store_lock.user_lock(deps.store), clock=clock
        )
        self._started = clock()
        self._run_task: asyncio.Task[RunResult | None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._next_run: float | None = None
        self._skip_until = 0.0
        self._last_state = "never"
        self._restore: dict[str, Any] = {"state": "idle"}
        self._restore_task: asyncio.Task[dict[str, Any]] | None = None
        register(handlers, "backup_status", self._cmd_status)
        register(handlers, "backup_run", self._cmd_run)
        register(handlers, "backup_list", self._cmd_list)
        register(handlers, "backup_restore", self._cmd_restore)
        register(handlers, "backup_sheet", self._cmd_sheet)
        register(handlers, "backup_sheet_ack", self._cmd_sheet_ack)
        register(handlers, "backup_init", self._cmd_init)

    # -------------------------------------------------------------- lifecycle

    def _scheduler_enabled(self) -> bool:
        b = self.config.backup
        return self.config.dev and b.target != "none" and b.schedule == "daily"

    async def start(self) -> None:
        if self._scheduler_enabled():
            self._scheduler = asyncio.create_task(self._schedule_loop(), name="backup-scheduler")

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
            self._scheduler = None
        self.runner.cancel()
        for task in (self._run_task, self._restore_task):
            if task is not None and not task.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), 8)

    async def reload(self, new: Config) -> None:
        self.config = new
        self.runner.cfg = new
        enabled = self._scheduler_enabled()
        if enabled and self._scheduler is None:
            self._scheduler = asyncio.create_task(self._schedule_loop(), name="backup-scheduler")
        elif not enabled and self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
            self._scheduler = None
            self._next_run = None
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """For the daemon's ``status`` (no disk access on the event loop)."""
        return {
            "target": self.config.backup.target,
            "state": "running" if self.runner.running else self._last_state,
            "next_run": _iso(self._next_run),
        }

    # -------------------------------------------------------------- scheduler

    def _next(self) -> float:
        st = self.runner.status()
        self._last_state = str(st.get("state", "never"))
        last_ok = st.get("last_success", {}).get("finished")
        last_try = st.get("last", {}).get("finished")
        nxt = schedule.next_run(
            self.clock(),
            self.config.backup.time,
            float(last_ok) if last_ok else None,
            self._started,
            last_attempt=float(last_try) if last_try else None,
            catch_up_delay=self.catch_up_delay,
        )
        return max(nxt, self._skip_until)  # another process's run held the lock: back off

    async def _schedule_loop(self) -> None:
        while True:
            self._next_run = await asyncio.to_thread(self._next)
            while (wait := self._next_run - self.clock()) > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait, MAX_WAIT_STEP))
                self._next_run = await asyncio.to_thread(self._next)
            task = self._start_run("scheduled")
            if task is None:  # a manual run is going on; it counts
                task = self._run_task
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)

    def _start_run(self, trigger: str) -> asyncio.Task[RunResult | None] | None:
        if self._run_task is not None and not self._run_task.done():
            return None
        self._run_task = asyncio.create_task(self._run(trigger), name=f"backup-{trigger}")
        return self._run_task

    async def _run(self, trigger: str) -> RunResult | None:
        try:
            return await asyncio.to_thread(self.runner.run, trigger)
        except BackupBusy as exc:
            log.warning("backup=skipped trigger=%s reason=%s", trigger, exc)
            self._skip_until = self.clock() + MAX_WAIT_STEP
            return None
        finally:
            self._wake.set()

    # -------------------------------------------------------------- ctl

    def _restic(self) -> Restic:
        try:
            return Restic(repository_for(self.config))
        except NotConfigured as exc:
            raise CommandError(str(exc)) from None

    async def _cmd_status(self, args: dict[str, Any]) -> Any:
        st = await asyncio.to_thread(self.runner.status)
        self._last_state = str(st.get("state", "never"))
        st["target"] = self.config.backup.target
        st["schedule"] = self.config.backup.schedule
        st["time"] = self.config.backup.time
        st["next_run"] = _iso(self._next_run)
        st["restore"] = dict(self._restore)
        return st

    async def _cmd_run(self, args: dict[str, Any]) -> Any:
        self._restic()  # refuses when no target is configured
        if self._start_run("manual") is None:
            raise CommandError("a backup is already running")
        return {"started": True}

    async def _cmd_list(self, args: dict[str, Any]) -> Any:
        restic = self._restic()
        try:
            snaps = await asyncio.to_thread(restic.snapshots)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        return [s.to_json() for s in reversed(snaps)]

    async def _cmd_sheet(self, args: dict[str, Any]) -> Any:
        repo = self._restic().repo
        cfg = self.config
        try:
            sheet = await asyncio.to_thread(password.sheet_state, repo.password_file)
        except password.PasswordError:
            raise CommandError(NOT_INITIALISED) from None
        b = cfg.backup
        return {
            "hostname": cfg.hostname,
            "target": b.target,
            "location": repo.display(),
            "sftp_identity": str(b.sftp_identity) if b.sftp_identity else None,
            "s3_access_key_id": b.s3_access_key_id or None,
            "created": sheet.created,
            "acknowledged": sheet.acknowledged,
            "password": sheet.password,
        }

    async def _cmd_sheet_ack(self, args: dict[str, Any]) -> Any:
        repo = self._restic().repo
        if not repo.password_file.is_file():
            raise CommandError(NOT_INITIALISED)
        await asyncio.to_thread(password.acknowledge, repo.password_file)
        log.info("backup=recovery-sheet-acknowledged")
        return {"acknowledged": True}

    async def _cmd_init(self, args: dict[str, Any]) -> Any:
        """Create the repository (a new password, shown on the recovery sheet until it is
        acknowledged); a repository the stored password already opens is left as it is."""
        restic = self._restic()
        cfg = self.config
        if restic.repo.password_file.is_file():
            try:
                ready = await asyncio.to_thread(restic.is_initialized)
            except BackupError as exc:
                raise CommandError(str(exc)) from None
            if ready:
                return {"location": restic.repo.display(), "created": False}
        try:
            result = await asyncio.to_thread(init_repository, cfg, restic=restic)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        return {"location": result.location, "created": result.created}

    async def _cmd_restore(self, args: dict[str, Any]) -> Any:
        user = args.get("user")
        snapshot = args.get("snapshot") or "latest"
        mailbox = args.get("mailbox") or None
        uids = args.get("uids") or None
        if not isinstance(user, str) or not user:
            raise CommandError("backup_restore needs a user")
        if not isinstance(snapshot, str) or (mailbox is not None and not isinstance(mailbox, str)):
            raise CommandError("snapshot and mailbox must be strings")
        if uids is not None and (
            not isinstance(uids, list) or not all(isinstance(u, int) and u > 0 for u in uids)
        ):
            raise CommandError("uids must be a list of positive integers")
        restic = self._restic()
        if self._restore_task is not None and not self._restore_task.done():
            raise CommandError("a restore is already running")

        def work() -> dict[str, Any]:
            result = restore.restore_mailbox(
                self.config,
                self.deps.store,
                user,
                snapshot=snapshot,
                mailbox=mailbox,
                uids=uids,
                restic=restic,
            )
            return result.to_json()

        async def job() -> dict[str, Any]:
            self._restore = {"state": "running", "user": user, "started": self.clock()}
            try:
                result = await asyncio.to_thread(work)
            except BackupError as exc:
                self._restore = {"state": "failed", "user": user, "error": str(exc)}
                raise CommandError(str(exc)) from None
            self._restore = {"state": "done", "user": user, "result": result}
            return result

        self._restore_task = asyncio.create_task(job(), name="backup-restore")
        if args.get("wait"):
            return await self._restore_task
        self._restore_task.add_done_callback(_swallow)
        return {"started": True}


def _swallow(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the outcome is in backup_status


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts else None


def create(config: Config, deps: BackupDeps, handlers: CtlHandlers) -> list[Service]:
    return [BackupService(config, deps, handlers)]
