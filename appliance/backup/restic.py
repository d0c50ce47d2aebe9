"""A thin typed driver for the ``restic`` binary (Debian package ``restic``).

Every call is a fixed argv list (no shell). The repository password reaches restic only
through ``--password-file``; S3 secrets only through the child's environment. Neither is
ever logged: the argv we log holds paths, never secret values.

``backup`` streams restic's ``--json`` status lines to a progress callback and can be
cancelled from another thread (:meth:`Restic.cancel`); a cancelled or killed restic never
touches existing snapshots (restic writes a snapshot only after all its data is stored).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance.config import Config

log = logging.getLogger(__name__)

RESTIC = "restic"
TAG = "pillarbox"
PROGRESS_FPS = "2"
# restic prints timestamps with nanoseconds; Python's fromisoformat wants <= 6 digits.
_FRACTION_DIGITS = 6


class BackupError(Exception):
    """A backup, restore or repository operation that failed; the text is for the user."""


class ResticError(BackupError):
    def __init__(self, action: str, returncode: int, detail: str) -> None:
        super().__init__(f"restic {action} failed (exit {returncode}): {detail}")
        self.action = action
        self.returncode = returncode
        self.detail = detail


class NotConfigured(BackupError):
    """No backup target in pillarbox.toml."""


# ------------------------------------------------------------------ values


@dataclass(frozen=True)
class Repository:
    """Everything restic needs to open the repository (secrets stay in files)."""

    location: str  # e.g. "/media/usb/pillarbox", "sftp:u@h:/p", "s3:https://h/bucket"
    password_file: Path
    cache_dir: Path
    options: tuple[str, ...] = ()  # extended options, "key=value"
    s3_access_key_id: str = ""
    s3_secret_file: Path | None = None

    def display(self) -> str:
        """The location as shown to people (no secrets in it)."""
        return self.location


@dataclass(frozen=True)
class Keep:
    daily: int = 7
    weekly: int = 4
    monthly: int = 12

    def argv(self) -> list[str]:
        return [
            "--keep-daily",
            str(self.daily),
            "--keep-weekly",
            str(self.weekly),
            "--keep-monthly",
            str(self.monthly),
        ]


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    short_id: str
    time: datetime
    hostname: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "time": self.time.isoformat(),
            "hostname": self.hostname,
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class Progress:
    """One restic ``status`` line."""

    percent: float = 0.0
    files_done: int = 0
    total_files: int = 0
    bytes_done: int = 0
    total_bytes: int = 0
    seconds_elapsed: int = 0
    seconds_remaining: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "percent": round(self.percent * 100, 1),
            "files_done": self.files_done,
            "total_files": self.total_files,
            "bytes_done": self.bytes_done,
            "total_bytes": self.total_bytes,
            "seconds_elapsed": self.seconds_elapsed,
            "seconds_remaining": self.seconds_remaining,
        }


@dataclass(frozen=True)
class BackupSummary:
    snapshot_id: str
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    data_added: int = 0
    total_files: int = 0
    total_bytes: int = 0
    duration: float = 0.0
    errors: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "files_new": self.files_new,
            "files_changed": self.files_changed,
            "files_unmodified": self.files_unmodified,
            "data_added": self.data_added,
            "total_files": self.total_files,
            "total_bytes": self.total_bytes,
            "duration": round(self.duration, 2),
            "errors": list(self.errors),
        }


# ------------------------------------------------------------------ parsing


def parse_time(text: str) -> datetime:
    """restic's RFC 3339 timestamps (nanoseconds, 'Z' or an offset) -> aware datetime."""
    t = text.strip().replace("Z", "+00:00")
    head, dot, rest = t.partition(".")
    if dot:
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        digits, tz = rest[:i], rest[i:]
        t = head + "." + digits[:_FRACTION_DIGITS].ljust(_FRACTION_DIGITS, "0") + tz
    return datetime.fromisoformat(t)


def parse_snapshots(text: str) -> list[SnapshotInfo]:
    try:
        raw = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise BackupError(f"restic snapshots: unreadable output ({exc})") from None
    if not isinstance(raw, list):
        raise BackupError("restic snapshots: unexpected output")
    snaps = [
        SnapshotInfo(
            id=str(s["id"]),
            short_id=str(s.get("short_id") or s["id"][:8]),
            time=parse_time(str(s["time"])),
            hostname=str(s.get("hostname", "")),
            tags=tuple(s.get("tags") or ()),
            paths=tuple(s.get("paths") or ()),
        )
        for s in raw
        if isinstance(s, dict) and "id" in s and "time" in s
    ]
    snaps.sort(key=lambda s: s.time)
    return snaps


def parse_progress(msg: Mapping[str, Any]) -> Progress:
    return Progress(
        percent=float(msg.get("percent_done", 0.0)),
        files_done=int(msg.get("files_done", 0)),
        total_files=int(msg.get("total_files", 0)),
        bytes_done=int(msg.get("bytes_done", 0)),
        total_bytes=int(msg.get("total_bytes", 0)),
        seconds_elapsed=int(msg.get("seconds_elapsed", 0)),
        seconds_remaining=int(msg.get("seconds_remaining", 0)),
    )


def parse_summary(msg: Mapping[str, Any], errors: Sequence[str]) -> BackupSummary:
    return BackupSummary(
        snapshot_id=str(msg.get("snapshot_id", "")),
        files_new=int(msg.get("files_new", 0)),
        files_changed=int(msg.get("files_changed", 0)),
        files_unmodified=int(msg.get("files_unmodified", 0)),
        data_added=int(msg.get("data_added", 0)),
        total_files=int(msg.get("total_files_processed", 0)),
        total_bytes=int(msg.get("total_bytes_processed", 0)),
        duration=float(msg.get("total_duration", 0.0)),
        errors=tuple(errors),
    )


# ------------------------------------------------------------------ repository from config


def repository_for(cfg: Config) -> Repository:
    """The restic repository the config names; NotConfigured when there is none."""
    b = cfg.backup
    if b.target == "none":
        raise NotConfigured("no backup target is configured ([backup] target in pillarbox.toml)")
    password_file = b.password_file or cfg.data_dir / "backup" / "repository-password"
    cache = cfg.data_dir / "backup" / "cache"
    if b.target == "local":
        assert b.path is not None  # config validation guarantees it
        return Repository(str(b.path), password_file, cache)
    if b.target == "sftp":
        user_host, _, path = b.url.partition(":")
        ssh = [
            "ssh",
            "-p",
            str(b.sftp_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={cfg.data_dir / 'backup' / 'known_hosts'}",
        ]
        if b.sftp_identity is not None:
            ssh += ["-o", "IdentitiesOnly=yes", "-i", str(b.sftp_identity)]
        ssh += [user_host, "-s", "sftp"]
        for part in ssh:
            if any(c.isspace() or c in "'\"\\" for c in part):
                raise BackupError(f"backup sftp setting {part!r} must not contain spaces or quotes")
        return Repository(
            f"sftp:{user_host}:{path}",
            password_file,
            cache,
            options=("sftp.command=" + " ".join(ssh),),
        )
    return Repository(
        "s3:" + b.url,
        password_file,
        cache,
        s3_access_key_id=b.s3_access_key_id,
        s3_secret_file=b.s3_secret_file,
    )


# ------------------------------------------------------------------ driver


class Restic:
    def __init__(self, repo: Repository, binary: str = RESTIC) -> None:
        self.repo = repo
        self.binary = binary
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled = False

    # -------------------------------------------------------------- plumbing

    def argv(self, *args: str) -> list[str]:
        argv = [
            self.binary,
            "--repo",
            self.repo.location,
            "--password-file",
            str(self.repo.password_file),
            "--cache-dir",
            str(self.repo.cache_dir),
        ]
        for opt in self.repo.options:
            argv += ["-o", opt]
        return argv + list(args)

    def env(self) -> dict[str, str]:
        """The child's environment: ours without stray RESTIC_/AWS_ settings, plus S3 keys."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RESTIC_", "AWS_")) and k != "GOMAXPROCS"
        }
        env["LC_ALL"] = "C"
        env["RESTIC_PROGRESS_FPS"] = PROGRESS_FPS  # --json status lines per second
        if self.repo.s3_access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.repo.s3_access_key_id
        if self.repo.s3_secret_file is not None:
            try:
                env["AWS_SECRET_ACCESS_KEY"] = self.repo.s3_secret_file.read_text().strip()
            except OSError as exc:
                raise BackupError(f"cannot read the S3 secret file: {exc.strerror}") from None
        return env

    def _check_password_file(self) -> None:
        if not self.repo.password_file.is_file():
            raise BackupError(
                f"no repository password at {self.repo.password_file}; "
                "run `pillarbox backup init` (or init --existing on a new box)"
            )

    def run(self, action: str, *args: str, timeout: float = 3600.0, cwd: Path | None = None) -> str:
        """Run one restic command to completion; returns stdout, raises ResticError."""
        self._check_password_file()
        self.repo.cache_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv(action, *args)
        log.info("restic=run action=%s repo=%s", action, self.repo.display())
        try:
            proc = subprocess.run(
                argv,
                env=self.env(),
                cwd=cwd,
                capture_output=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise BackupError("restic is not installed (Debian package 'restic')") from None
        except subprocess.TimeoutExpired:
            raise BackupError(f"restic {action} did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0:
            detail = _last_lines(proc.stderr.decode(errors="replace"))
            log.warning("restic=failed action=%s rc=%s detail=%s", action, proc.returncode, detail)
            raise ResticError(action, proc.returncode, detail)
        return proc.stdout.decode(errors="replace")

    # -------------------------------------------------------------- commands

    def is_initialized(self) -> bool:
        """True when a repository exists at the location and the password opens it."""
        try:
            self.run("cat", "config", timeout=300)
        except ResticError as exc:
            if "wrong password" in exc.detail.lower():
                raise BackupError("the repository password does not open this repository") from None
            return False
        return True

    def init(self) -> None:
        self.run("init", timeout=600)

    def unlock(self) -> None:
        """Remove stale locks (of restic processes that died); live locks stay."""
        self.run("unlock", timeout=300)

    def snapshots(self, tag: str = TAG) -> list[SnapshotInfo]:
        return parse_snapshots(self.run("snapshots", "--json", "--tag", tag, timeout=600))

    def forget(self, keep: Keep, tag: str = TAG, prune: bool = True) -> None:
        args = ["--tag", tag, "--group-by", "host", *keep.argv()]
        if prune:
            args.append("--prune")
        self.run("forget", *args, timeout=6 * 3600)

    def check(self, read_data_subset: str | None = None) -> str:
        args = ["--read-data-subset", read_data_subset] if read_data_subset else []
        return self.run("check", *args, timeout=12 * 3600)

    def restore(self, snapshot: str, target: Path, includes: Sequence[str] = ()) -> None:
        args = [snapshot, "--target", str(target)]
        for inc in includes:
            args += ["--include", inc]
        self.run("restore", *args, timeout=12 * 3600)

    def ls(self, snapshot: str, path: str = "/") -> list[dict[str, Any]]:
        out = self.run("ls", "--json", snapshot, path, timeout=600)
        nodes: list[dict[str, Any]] = []
        for line in out.splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                item = json.loads(line)
                if isinstance(item, dict) and item.get("struct_type") == "node":
                    nodes.append(item)
        return nodes

    def backup(
        self,
        cwd: Path,
        paths: Sequence[str],
        *,
        host: str,
        tags: Sequence[str] = (TAG,),
        on_progress: Callable[[Progress], None] | None = None,
        timeout: float = 24 * 3600.0,
    ) -> BackupSummary:
        """``restic backup --json`` of ``paths`` (relative to ``cwd``, so the snapshot
        tree starts at them); streams progress; returns restic's summary."""
        self._check_password_file()
        self.repo.cache_dir.mkdir(parents=True, exist_ok=True)
        # Staged files are fresh hard links or copies: judge changes by size and mtime.
        argv = self.argv("backup", "--json", "--host", host, "--ignore-ctime", "--ignore-inode")
        for tag in tags:
            argv += ["--tag", tag]
        argv += ["--", *paths]
        log.info("restic=run action=backup repo=%s host=%s", self.repo.display(), host)
        with self._lock:
            if self._cancelled:
                raise BackupError("backup cancelled")
            try:
                proc = subprocess.Popen(
                    argv,
                    env=self.env(),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except FileNotFoundError:
                raise BackupError("restic is not installed (Debian package 'restic')") from None
            self._proc = proc
        stderr_lines: list[str] = []
        reader = threading.Thread(
            target=_drain, args=(proc.stderr, stderr_lines), name="restic-stderr", daemon=True
        )
        reader.start()
        summary: BackupSummary | None = None
        errors: list[str] = []
        timer = threading.Timer(timeout, self.cancel)
        timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                try:
                    msg = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if not isinstance(msg, dict):
                    continue
                kind = msg.get("message_type")
                if kind == "status" and on_progress is not None:
                    on_progress(parse_progress(msg))
                elif kind == "error":
                    err = msg.get("error")
                    text = err.get("message") if isinstance(err, dict) else str(err)
                    errors.append(f"{msg.get('item', '')}: {text}")
                elif kind == "summary":
                    summary = parse_summary(msg, errors)
            rc = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(5)
            with self._lock:
                self._proc = None
        if self._cancelled:
            raise BackupError("backup cancelled; the previous snapshots are untouched")
        # Exit 3: snapshot written but some files could not be read.
        if rc not in (0, 3) or summary is None or not summary.snapshot_id:
            detail = _last_lines("".join(stderr_lines)) or f"exit {rc}"
            log.warning("restic=failed action=backup rc=%s detail=%s", rc, detail)
            raise ResticError("backup", rc, detail)
        log.info(
            "restic=done action=backup snapshot=%s files=%s added=%s",
            summary.snapshot_id,
            summary.total_files,
            summary.data_added,
        )
        return summary

    def cancel(self) -> None:
        """Stop a running backup (SIGINT lets restic remove its lock)."""
        with self._lock:
            self._cancelled = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None else None


def _drain(stream: Any, sink: list[str]) -> None:
    for line in stream:
        if len(sink) < 200:
            sink.append(line.decode(errors="replace"))


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[:500]
