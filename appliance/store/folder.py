"""Files of one Maildir folder besides the messages, and durable file-system steps.

Per folder (INBOX is the user directory):
  ``cur/ new/ tmp/``        the Maildir
  ``maildirfolder``         Maildir++ marker (not in INBOX)
  ``pillarbox-meta.json``   UIDVALIDITY, SPECIAL-USE and the UIDNEXT / MODSEQ floors that
                            let a lost index be rebuilt without reusing UIDs or lowering
                            MODSEQ (rewritten before any expunge)
  ``dovecot-keywords``      keyword <-> letter a-z, Dovecot's format: ``<n> <keyword>``
Per user: ``pillarbox-uidvalidity`` (last UIDVALIDITY handed out) and
``pillarbox-subscriptions`` (one subscribed name per line).

OS errors become typed store errors here: ENOSPC/EDQUOT -> StorageFull, the rest ->
StorageUnavailable.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from appliance import atomicfile
from appliance.atomicfile import fsync_dir as fsync_dir  # the store's modules use it from here
from appliance.store.base import StorageFull, StorageUnavailable, StoreError
from appliance.store.names import KEYWORD_LETTERS

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

META_FILE = "pillarbox-meta.json"
KEYWORDS_FILE = "dovecot-keywords"
UIDVALIDITY_FILE = "pillarbox-uidvalidity"
SUBSCRIPTIONS_FILE = "pillarbox-subscriptions"
STALE_TMP_SECONDS = 36 * 3600  # the Maildir spec's limit for tmp/ leftovers

_FULL = {errno.ENOSPC, errno.EDQUOT}


def storage_error(exc: BaseException) -> StoreError:
    """Map an OSError / sqlite3 error to the typed store error (detail kept as cause)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return StorageFull("mail storage is full")
    if isinstance(exc, sqlite3.Error) and "full" in str(exc).lower():
        return StorageFull("mail storage is full")
    return StorageUnavailable("mail storage is unavailable")


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """OS and SQLite errors leave the store only as typed StoreErrors (logged once)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            log.error("store=error op=%s error=%r", fn.__name__, exc)
            raise storage_error(exc) from exc

    return wrapper


def write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard link ``src`` to ``dst``; copy (and fsync) where links are impossible."""
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(src, dst)
        fd = os.open(dst, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """A store file (0600) replaced atomically and durably (appliance.atomicfile)."""
    atomicfile.write_bytes(path, data, mode=0o600)


def make_maildir(path: Path, subfolder: bool) -> bool:
    """Create cur/new/tmp (and the Maildir++ marker); True when something was created."""
    created = False
    for sub in ("", "cur", "new", "tmp"):
        d = path / sub if sub else path
        if not d.is_dir():
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            created = True
    if subfolder and not (path / "maildirfolder").exists():
        (path / "maildirfolder").touch(mode=0o600)
        created = True
    if created:
        fsync_dir(path)
        fsync_dir(path.parent)
    return created


def clean_tmp(path: Path, now: float | None = None) -> int:
    """Remove tmp/ files older than 36 hours; returns how many were removed."""
    limit = (time.time() if now is None else now) - STALE_TMP_SECONDS
    removed = 0
    try:
        entries = list(os.scandir(path / "tmp"))
    except FileNotFoundError:
        return 0
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            st = entry.stat(follow_symlinks=False)
            if st.st_mtime < limit and st.st_atime < limit:
                os.unlink(entry.path)
                removed += 1
    return removed


# ------------------------------------------------------------------ meta


@dataclass(frozen=True)
class FolderMeta:
    uidvalidity: int
    uidnext: int = 1
    modseq: int = 1
    special_use: str | None = None


def read_meta(folder: Path) -> FolderMeta | None:
    try:
        raw = json.loads((folder / META_FILE).read_bytes())
        return FolderMeta(
            uidvalidity=int(raw["uidvalidity"]),
            uidnext=int(raw.get("uidnext", 1)),
            modseq=int(raw.get("modseq", 1)),
            special_use=raw.get("special_use") or None,
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: treated like a foreign folder (new UIDVALIDITY)


def write_meta(folder: Path, meta: FolderMeta) -> None:
    data = {
        "uidvalidity": meta.uidvalidity,
        "uidnext": meta.uidnext,
        "modseq": meta.modseq,
        "special_use": meta.special_use,
    }
    write_atomic(folder / META_FILE, json.dumps(data, sort_keys=True).encode() + b"\n")


def next_uidvalidity(userdir: Path) -> int:
    """A UIDVALIDITY larger than any handed out before for this user (caller holds the
    user's tree lock)."""
    path = userdir / UIDVALIDITY_FILE
    try:
        last = int(path.read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        last = 0
    value = max(int(time.time()), last + 1) & 0xFFFFFFFF or 1
    write_atomic(path, f"{value}\n".encode())
    return value


# ------------------------------------------------------------------ keywords


class Keywords:
    """The folder's keyword letters, re-read when the file changes."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / KEYWORDS_FILE
        self._stamp: tuple[int, int] | None = None
        self.letter_of: dict[str, str] = {}
        self.keyword_of: dict[str, str] = {}

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self.letter_of, self.keyword_of = None, {}, {}
            return
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp:
            return
        letter_of: dict[str, str] = {}
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            num, _, name = line.partition(" ")
            if num.isdigit() and int(num) < len(KEYWORD_LETTERS) and name:
                letter_of[name] = KEYWORD_LETTERS[int(num)]
        self._stamp = stamp
        self.letter_of = letter_of
        self.keyword_of = {v: k for k, v in letter_of.items()}

    def assign(self, keywords: Iterable[str]) -> None:
        """Give letters to keywords that have none while letters remain (caller holds
        the mailbox lock). Keywords beyond 26 stay in the index only."""
        self.refresh()
        wanted = [k for k in sorted(set(keywords)) if k not in self.letter_of]
        free = [i for i, ch in enumerate(KEYWORD_LETTERS) if ch not in self.keyword_of]
        if not wanted or not free:
            return
        for keyword, num in zip(wanted, free, strict=False):
            self.letter_of[keyword] = KEYWORD_LETTERS[num]
        self.keyword_of = {v: k for k, v in self.letter_of.items()}
        lines = sorted((KEYWORD_LETTERS.index(ch), k) for k, ch in self.letter_of.items())
        write_atomic(self.path, "".join(f"{n} {k}\n" for n, k in lines).encode())
        self._stamp = None
        self.refresh()


# ------------------------------------------------------------------ subscriptions


def read_subscriptions(userdir: Path) -> set[str]:
    try:
        text = (userdir / SUBSCRIPTIONS_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return {line for line in text.splitlines() if line}


def write_subscriptions(userdir: Path, names: Iterable[str]) -> None:
    text = "".join(f"{n}\n" for n in sorted(set(names)))
    write_atomic(userdir / SUBSCRIPTIONS_FILE, text.encode("utf-8"))
