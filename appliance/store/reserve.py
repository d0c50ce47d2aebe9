"""Free space on the mail filesystem: the reserve writers stop at, and a spare file
that lets deletes run when the disk is full anyway.

Two defences, so a full disk never locks users out (issue 17.4):

- **Reserve** (``limits.disk_reserve``): new mail (SMTP, APPEND) is refused while the
  free space, minus what the write adds, would fall below it: SMTP answers 452 4.3.1
  (RFC 3463 3.4: mail system full), APPEND ``NO [OVERQUOTA]`` (what Dovecot 2.3 maps
  ENOSPC to: its lib-storage turns ENOSPC and EDQUOT into MAIL_ERROR_NOQUOTA, which
  IMAP renders as OVERQUOTA, RFC 5530 3). -1 means max(100 MiB, 1 % of the
  filesystem). Free space is ``statvfs`` of the mail directory (blocks available to
  unprivileged users), cached for ``CACHE_SECONDS``.
- **Spare file** (``SPARE_NAME`` in the mail directory, at most ``SPARE_MAX`` bytes,
  allocated with ``posix_fallocate`` so its blocks are real): something else can still
  fill the disk (logs, another program, root). A delete then needs a few blocks of its
  own (SQLite appends the change to its WAL, the folder meta is rewritten) and would
  fail with ENOSPC just when the user tries to make room. :func:`frees_space` wraps the
  store's delete and flag operations: when the disk is nearly full, or the operation
  failed with "disk full", the spare file is removed and the operation runs (again).
  It is recreated by the next reserve check that finds room for it.

Reads never need this: the store skips its optional writes (scan state, \\Recent
claims, summary cache) when the disk is full and answers from what the index holds.

Thread-safety: one :class:`DiskGuard` per mail directory (:func:`guard`), used from the
store's worker threads and the event loop; its state is behind a lock.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from appliance.store.base import StorageFull

log = logging.getLogger(__name__)

RESERVE_MIN = 100 << 20  # bytes: the automatic reserve is at least this ...
RESERVE_PERCENT = 1  # ... or this share of the filesystem, whichever is larger
CACHE_SECONDS = 2.0  # statvfs results are reused this long
SPARE_NAME = ".pillarbox-spare"
SPARE_MAX = 8 << 20  # bytes; never more than a quarter of the reserve

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}

P = ParamSpec("P")
R = TypeVar("R")


class InsufficientStorage(StorageFull):
    """Refused before writing: the write would eat into the free-space reserve."""


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, SQLite's SQLITE_FULL, or the store's typed StorageFull."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
    return False


def reserve_bytes(configured: int, total: int) -> int:
    """The reserve in bytes: the configured value, or for -1 max(100 MiB, 1 %)."""
    if configured >= 0:
        return configured
    return max(RESERVE_MIN, total * RESERVE_PERCENT // 100)


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (the mail directory is created by the
    first delivery; until then its parent's filesystem is the one that will hold it)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


class DiskGuard:
    """Free-space checks and the spare file for one mail directory."""

    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
    ) -> None:
        self.root = root
        self._clock = clock
        self._statvfs = statvfs
        self._lock = threading.Lock()
        self._cached: tuple[float, int, int] | None = None  # (when, free, total)
        self.spare_size = 0  # bytes of the spare file last created, 0 = none known

    @property
    def spare(self) -> Path:
        return self.root / SPARE_NAME

    def space(self, *, fresh: bool = False) -> tuple[int, int]:
        """(free bytes for unprivileged writers, filesystem size)."""
        now = self._clock()
        with self._lock:
            cached = self._cached
            if not fresh and cached is not None and now - cached[0] < CACHE_SECONDS:
                return cached[1], cached[2]
        st = self._statvfs(_existing(self.root))
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        with self._lock:
            self._cached = (now, free, total)
        return free, total

    def forget(self) -> None:
        with self._lock:
            self._cached = None

    def check(self, configured: int, incoming: int = 0) -> None:
        """Raise :class:`InsufficientStorage` when ``incoming`` more bytes would leave
        less than the reserve free. Blocking (statvfs; may create the spare file)."""
        if configured == 0:
            return
        free, total = self.space()
        reserve = reserve_bytes(configured, total)
        if free - incoming < reserve:
            log.warning(
                "store=disk-reserve free=%d incoming=%d reserve=%d root=%s",
                free,
                incoming,
                reserve,
                self.root,
            )
            raise InsufficientStorage("mail storage is nearly full")
        self.ensure_spare(min(SPARE_MAX, reserve // 4), free - reserve)

    def ensure_spare(self, size: int, room: int) -> None:
        """Create the spare file when it is missing and ``room`` bytes above the
        reserve allow it (best effort: a failure only logs)."""
        if size <= 0:
            return
        with self._lock:
            if self.spare_size >= size:
                return
            try:
                st = os.stat(self.spare)
            except FileNotFoundError:
                st = None
            except OSError:
                return
            if st is not None and st.st_blocks * 512 >= size:
                self.spare_size = size
                return
            if room < size or not self.root.is_dir():
                return
            tmp = self.root / f"{SPARE_NAME}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.posix_fallocate(fd, 0, size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, self.spare)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                log.warning("store=spare-failed root=%s error=%r", self.root, exc)
                return
            self.spare_size = size
            self._cached = None
        log.info("store=spare-created root=%s bytes=%d", self.root, size)

    def release_spare(self) -> bool:
        """Remove the spare file; True when it existed (its blocks are free now)."""
        with self._lock:
            self.spare_size = 0
            self._cached = None
            try:
                os.unlink(self.spare)
            except FileNotFoundError:
                return False
            except OSError as exc:
                log.error("store=spare-release-failed root=%s error=%r", self.root, exc)
                return False
        log.warning("store=spare-released root=%s (the disk is full)", self.root)
        return True

    def nearly_full(self) -> bool:
        """Less free than one spare file (or under 1 MiB): a delete may need it."""
        try:
            free, _ = self.space(fresh=True)
        except OSError:
            return False
        return free < max(self.spare_size, 1 << 20)


_warned: dict[str, float] = {}
_warned_lock = threading.Lock()
WARN_EVERY = 60.0  # seconds between two "skipped on a full disk" lines of one kind


def warn_skipped(logger: logging.Logger, what: str, key: str) -> None:
    """Log that an optional write was skipped on a full disk, at most once a minute per
    (what, key): a polling client must not flood the journal on the same full disk."""
    now = time.monotonic()
    with _warned_lock:
        if now - _warned.get(f"{what}:{key}", -WARN_EVERY) < WARN_EVERY:
            return
        _warned[f"{what}:{key}"] = now
        if len(_warned) > 10_000:
            _warned.clear()
    logger.warning("store=%s-skipped key=%s disk=full", what, key)


_guards: dict[Path, DiskGuard] = {}
_guards_lock = threading.Lock()


def guard(root: Path) -> DiskGuard:
    """The process-wide guard of a mail directory."""
    with _guards_lock:
        g = _guards.get(root)
        if g is None:
            g = _guards[root] = DiskGuard(root)
        return g


class _HasRoot(Protocol):
    @property
    def root(self) -> Path: ...


S = TypeVar("S", bound=_HasRoot)


def frees_space(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """For store operations that free space (expunge, delete) or that a user needs to
    get there (flagging \\Deleted): give them the spare file's blocks when the disk is
    full. The operation runs again once after a disk-full failure; each of them is safe
    to repeat (a second run finds done what the first did)."""

    @functools.wraps(fn)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        g = guard(self.root)
        if g.nearly_full():
            g.release_spare()
        try:
            return fn(self, *args, **kwargs)
        except (OSError, sqlite3.Error, StorageFull) as exc:
            if not is_disk_full(exc) or not g.release_spare():
                raise
            log.warning("store=retry-after-spare op=%s error=%r", fn.__name__, exc)
        return fn(self, *args, **kwargs)

    return wrapper
