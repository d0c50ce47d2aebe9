"""The import/export service inside the daemon (ctl commands).

  migrate_start  {kind, user, ..., password?}  start an import job (one at a time: a
                                                small box and the old provider both
                                                prefer one connection); returns job_id
  migrate_status {user?, job_id?}               jobs with counts, speed and the summary
  migrate_cancel {job_id}                       stop after the current batch
  migrate_export {user, token?}                 the next block (<= 512 KiB, base64) of
                                                the user's Maildir as a tar stream

Jobs write through the daemon's store, so IMAP IDLE sessions see each batch arrive. A
job found "running" in its saved state at start was cut by a restart or reboot: it
is marked interrupted and resumes from its saved position when started again (an IMAP
job needs the password again: it is never written to disk).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from appliance.accounts import Accounts
from appliance.config import Config
from appliance.migrate import runner
from appliance.migrate import state as st
from appliance.migrate.export import tar_stream
from appliance.runtime import CommandError, CtlHandlers, Service, register
from appliance.store.base import MailStore

log = logging.getLogger(__name__)

EXPORT_BLOCK = 512 * 1024  # raw bytes per ctl answer (base64 stays under MAX_LINE)
EXPORT_IDLE = 300.0  # an export stream nobody reads for this long is dropped
MAX_EXPORTS = 4


class _Export:
    def __init__(self, user: str, chunks: Iterator[bytes]) -> None:
        self.user = user
        self.chunks = chunks
        self.rest = b""
        self.used = time.monotonic()
        self.lock = threading.Lock()

    def block(self) -> tuple[bytes, bool]:
        """The next block and whether the stream ended (runs in a worker thread)."""
        with self.lock:
            self.used = time.monotonic()
            buf = bytearray(self.rest)
            done = False
            while len(buf) < EXPORT_BLOCK:
                chunk = next(self.chunks, None)
                if chunk is None:
                    done = True
                    break
                buf += chunk
            self.rest = bytes(buf[EXPORT_BLOCK:])
            return bytes(buf[:EXPORT_BLOCK]), done and not self.rest


@dataclass(frozen=True)
class MigrateDeps:
    """What the import service uses besides the config."""

    accounts: Accounts
    store: MailStore


class MigrateService:
    name = "migrate"

    def __init__(self, config: Config, deps: MigrateDeps, handlers: CtlHandlers) -> None:
        self.config = config  # replaced on reload
        self.deps = deps
        self._task: asyncio.Task[None] | None = None
        self._cancel = threading.Event()
        self._live: st.JobState | None = None
        self._job_id = ""
        self._exports: dict[str, _Export] = {}
        register(handlers, "migrate_start", self._cmd_start)
        register(handlers, "migrate_status", self._cmd_status)
        register(handlers, "migrate_cancel", self._cmd_cancel)
        register(handlers, "migrate_export", self._cmd_export)

    async def start(self) -> None:
        await asyncio.to_thread(self._mark_interrupted)

    def _mark_interrupted(self) -> None:
        data_dir = self.config.data_dir
        for job in st.all_jobs(data_dir):
            if job.status == "running":
                job.status = "interrupted"
                job.message = "stopped by a restart; start it again to resume where it stopped"
                st.save(data_dir, job)

    async def stop(self) -> None:
        self._cancel.set()
        if self._task is not None and not self._task.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), 8)

    async def reload(self, new: Config) -> None:
        self.config = new

    def status(self) -> dict[str, Any]:
        return {"job": self._job_id if self._running() else None}

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -------------------------------------------------------------- commands

    async def _cmd_start(self, args: dict[str, Any]) -> Any:
        if self._running():
            raise CommandError("an import is running already; wait for it or cancel it")
        params = {k: v for k, v in args.items() if k != "password"}
        password = str(args.get("password", ""))
        try:
            user = runner._user(self.deps.accounts, params)
            jid = runner.planned_job_id(params, user)
        except runner.BadRequest as exc:
            raise CommandError(str(exc)) from None
        if params.get("kind") == "imap" and not password:
            raise CommandError("the password of the old mailbox is needed")
        if await asyncio.to_thread(runner.job_busy, self.config.data_dir, jid):
            raise CommandError("this import is running already in another command")
        self._cancel = threading.Event()
        self._job_id = jid
        self._live = None
        cancel = self._cancel

        def progress(state: st.JobState) -> None:
            self._live = state

        def work() -> None:
            try:
                runner.run(
                    self.config,
                    self.deps.accounts,
                    self.deps.store,
                    params,
                    password,
                    cancel=cancel,
                    on_progress=progress,
                )
            except runner.BadRequest as exc:
                log.warning("migrate=refused job=%s reason=%s", jid, exc)
            except Exception:
                log.exception("migrate=crashed job=%s", jid)
                job = st.load(self.config.data_dir, jid)
                if job is not None:
                    job.status, job.message = "failed", "internal error; see the daemon log"
                    job.finished = time.time()
                    st.save(self.config.data_dir, job)

        log.info("migrate=start job=%s kind=%s user=%s", jid, params.get("kind"), user)
        self._task = asyncio.create_task(asyncio.to_thread(work), name=f"migrate-{jid}")
        return {"job_id": jid}

    async def _cmd_status(self, args: dict[str, Any]) -> Any:
        jobs = await asyncio.to_thread(st.all_jobs, self.config.data_dir)
        live = self._live
        out = []
        for job in jobs:
            if self._running() and job.job_id == self._job_id:
                if live is not None and live.job_id == job.job_id:
                    job = live
                else:  # started, its thread has not saved yet: not the old state
                    job.status, job.message = "running", ""
            if args.get("user") and job.user != str(args["user"]).lower():
                continue
            if args.get("job_id") and job.job_id != args["job_id"]:
                continue
            out.append(job.summary())
        out.sort(key=lambda j: j["started"], reverse=True)
        return {"running": self._running(), "jobs": out}

    async def _cmd_cancel(self, args: dict[str, Any]) -> Any:
        if not self._running() or self._job_id != args.get("job_id"):
            raise CommandError("that import is not running")
        self._cancel.set()
        return {"cancelling": True}

    async def _cmd_export(self, args: dict[str, Any]) -> Any:
        token = str(args.get("token", ""))
        now = time.monotonic()
        for key in [k for k, e in self._exports.items() if now - e.used > EXPORT_IDLE]:
            del self._exports[key]
        if not token:
            user = str(args.get("user", "")).strip().lower()
            if not user or self.deps.accounts.get_user(user) is None:
                raise CommandError(f"no local user {user!r}")
            if len(self._exports) >= MAX_EXPORTS:
                raise CommandError("too many downloads at once; try again in a few minutes")
            token = secrets.token_urlsafe(16)
            self._exports[token] = _Export(user, tar_stream(self.deps.store, user))
        export = self._exports.get(token)
        if export is None:
            raise CommandError("that download has ended; start it again")
        block, done = await asyncio.to_thread(export.block)
        if done:
            self._exports.pop(token, None)
        return {"token": token, "data": base64.b64encode(block).decode(), "done": done}


def create(config: Config, deps: MigrateDeps, handlers: CtlHandlers) -> list[Service]:
    return [MigrateService(config, deps, handlers)]
