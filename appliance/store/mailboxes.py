"""Users and mailboxes of the Maildir store: paths, locks, create/list/delete/rename.

Mailbox-list changes run under the user's tree lock; a change to one mailbox also
holds that mailbox's lock (lock files live in ``<user>/pillarbox-locks/``). Folders
appear and disappear atomically: a new folder is built under ``pillarbox-work/`` and
renamed into place; a deleted one is renamed there first and removed afterwards.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.events import MailboxChanged, Notifier
from appliance.store import index, reserve, scan
from appliance.store.base import (
    DEFAULT_FOLDERS,
    INBOX,
    SEPARATOR,
    SPECIAL_USE,
    Copied,
    InvalidMailboxName,
    MailboxExists,
    MailboxInfo,
    MailboxNotFound,
    Snapshot,
    Usage,
)
from appliance.store.folder import (
    FolderMeta,
    Keywords,
    clean_tmp,
    fsync_dir,
    guarded,
    make_maildir,
    next_uidvalidity,
    read_meta,
    read_subscriptions,
    write_meta,
    write_subscriptions,
)
from appliance.store.locking import LockTable
from appliance.store.names import folder_dirname, mailbox_of_dirname, validate_mailbox

log = logging.getLogger(__name__)

LOCK_DIR = "pillarbox-locks"
WORK_DIR = "pillarbox-work"
CLEANUP_INTERVAL = 3600.0  # seconds between tmp/ sweeps of one folder


def _check_user(user: str) -> tuple[str, str]:
    local, sep, domain = user.rpartition("@")
    for part in (local, domain):
        if (
            not sep
            or not part
            or part.startswith(".")
            or "/" in part
            or "\\" in part
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in part)
        ):
            raise InvalidMailboxName(f"invalid user {user!r}")
    return local, domain


@dataclass
class OpenBox:
    """An opened mailbox (lock held when ``locked``)."""

    user: str
    name: str
    folder: Path
    idx: index.Index
    conn: sqlite3.Connection
    mbx: index.MailboxRow
    keywords: Keywords
    changed: bool = False


class MailboxOps(abc.ABC):
    def __init__(self, root: Path, notify: Notifier, lock_timeout: float) -> None:
        self.root = root
        self.locks = LockTable(lock_timeout)
        self._notify = notify
        self._guard_lock = threading.Lock()
        self._indexes: dict[str, index.Index] = {}
        self._ready: set[str] = set()
        self._keywords: dict[Path, Keywords] = {}
        self._cleaned: dict[Path, float] = {}

    # ------------------------------------------------------------ hooks

    @abc.abstractmethod
    def move(self, user: str, src: str, uids: Sequence[int], dst: str) -> Copied: ...

    @abc.abstractmethod
    def snapshot(self, user: str, mailbox: str, *, claim_recent: bool = False) -> Snapshot: ...

    # ------------------------------------------------------------ paths

    def user_dir(self, user: str) -> Path:
        local, domain = _check_user(user)
        return self.root / domain / local

    def folder(self, user: str, name: str) -> Path:
        userdir = self.user_dir(user)
        return userdir if name == INBOX else userdir / folder_dirname(name)

    def lock_path(self, user: str, name: str) -> Path:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
        return self.user_dir(user) / LOCK_DIR / f"mbox-{digest}.lock"

    def _tree_lock(self, user: str) -> Path:
        return self.user_dir(user) / LOCK_DIR / "tree.lock"

    def user_index(self, user: str) -> index.Index:
        with self._guard_lock:
            idx = self._indexes.get(user)
            if idx is None:
                idx = self._indexes[user] = index.Index(self.user_dir(user) / index.INDEX_FILE)
            return idx

    def _new_uidvalidity(self, user: str) -> int:
        # Innermost lock: nothing else is taken while it is held.
        with self.locks.hold([self.user_dir(user) / LOCK_DIR / "uidvalidity.lock"]):
            return next_uidvalidity(self.user_dir(user))

    def _ensure(self, user: str) -> None:
        if user in self._ready and (self.user_dir(user) / "cur").is_dir():
            return
        self.ensure_user(user)

    # ------------------------------------------------------------ plumbing

    def _publish(self, user: str, mailbox: str) -> None:
        try:
            self._notify(MailboxChanged(user, mailbox))
        except Exception:
            log.exception("store=notify-failed user=%s mailbox=%s", user, mailbox)

    def _kw(self, folder: Path) -> Keywords:
        with self._guard_lock:
            kw = self._keywords.get(folder)
            if kw is None:
                kw = self._keywords[folder] = Keywords(folder)
            return kw

    def _row(
        self, conn: sqlite3.Connection, user: str, name: str, folder: Path
    ) -> index.MailboxRow:
        """The index row of a mailbox; a folder unknown to the index is (re)built."""
        row = index.get_mailbox(conn, name)
        if row is not None:
            return row
        if not (folder / "cur").is_dir():
            raise MailboxNotFound(name)
        meta = read_meta(folder)
        if meta is None:
            meta = FolderMeta(self._new_uidvalidity(user))
            write_meta(folder, meta)
            modseq, floor = 1, 0
        else:
            # Rebuild: MODSEQs handed out before the loss stay below the new ones.
            modseq = floor = max(meta.modseq, int(time.time() * 1000))
        with index.transaction(conn):
            row = index.insert_mailbox(conn, name, meta.uidvalidity, meta.uidnext, modseq, floor)
        scan.sync(conn, row, folder, self._kw(folder), rebuild=True)
        log.info("store=index-rebuilt user=%s mailbox=%s", user, name)
        fresh = index.get_mailbox(conn, name)
        assert fresh is not None
        return fresh

    @contextlib.contextmanager
    def _open(self, user: str, mailbox: str, *, lock: bool = True) -> Iterator[OpenBox]:
        """Open a mailbox synced with its folder. Without ``lock`` a fresh index is
        read without taking the mailbox lock (the lock is taken only to sync)."""
        name = validate_mailbox(mailbox)
        self._ensure(user)
        folder = self.folder(user, name)
        idx = self.user_index(user)
        if not lock:
            conn = idx.conn()
            mbx = index.get_mailbox(conn, name)
            if mbx is not None:
                try:
                    fresh = scan.is_fresh(mbx, scan.dir_mtimes(folder))
                except FileNotFoundError:
                    raise MailboxNotFound(name) from None
                if fresh:
                    yield OpenBox(user, name, folder, idx, conn, mbx, self._kw(folder))
                    return
        with self.locks.hold([self.lock_path(user, name)]):
            conn = idx.conn()
            mbx = self._row(conn, user, name, folder)
            kw = self._kw(folder)
            try:
                changed = scan.sync(conn, mbx, folder, kw)
            except FileNotFoundError:
                raise MailboxNotFound(name) from None
            except (OSError, sqlite3.Error) as exc:
                if not reserve.is_disk_full(exc):
                    raise
                # A full disk must not lock users out: serve what the index knows
                # (the re-scan runs again once there is room); deletes free space.
                reserve.warn_skipped(log, "sync", f"{user}/{name}")
                changed = False
            if changed:
                mbx = index.get_mailbox(conn, name) or mbx
            self._maybe_clean(folder)
            yield OpenBox(user, name, folder, idx, conn, mbx, kw, changed)

    def _maybe_clean(self, folder: Path) -> None:
        now = time.monotonic()
        if now - self._cleaned.get(folder, -CLEANUP_INTERVAL) >= CLEANUP_INTERVAL:
            self._cleaned[folder] = now
            clean_tmp(folder)

    def _write_floor(self, box: OpenBox, modseq: int) -> None:
        """Persist UIDNEXT and MODSEQ before messages disappear, so an index rebuilt
        later neither reuses an expunged UID nor lowers MODSEQ."""
        meta = read_meta(box.folder) or FolderMeta(box.mbx.uidvalidity)
        write_meta(
            box.folder,
            FolderMeta(meta.uidvalidity, box.mbx.uidnext, modseq, meta.special_use),
        )

    @contextlib.contextmanager
    def hold(self, user: str) -> Iterator[None]:
        """Hold all of ``user``'s mailboxes: the tree lock first (no mailbox appears,
        goes or is renamed), then every mailbox lock in one sorted ``hold`` (no
        delivery, flag change, copy or expunge), the order every writer uses. The locks
        are flock files, so another process's store waits too."""
        with self.locks.hold([self._tree_lock(user)]):
            paths = [self.lock_path(user, name) for name in self._folders(user)]
            with self.locks.hold(paths):
                yield

    # ------------------------------------------------------------ usage

    @guarded
    def usage(self, user: str) -> Usage:
        self._ensure(user)
        self.refresh_usage(user)
        used, count = index.usage(self.user_index(user).conn())
        return Usage(used, count)

    def refresh_usage(self, user: str) -> None:
        """Bring the index totals in line with the folders before usage is read: a
        folder whose new/ or cur/ changed since its last listing is synced (another
        program added or removed files), a folder the index does not know is indexed,
        the row of a folder that vanished is dropped. A quiet user costs one listing of
        the user directory, two stat() per folder and one small query."""
        stale, gone = self._usage_plan(user)
        if not stale and not gone:
            return
        with self.locks.hold([self._tree_lock(user)]):  # no CREATE/RENAME/DELETE meanwhile
            stale, gone = self._usage_plan(user)
            for name in stale:
                with contextlib.suppress(MailboxNotFound), self._open(user, name):
                    pass
            if gone:
                with self.user_index(user).write() as conn:
                    for name in gone:
                        row = index.get_mailbox(conn, name)
                        if row is not None:
                            index.drop_mailbox(conn, row.id)
                log.info("store=index-dropped-vanished user=%s mailboxes=%s", user, len(gone))

    def _usage_plan(self, user: str) -> tuple[list[str], list[str]]:
        """(folders whose directories changed since the index listed them or that the
        index does not know, index rows whose folder is gone)."""
        conn = self.user_index(user).conn()
        recorded: dict[str, tuple[int, int]] = {
            name: (new, cur)
            for name, new, cur in conn.execute("SELECT name, new_mtime, cur_mtime FROM mailboxes")
        }
        stale: list[str] = []
        present: set[str] = set()
        for name, folder in self._folders(user).items():
            try:
                mtimes = scan.dir_mtimes(folder)
            except FileNotFoundError:
                continue  # not a Maildir folder (no new/ or cur/)
            present.add(name)
            if recorded.get(name) != mtimes:
                stale.append(name)
        return stale, [n for n in recorded if n not in present]

    # ------------------------------------------------------------ users

    @guarded
    def ensure_user(self, user: str) -> None:
        userdir = self.user_dir(user)
        with self.locks.hold([self._tree_lock(user)]):
            if not (userdir / "cur").is_dir() or read_meta(userdir) is None:
                with self.locks.hold([self.lock_path(user, INBOX)]):
                    make_maildir(userdir, subfolder=False)
                    if read_meta(userdir) is None:
                        self._register(user, INBOX, userdir, None)
                    clean_tmp(userdir)
            for name, special in DEFAULT_FOLDERS:
                folder = self.folder(user, name)
                if not folder.is_dir():
                    with self.locks.hold([self.lock_path(user, name)]):
                        self._build(user, name, special)
        self._ready.add(user)

    def _register(self, user: str, name: str, folder: Path, special_use: str | None) -> None:
        """Give a new folder its UIDVALIDITY and a fresh index row (locks held)."""
        meta = FolderMeta(self._new_uidvalidity(user), special_use=special_use)
        write_meta(folder, meta)
        with self.user_index(user).write() as conn:
            stale = index.get_mailbox(conn, name)
            if stale is not None:
                index.drop_mailbox(conn, stale.id)
            index.insert_mailbox(conn, name, meta.uidvalidity, 1, 1)

    def _build(self, user: str, name: str, special_use: str | None) -> None:
        """Create a folder atomically: build it in the work dir, rename into place."""
        userdir = self.user_dir(user)
        work = userdir / WORK_DIR / secrets.token_hex(8)
        make_maildir(work, subfolder=True)
        meta = FolderMeta(self._new_uidvalidity(user), special_use=special_use)
        write_meta(work, meta)
        os.rename(work, self.folder(user, name))
        fsync_dir(userdir)
        with self.user_index(user).write() as conn:
            stale = index.get_mailbox(conn, name)
            if stale is not None:
                index.drop_mailbox(conn, stale.id)
            index.insert_mailbox(conn, name, meta.uidvalidity, 1, 1)

    # ------------------------------------------------------------ listing

    def _folders(self, user: str) -> dict[str, Path]:
        userdir = self.user_dir(user)
        found: dict[str, Path] = {INBOX: userdir}
        with os.scandir(userdir) as entries:
            for entry in entries:
                name = mailbox_of_dirname(entry.name)
                if name and name != INBOX and entry.is_dir():
                    found[name] = Path(entry.path)
        return found

    @guarded
    def list_mailboxes(self, user: str) -> list[MailboxInfo]:
        self._ensure(user)
        folders = self._folders(user)
        subscribed = read_subscriptions(self.user_dir(user))
        names = set(folders)
        for name in list(folders):
            parts = name.split(SEPARATOR)
            names.update(SEPARATOR.join(parts[:i]) for i in range(1, len(parts)))
        result = []
        for name in sorted(names, key=lambda n: (n != INBOX, n)):
            folder = folders.get(name)
            meta = read_meta(folder) if folder is not None else None
            prefix = name + SEPARATOR
            result.append(
                MailboxInfo(
                    name=name,
                    special_use=meta.special_use if meta else None,
                    subscribed=name in subscribed,
                    has_children=any(n.startswith(prefix) for n in names),
                    selectable=folder is not None,
                )
            )
        return result

    # ------------------------------------------------------------ changes

    @guarded
    def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> None:
        name = validate_mailbox(name)
        if special_use is not None and special_use not in SPECIAL_USE:
            raise InvalidMailboxName(f"unknown special use {special_use!r}")
        self._ensure(user)
        parts = name.split(SEPARATOR)
        with self.locks.hold([self._tree_lock(user)]):
            if name == INBOX or self.folder(user, name).is_dir():
                raise MailboxExists(name)
            # RFC 9051 6.3.4: superior hierarchical names are created as needed.
            for i in range(1, len(parts) + 1):
                level = SEPARATOR.join(parts[:i])
                if level == INBOX or self.folder(user, level).is_dir():
                    continue
                with self.locks.hold([self.lock_path(user, level)]):
                    self._build(user, level, special_use if level == name else None)
        self._publish(user, "")

    @guarded
    @reserve.frees_space  # DELETE must work on a full disk: it is how room is made
    def delete_mailbox(self, user: str, name: str) -> None:
        name = validate_mailbox(name)
        if name == INBOX:
            raise InvalidMailboxName("INBOX cannot be deleted")
        self._ensure(user)
        userdir = self.user_dir(user)
        with self.locks.hold([self._tree_lock(user)]):
            folder = self.folder(user, name)
            if not folder.is_dir():
                raise MailboxNotFound(name)
            with self.locks.hold([self.lock_path(user, name)]):
                (userdir / WORK_DIR).mkdir(mode=0o700, exist_ok=True)
                doomed = userdir / WORK_DIR / f"deleted-{secrets.token_hex(8)}"
                os.rename(folder, doomed)
                fsync_dir(userdir)
                with self.user_index(user).write() as conn:
                    row = index.get_mailbox(conn, name)
                    if row is not None:
                        index.drop_mailbox(conn, row.id)
        shutil.rmtree(doomed, ignore_errors=True)
        self._publish(user, name)
        self._publish(user, "")

    @guarded
    def rename_mailbox(self, user: str, old: str, new: str) -> None:
        old, new = validate_mailbox(old), validate_mailbox(new)
        self._ensure(user)
        if new == INBOX or self.folder(user, new).is_dir():
            raise MailboxExists(new)
        if new.startswith(old + SEPARATOR):
            raise InvalidMailboxName("cannot rename a mailbox into itself")
        if old == INBOX:
            # RFC 9051 6.3.6: renaming INBOX moves its messages; INBOX stays, empty.
            self.create_mailbox(user, new)
            uids = [m.uid for m in self.snapshot(user, INBOX).messages]
            self.move(user, INBOX, uids, new)
            return
        userdir = self.user_dir(user)
        with self.locks.hold([self._tree_lock(user)]):
            folders = self._folders(user)
            moving = sorted(n for n in folders if n == old or n.startswith(old + SEPARATOR))
            if old not in folders:
                raise MailboxNotFound(old)
            if self.folder(user, new).is_dir():
                raise MailboxExists(new)
            renames = {n: new + n[len(old) :] for n in moving}
            locks = [self.lock_path(user, n) for n in (*renames, *renames.values())]
            with self.locks.hold(locks):
                for src, dst in renames.items():
                    validate_mailbox(dst)
                    os.rename(self.folder(user, src), self.folder(user, dst))
                fsync_dir(userdir)
                with self.user_index(user).write() as conn:
                    for src, dst in renames.items():
                        conn.execute("DELETE FROM mailboxes WHERE name = ?", (dst,))
                        conn.execute("UPDATE mailboxes SET name = ? WHERE name = ?", (dst, src))
            parent = new.rpartition(SEPARATOR)[0]
        if parent and not self.folder(user, parent).is_dir():
            with contextlib.suppress(MailboxExists):
                self.create_mailbox(user, parent)
        for name in (*renames, *renames.values()):
            self._publish(user, name)
        self._publish(user, "")

    @guarded
    def subscriptions(self, user: str) -> frozenset[str]:
        self._ensure(user)
        return frozenset(read_subscriptions(self.user_dir(user)))

    @guarded
    def subscribe(self, user: str, name: str, subscribed: bool) -> None:
        name = validate_mailbox(name)
        self._ensure(user)
        userdir = self.user_dir(user)
        with self.locks.hold([self._tree_lock(user)]):
            names = read_subscriptions(userdir)
            if subscribed == (name in names):
                return
            names = names | {name} if subscribed else names - {name}
            write_subscriptions(userdir, names)
        self._publish(user, "")
