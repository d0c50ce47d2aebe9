"""One backup run: stage, ``restic backup``, ``restic forget --prune``; status on disk.

The daemon's scheduler, the ``pillarbox backup run`` CLI (systemd timer on the appliance)
and the web UI's "run now" all end up in :meth:`BackupRunner.run`. An exclusive flock on
``<data_dir>/backup/run.lock`` keeps two runs (daemon and timer) from overlapping.

``<data_dir>/backup/status.json`` holds the state of the current or last run, written
atomically, so every process (CLI, web UI, daemon) can show it. It never holds secrets.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import atomicfile, pids
from appliance.backup import staging
from appliance.backup.restic import BackupError, Keep, Progress, Restic, repository_for
from appliance.config import Config

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between status.json updates while running


class BackupBusy(BackupError):
    """Another backup or restore holds the run lock."""


def backup_dir(cfg: Config) -> Path:
    return cfg.data_dir / "backup"


def status_path(cfg: Config) -> Path:
    return backup_dir(cfg) / "status.json"


def read_status(cfg: Config) -> dict[str, Any]:
    try:
        raw = json.loads(status_path(cfg).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"state": "never"}
    return raw if isinstance(raw, dict) else {"state": "never"}


def write_status(cfg: Config, status: dict[str, Any]) -> None:
    path = status_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write_text(path, json.dumps(status, indent=2, default=str) + "\n")


@contextlib.contextmanager
def run_lock(cfg: Config, what: str) -> Iterator[None]:
    """Exclusive, non-blocking: raises BackupBusy when another run holds it."""
    path = backup_dir(cfg) / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupBusy(f"another backup or restore is running; {what} not started") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def keep_of(cfg: Config) -> Keep:
    return Keep(cfg.backup.keep_daily, cfg.backup.keep_weekly, cfg.backup.keep_monthly)


@dataclass(frozen=True)
class RunResult:
    ok: bool
    trigger: str
    started: float
    finished: float
    snapshot_id: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    forgot: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "trigger": self.trigger,
            "started": self.started,
            "finished": self.finished,
            "snapshot_id": self.snapshot_id,
            "summary": self.summary,
            "error": self.error,
            "forgot": self.forgot,
        }


class BackupRunner:
    """Runs backups for one config; thread-safe status for the service and the web UI."""

    def __init__(
        self,
        cfg: Config,
        accounts: staging.AccountsBackup,
        *,
        user_lock: staging.UserLock | None = None,
        clock: Callable[[], float] = time.time,
        restic_factory: Callable[[Config], Restic] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.accounts = accounts
        self.user_lock = user_lock
        self.clock = clock
        self.on_progress = on_progress
        self._restic_factory = restic_factory or (lambda c: Restic(repository_for(c)))
        self._lock = threading.Lock()
        self._current: Restic | None = None
        self._running = False
        self._progress: Progress | None = None
        self._phase = ""
        self._started = 0.0
        self._last_write = 0.0

    # -------------------------------------------------------------- status

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running

    @property
    def restic_pid(self) -> int | None:
        """The running restic process, if any (for tests and diagnostics)."""
        with self._lock:
            current = self._current
        return current.pid if current is not None else None

    def status(self) -> dict[str, Any]:
        """The persisted status, with live progress when this process is running."""
        st = read_status(self.cfg)
        with self._lock:
            if self._running:
                st["state"] = "running"
                st["phase"] = self._phase
                st["started"] = self._started
                st["progress"] = self._progress.to_json() if self._progress else None
                return st
        if st.get("state") == "running" and not pids.alive(st.get("pid")):
            st["state"] = "interrupted"  # the process that ran it died mid-run
        return st

    def _persist(self, **extra: Any) -> None:
        st = read_status(self.cfg)
        st.update(extra, pid=os.getpid())
        write_status(self.cfg, st)

    def _on_progress(self, p: Progress) -> None:
        with self._lock:
            self._progress = p
        if self.on_progress is not None:
            self.on_progress(p)
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_INTERVAL:
            self._last_write = now
            self._persist(state="running", phase="upload", progress=p.to_json())

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            self._phase = phase
        self._persist(state="running", phase=phase)

    # -------------------------------------------------------------- run

    def run(self, trigger: str = "manual", *, forget: bool = True) -> RunResult:
        """Blocking: stage, back up, apply retention. Never raises for a failed run
        (the result says why) except BackupBusy when another run holds the lock."""
        with run_lock(self.cfg, "backup"):
            started = self.clock()
            try:
                restic = self._restic_factory(self.cfg)
            except BackupError as exc:
                result = RunResult(False, trigger, started, self.clock(), error=str(exc))
                self._persist(state="idle", phase="", progress=None, last=result.to_json())
                return result
            with self._lock:
                self._running = True
                self._current = restic
                self._progress = None
                self._started = started
            self._persist(state="running", phase="staging", started=started, progress=None)
            try:
                result = self._run(restic, trigger, started, forget)
            finally:
                with self._lock:
                    self._running = False
                    self._current = None
            st = read_status(self.cfg)
            st.update(state="idle", phase="", progress=None, last=result.to_json())
            if result.ok:
                st["last_success"] = result.to_json()
            write_status(self.cfg, st)
            return result

    def _run(self, restic: Restic, trigger: str, started: float, forget: bool) -> RunResult:
        root = staging.staging_dir(self.cfg)
        log.info("backup=start trigger=%s", trigger)
        try:
            self._set_phase("staging")
            staged = staging.build(
                self.cfg, self.accounts, user_lock=self.user_lock, clock=self.clock
            )
            self._set_phase("upload")
            restic.unlock()  # locks left by a restic that was killed (power loss, kill -9)
            summary = restic.backup(
                staged.root,
                staged.entries(),
                host=self.cfg.hostname,
                tags=("pillarbox", f"trigger-{trigger}"),
                on_progress=self._on_progress,
            )
        except (BackupError, OSError) as exc:
            error = str(exc) if isinstance(exc, BackupError) else f"staging failed: {exc}"
            log.error("backup=failed trigger=%s error=%s", trigger, error)
            return RunResult(False, trigger, started, self.clock(), error=error)
        finally:
            with contextlib.suppress(OSError):
                staging.remove_tree(root)
        forgot = False
        error = ""
        if forget:
            self._set_phase("retention")
            try:
                restic.forget(keep_of(self.cfg))
                forgot = True
            except BackupError as exc:
                error = f"backup saved, but old snapshots were not pruned: {exc}"
                log.warning("backup=forget-failed error=%s", exc)
        log.info("backup=done snapshot=%s trigger=%s", summary.snapshot_id, trigger)
        return RunResult(
            True,
            trigger,
            started,
            self.clock(),
            snapshot_id=summary.snapshot_id,
            summary=summary.to_json(),
            error=error,
            forgot=forgot,
        )

    def cancel(self) -> None:
        with self._lock:
            current = self._current
        if current is not None:
            current.cancel()
