"""MaildirStore: the MailStore protocol on Maildir++ with a per-user SQLite index.

Layout: ``<root>/<domain>/<localpart>/`` is the user's Maildir++ (INBOX); folders are
``.Name`` directories (see ``names.py``); per-folder and per-user side files are
described in ``folder.py``; the index in ``index.py``; reconciliation in ``scan.py``.

Keywords: the first 26 keywords of a folder get letters a-z in its ``dovecot-keywords``
file and travel in the file names (so mutt or Dovecot see them and a rebuilt index
keeps them); further keywords are kept in the index only.

Writes are durable before they return: message data fsynced in tmp/; then, under the
mailbox locks, the UIDs and the names about to appear are committed to the index
(UIDNEXT reserved, the names in its intent log ``pending``); then linked into new/ or
cur/, directories fsynced, and the rows committed in one transaction that also clears
the intent records. Delivery to several targets is two-phase (all tmp files written
first, then all links under the locks of every target mailbox); any failure unlinks
what was linked, so no target keeps a copy. A crash before the row commit wastes the
reserved UIDs (never re-used) and the next re-scan removes the linked files (nothing
was acknowledged; SMTP resends); a crash after it loses nothing acknowledged.

COPY and MOVE (``_transfer``) follow the same steps in one user index: COPY links,
MOVE rename(2)s each file from the source into the destination's cur/ under its new
UID-bearing name, and one transaction adds the destination rows and (MOVE) expunges
the source rows. What holds after a crash at any point: a COPY shows all its copies
with their UIDs or none; a MOVE leaves every message in exactly one of the two
mailboxes (a file already renamed is adopted by the destination with its reserved UID,
its source row is expunged; the others stay in the source), so a MOVE cut short is
partial but never duplicates (RFC 6851 3.3); no UID is handed out twice. A MOVE into
the source mailbox gives each message a new UID (RFC 9051 2.3.1.1).

Reading: a mailbox whose new/ and cur/ mtimes are unchanged is served from the index
without listing them (``scan.py``); recently used snapshots are kept in memory and
updated by MODSEQ (``snapcache.py``). ``snapshot(claim_recent=True)`` hands out
\\Recent once (the index keeps the highest UID already claimed) and moves the claimed
files from new/ to cur/, as Maildir readers do.

Locking: one lock per mailbox (thread lock + flock, ``locking.py``) for every write
and every re-scan; a fresh index is read without it (SQLite gives a consistent view).

Quota: usage is the index's per-mailbox totals (``index.usage``, kept by triggers in
the same transaction as every message row). APPEND and COPY with ``quota_bytes`` first
sync folders whose directories changed (``refresh_usage``) and refuse early; a
delivery leaves that to its caller, which read ``usage()`` once for the message
(``quota.MessageQuota``). Every write then decides inside the index write transaction
that adds the rows (``quota.check``): writers of one user are serialised by that
transaction, so two racing for the last bytes cannot both pass, and a refused write
unlinks what it linked (nothing is stored). MOVE never changes usage and is never
refused.

Sizes: messages written by the store are CRLF, so ``size`` is RFC822.SIZE. A file
another program dropped in with bare LF keeps its bytes; its size is the file size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from dataclasses import replace as _replace
from pathlib import Path
from typing import BinaryIO

from appliance.events import Notifier
from appliance.store import index, quota, reserve, scan
from appliance.store.base import (
    Appended,
    Changes,
    Copied,
    DeliveryTarget,
    FlagMode,
    FlagResult,
    MailboxNotFound,
    MailboxStatus,
    MessageInfo,
    MessageNotFound,
    NewMessage,
    Snapshot,
)
from appliance.store.folder import (
    clean_tmp,
    fsync_dir,
    guarded,
    link_or_copy,
    write_all,
)
from appliance.store.mailboxes import MailboxOps, OpenBox
from appliance.store.names import (
    clean_flags,
    info_of,
    join_flags,
    split_flags,
    unique_name,
    validate_mailbox,
)
from appliance.store.snapcache import DEFAULT_ENTRIES, SnapshotCache

log = logging.getLogger(__name__)


CHUNK = 1 << 20


@dataclass(frozen=True)
class _Prepared:
    target: DeliveryTarget
    mailbox: str
    folder: Path
    tmp: Path
    size: int
    mtime: float
    flags: frozenset[str]
    summary: bytes | None


class MaildirStore(MailboxOps):
    def __init__(
        self,
        root: Path,
        notify: Notifier,
        summarizer: Callable[[Path], bytes],
        *,
        summary_current: Callable[[bytes], bool] = lambda _data: True,
        lock_timeout: float = 30.0,
        snapshot_cache: int = DEFAULT_ENTRIES,
    ) -> None:
        super().__init__(root, notify, lock_timeout)
        self._summarizer = summarizer
        self._summary_current = summary_current  # False: a cached summary is made again
        self._snapshots = SnapshotCache(snapshot_cache)

    # ------------------------------------------------------------ reading

    @guarded
    def status(self, user: str, mailbox: str) -> MailboxStatus:
        with self._open(user, mailbox, lock=False) as box:
            # RFC 3501 6.3.10: RECENT counts the messages no session has claimed yet
            counts = index.mailbox_counts(box.conn, box.mbx.id, box.mbx.recent_uid)
            result = _status(box.mbx, *counts)
        if box.changed:
            self._publish(user, box.name)
        return result

    @guarded
    def snapshot(self, user: str, mailbox: str, *, claim_recent: bool = False) -> Snapshot:
        if claim_recent:
            try:
                return self._snapshot(user, mailbox, claim_recent=True)
            except (OSError, sqlite3.Error) as exc:
                if not reserve.is_disk_full(exc):
                    raise
                # A full disk must not lock users out: SELECT works without claiming
                # \Recent (an optional write); EXPUNGE then frees space.
                reserve.warn_skipped(log, "recent-claim", user)
        return self._snapshot(user, mailbox, claim_recent=False)

    def _snapshot(self, user: str, mailbox: str, *, claim_recent: bool) -> Snapshot:
        with self._open(user, mailbox, lock=claim_recent) as box:
            conn = box.conn
            tx = index.transaction(conn) if claim_recent else index.read_transaction(conn)
            with tx:
                mbx = index.get_mailbox(conn, box.name) or box.mbx
                messages = self._snapshots.messages(conn, (user, box.name), mbx)
                recent: frozenset[int] = frozenset()
                if mbx.uidnext - 1 > mbx.recent_uid:
                    # RFC 3501 2.3.2: \Recent goes to the first session to see a message;
                    # without claiming (EXAMINE, 6.3.2) the caller only learns which.
                    recent = frozenset(_uids_above(messages, mbx.recent_uid))
                    if claim_recent:
                        index.set_mailbox_state(conn, mbx.id, recent_uid=mbx.uidnext - 1)
            if claim_recent:
                scan.settle_new(box.conn, box.mbx.id, box.folder)
        unseen = deleted = size = 0
        for m in messages:
            if "\\Seen" not in m.flags:
                unseen += 1
            if "\\Deleted" in m.flags:
                deleted += 1
            size += m.size
        if box.changed:
            self._publish(user, box.name)
        st = _status(mbx, len(messages), unseen, size, deleted, len(recent))
        return Snapshot(st, messages, recent)

    @guarded
    def changes(self, user: str, mailbox: str, since: int) -> Changes:
        with self._open(user, mailbox, lock=False) as box, index.read_transaction(box.conn):
            conn = box.conn
            mbx = index.get_mailbox(conn, box.name) or box.mbx
            changed = tuple(_info(r) for r in index.changed_since(conn, mbx.id, since))
            if mbx.vanished_floor and since < mbx.vanished_floor:
                # History before an index rebuild is gone: report every UID below
                # UIDNEXT that no longer exists (clients ignore unknown UIDs).
                present = index.present_uids(conn, mbx.id)
                expunged = tuple(u for u in range(1, mbx.uidnext) if u not in present)
            else:
                expunged = index.expunged_since(conn, mbx.id, since)
        if box.changed:
            self._publish(user, box.name)
        return Changes(mbx.highest_modseq, mbx.uidnext, changed, expunged)

    def _message(self, user: str, mailbox: str, uid: int, force: bool = False) -> Path:
        with self._open(user, mailbox, lock=force) as box:
            if force:
                scan.sync(box.conn, box.mbx, box.folder, box.keywords, force=True)
            rows = index.get_messages(box.conn, box.mbx.id, [uid])
            if not rows:
                raise MessageNotFound(f"{mailbox} UID {uid}")
            return box.folder / rows[0].relpath

    @guarded
    def message_path(self, user: str, mailbox: str, uid: int) -> Path:
        path = self._message(user, mailbox, uid)
        if not path.exists():
            path = self._message(user, mailbox, uid, force=True)
        return path

    @guarded
    def open_message(self, user: str, mailbox: str, uid: int) -> BinaryIO:
        try:
            return self._message(user, mailbox, uid).open("rb")
        except FileNotFoundError:
            # Renamed (flags changed) or expunged by another program since the index
            # was read: look again.
            return self._message(user, mailbox, uid, force=True).open("rb")

    @guarded
    def summary(self, user: str, mailbox: str, uid: int) -> bytes:
        name = validate_mailbox(mailbox)
        idx = self.user_index(user)
        with self._open(user, name, lock=False) as box:
            mailbox_id = box.mbx.id
            cached = index.get_summaries(box.conn, mailbox_id, [uid]).get(uid)
        if cached is not None and self._summary_current(cached):
            return cached
        path = self.message_path(user, name, uid)
        try:
            data = self._summarizer(path)
        except FileNotFoundError:
            data = self._summarizer(self._message(user, name, uid, force=True))
        try:
            with idx.write() as conn:
                index.put_summaries(conn, mailbox_id, {uid: data}, checked=True)
        except sqlite3.Error as exc:
            if not reserve.is_disk_full(exc):
                raise
            # Only a cache: FETCH works without it on a full disk.
        return data

    @guarded
    def claim_recent(
        self, user: str, mailbox: str, uids: Sequence[int], *, peek: bool = False
    ) -> frozenset[int]:
        if not uids:
            return frozenset()
        try:
            with self._open(user, mailbox, lock=False) as box, index.transaction(box.conn):
                mbx = index.get_mailbox(box.conn, box.name) or box.mbx
                top = min(max(uids), mbx.uidnext - 1)
                claimed = frozenset(u for u in uids if mbx.recent_uid < u <= top)
                if claimed and not peek:
                    index.set_mailbox_state(box.conn, mbx.id, recent_uid=top)
        except (OSError, sqlite3.Error) as exc:
            if not reserve.is_disk_full(exc):
                raise
            reserve.warn_skipped(log, "recent-claim", user)
            return frozenset()  # an optional write: nobody gets \Recent for these
        return claimed

    @guarded
    def message_paths(self, user: str, mailbox: str, uids: Sequence[int]) -> dict[int, Path]:
        with self._open(user, mailbox, lock=False) as box:
            rows = index.get_messages(box.conn, box.mbx.id, list(uids))
            return {row.uid: box.folder / row.relpath for row in rows}

    @guarded
    def summaries(self, user: str, mailbox: str, uids: Sequence[int]) -> dict[int, bytes]:
        name = validate_mailbox(mailbox)
        wanted = sorted(set(uids))
        found: dict[int, bytes] = {}
        with self._open(user, name, lock=False) as box:
            mailbox_id = box.mbx.id
            for uid, data in index.get_summaries(box.conn, mailbox_id, wanted).items():
                if self._summary_current(data):
                    found[uid] = data
            missing = [u for u in wanted if u not in found]
            rows = index.get_messages(box.conn, mailbox_id, missing) if missing else []
            folder = box.folder
        made: dict[int, bytes] = {}
        for row in rows:
            try:
                made[row.uid] = self._summarizer(folder / row.relpath)
            except FileNotFoundError:
                try:  # renamed (flags) or gone since the index was read
                    made[row.uid] = self._summarizer(self._message(user, name, row.uid, True))
                except (FileNotFoundError, MessageNotFound):
                    continue
        if made:
            with self.user_index(user).write() as conn:
                index.put_summaries(conn, mailbox_id, made, checked=True)
            found.update(made)
        return found

    # ------------------------------------------------------------ delivery

    @guarded
    def deliver(self, targets: Sequence[DeliveryTarget], source: Path) -> list[Appended]:
        # The caller read each user's usage for this message (MessageQuota) and left out
        # what does not fit: the store decides in its transaction, on the index totals.
        return self._store_new([(t, source, None) for t in targets], precheck=False)

    @guarded
    def append(
        self,
        user: str,
        mailbox: str,
        source: Path,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
        *,
        quota_bytes: int = 0,
    ) -> Appended:
        target = DeliveryTarget(user, mailbox, clean_flags(flags), quota_bytes=quota_bytes)
        return self._store_new([(target, source, internal_date)])[0]

    @guarded
    def append_many(
        self, user: str, mailbox: str, messages: Sequence[NewMessage], *, quota_bytes: int = 0
    ) -> list[Appended]:
        return self._store_new(
            [
                (
                    DeliveryTarget(user, mailbox, clean_flags(m.flags), quota_bytes=quota_bytes),
                    m.source,
                    m.internal_date,
                )
                for m in messages
            ]
        )

    def _prepare(self, target: DeliveryTarget, source: Path, date: float | None) -> _Prepared:
        name = validate_mailbox(target.mailbox)
        self._ensure(target.user)
        folder = self.folder(target.user, name)
        if not (folder / "cur").is_dir():
            raise MailboxNotFound(name)
        tmp = folder / "tmp" / unique_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            size = write_all(fd, target.header_prefix)
            with source.open("rb") as src:
                while chunk := src.read(CHUNK):
                    size += write_all(fd, chunk)
            os.fsync(fd)
            if date is not None:
                os.utime(fd, (date, date))
            mtime = os.fstat(fd).st_mtime
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        flags = clean_flags(target.flags)
        # ENVELOPE/BODYSTRUCTURE data is parsed once here, while the file is still hot in
        # the page cache, and committed with the index row; summary() is the lazy fallback
        # (index rebuilt, message dropped in by another program).
        try:
            summary: bytes | None = self._summarizer(tmp)
        except Exception:
            log.exception("summary of %s failed; it will be built on first FETCH", tmp.name)
            summary = None
        return _Prepared(target, name, folder, tmp, size, mtime, flags, summary)

    def _precheck_quota(self, items: Sequence[tuple[DeliveryTarget, Path, float | None]]) -> None:
        """Refuse early, before any file is written, what cannot fit; the decision that
        counts is taken again inside the commit transaction."""
        incoming: dict[str, int] = {}
        limits: dict[str, int] = {}
        for target, source, _ in items:
            if target.quota_bytes:
                size = os.stat(source).st_size + len(target.header_prefix)
                incoming[target.user] = incoming.get(target.user, 0) + size
                limits[target.user] = min(
                    limits.get(target.user, target.quota_bytes), target.quota_bytes
                )
        for user, limit in limits.items():
            self._ensure(user)
            self.refresh_usage(user)  # files other programs added count before we decide
            quota.check(self.user_index(user).conn(), user, incoming[user], limit)

    def _store_new(
        self, items: Sequence[tuple[DeliveryTarget, Path, float | None]], *, precheck: bool = True
    ) -> list[Appended]:
        if precheck:
            self._precheck_quota(items)
        prepared: list[_Prepared] = []
        linked: list[Path] = []
        try:
            for target, source, date in items:
                prepared.append(self._prepare(target, source, date))
            locks = [self.lock_path(p.target.user, p.mailbox) for p in prepared]
            with self.locks.hold(locks):
                try:
                    result = self._commit(prepared, linked)
                except BaseException:
                    # Unlinked while the locks are held: a re-scan never adopts a copy
                    # that was refused (quota) or failed to commit.
                    for path in linked:
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                    for d in {p.parent for p in linked}:
                        with contextlib.suppress(OSError):
                            fsync_dir(d)
                    raise
        finally:
            for p in prepared:
                with contextlib.suppress(OSError):
                    os.unlink(p.tmp)
        for user, mailbox in dict.fromkeys((p.target.user, p.mailbox) for p in prepared):
            self._publish(user, mailbox)
        return result

    def _commit(self, prepared: Sequence[_Prepared], linked: list[Path]) -> list[Appended]:
        """Phase two (all target locks held): reserve UIDs, link every copy, fsync,
        commit indexes."""
        rows: dict[tuple[str, str], index.MailboxRow] = {}
        before: dict[tuple[str, str], tuple[int, int]] = {}
        count: dict[tuple[str, str], int] = {}
        for p in prepared:
            key = (p.target.user, p.mailbox)
            if key not in rows:
                conn = self.user_index(p.target.user).conn()
                rows[key] = self._row(conn, p.target.user, p.mailbox, p.folder)
                before[key] = scan.dir_mtimes(p.folder)
            count[key] = count.get(key, 0) + 1
        # The UIDs and the names about to appear are committed first (intent log): a
        # crash then wastes UIDs, never re-uses one, and a re-scan removes the files
        # of this unacknowledged delivery instead of adopting them.
        for p in prepared:
            keywords = [f for f in p.flags if not f.startswith("\\")]
            if keywords:
                self._kw(p.folder).assign(keywords)
        bases: dict[tuple[str, str], list[str]] = {}
        first: dict[tuple[str, str], int] = {}
        made: dict[int, index.MessageRow] = {}
        for user in sorted({u for u, _ in rows}):
            with self.user_index(user).write() as conn:
                for key in rows:
                    if key[0] != user:
                        continue
                    uid = index.reserve_uids(conn, rows[key].id, count[key])
                    first[key] = uid
                    bases[key] = []
                    for i, p in enumerate(prepared):
                        if (p.target.user, p.mailbox) != key:
                            continue
                        base = f"{p.tmp.name},S={p.size},U={uid}"
                        info = info_of(p.flags, self._kw(p.folder).letter_of) if p.flags else ""
                        made[i] = index.MessageRow(
                            uid,
                            0,
                            base,
                            bool(p.flags),
                            info,
                            join_flags(p.flags),
                            p.mtime,
                            p.size,
                        )
                        bases[key].append(base)
                        uid += 1
                    index.add_pending(conn, rows[key].id, bases[key], adopt=False)
        planned = [(p, made[i]) for i, p in enumerate(prepared)]
        try:
            for p, row in planned:
                final = p.folder / row.relpath
                os.link(p.tmp, final)
                linked.append(final)
            for d in dict.fromkeys(path.parent for path in linked):
                fsync_dir(d)
            self._commit_rows(rows, before, planned, bases)
        except BaseException:
            self._undo_pending(rows, bases, first, linked)
            raise
        return [
            Appended(rows[(p.target.user, p.mailbox)].uidvalidity, row.uid) for p, row in planned
        ]

    def _commit_rows(
        self,
        rows: dict[tuple[str, str], index.MailboxRow],
        before: dict[tuple[str, str], tuple[int, int]],
        planned: Sequence[tuple[_Prepared, index.MessageRow]],
        bases: dict[tuple[str, str], list[str]],
    ) -> None:
        by_user: dict[str, list[tuple[_Prepared, index.MessageRow]]] = {}
        for p, row in planned:
            by_user.setdefault(p.target.user, []).append((p, row))
        with contextlib.ExitStack() as stack:
            # Every user's write transaction first (sorted: no deadlock), then the quota
            # decisions inside them, then the rows: all users' copies or none.
            conns = {u: stack.enter_context(self.user_index(u).write()) for u in sorted(by_user)}
            for user, items in by_user.items():
                limits = [p.target.quota_bytes for p, _ in items if p.target.quota_bytes]
                incoming = sum(p.size for p, _ in items)
                quota.check(conns[user], user, incoming, min(limits, default=0))
            for user, items in by_user.items():
                conn = conns[user]
                modseqs: dict[str, int] = {}
                for p, row in items:
                    mbx = rows[(user, p.mailbox)]
                    modseq = modseqs.setdefault(p.mailbox, mbx.highest_modseq + 1)
                    index.insert_message(conn, mbx.id, _replace(row, modseq=modseq))
                    if p.summary is not None:
                        index.put_summaries(conn, mbx.id, {row.uid: p.summary}, checked=False)
                for mailbox, modseq in modseqs.items():
                    key = (user, mailbox)
                    index.set_mailbox_state(conn, rows[key].id, highest_modseq=modseq)
                    top = max(row.uid for p, row in items if p.mailbox == mailbox)
                    index.advance_uidnext(conn, rows[key].id, top + 1)
                    index.clear_pending(conn, rows[key].id, bases[key])
                    folder = next(p.folder for p, _ in items if p.mailbox == mailbox)
                    scan.own_change(conn, rows[key].id, before[key], folder)

    def _undo_pending(
        self,
        rows: dict[tuple[str, str], index.MailboxRow],
        bases: dict[tuple[str, str], list[str]],
        first: dict[tuple[str, str], int],
        linked: list[Path],
    ) -> None:
        """A refused or failed commit (locks still held): its files go, then its intent
        records; a crash in between leaves the records for the next re-scan. When every
        file is gone for good, the reserved UIDs are given back."""
        clean = _remove_files(linked)
        linked.clear()
        for user in sorted({u for u, _ in bases}):
            with contextlib.suppress(OSError, sqlite3.Error), self.user_index(user).write() as conn:
                for key, names in bases.items():
                    if key[0] == user:
                        index.clear_pending(conn, rows[key].id, names)
                        if clean:
                            index.release_uids(conn, rows[key].id, first[key], len(names))

    # ------------------------------------------------------------ flags

    @guarded
    @reserve.frees_space  # \Deleted must be settable on a full disk
    def store_flags(
        self,
        user: str,
        mailbox: str,
        uids: Sequence[int],
        mode: FlagMode,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> FlagResult:
        wanted = clean_flags(flags)
        updated: list[index.MessageRow] = []
        failed: list[int] = []
        renamed: list[tuple[Path, Path]] = []
        with self._open(user, mailbox) as box:
            if mode != "remove":
                box.keywords.assign(f for f in wanted if not f.startswith("\\"))
            modseq = box.mbx.highest_modseq + 1
            before = scan.dir_mtimes(box.folder)
            try:
                for row in index.get_messages(box.conn, box.mbx.id, list(uids)):
                    # RFC 7162 3.1.3: UNCHANGEDSINCE refuses messages changed after it.
                    if unchanged_since is not None and row.modseq > unchanged_since:
                        failed.append(row.uid)
                        continue
                    old = split_flags(row.flags)
                    new = (
                        wanted if mode == "set" else old | wanted if mode == "add" else old - wanted
                    )
                    if new == old:
                        continue
                    info = info_of(new, box.keywords.letter_of)
                    moved = _replace(
                        row, modseq=modseq, in_cur=True, info=info, flags=join_flags(new)
                    )
                    if (row.in_cur, row.info) != (True, info):
                        src, dst = box.folder / row.relpath, box.folder / moved.relpath
                        os.rename(src, dst)
                        renamed.append((dst, src))
                    updated.append(moved)
                if updated:
                    with index.transaction(box.conn):
                        for m in updated:
                            index.update_message(box.conn, box.mbx.id, m)
                        index.set_mailbox_state(box.conn, box.mbx.id, highest_modseq=modseq)
                        scan.own_change(box.conn, box.mbx.id, before, box.folder)
            except BaseException:
                for dst, src in reversed(renamed):
                    with contextlib.suppress(OSError):
                        os.rename(dst, src)
                raise
        if updated or box.changed:
            self._publish(user, box.name)
        return FlagResult(tuple(_info(m) for m in updated), tuple(failed))

    # ------------------------------------------------------------ removal

    def _remove(
        self, user: str, mailbox: str, uids: Sequence[int] | None, only_deleted: bool
    ) -> list[int]:
        with self._open(user, mailbox) as box:
            rows = index.get_messages(box.conn, box.mbx.id, None if uids is None else list(uids))
            if only_deleted:
                rows = [r for r in rows if "\\Deleted" in r.flags.split()]
            if rows:
                self._unlink_rows(box, rows)
        if rows or box.changed:
            self._publish(user, box.name)
        return [r.uid for r in rows]

    def _unlink_rows(self, box: OpenBox, rows: Sequence[index.MessageRow]) -> None:
        modseq = box.mbx.highest_modseq + 1
        before = scan.dir_mtimes(box.folder)
        self._write_floor(box, modseq)
        for r in rows:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(box.folder / r.relpath)
        fsync_dir(box.folder / "cur")
        fsync_dir(box.folder / "new")
        with index.transaction(box.conn):
            index.remove_messages(box.conn, box.mbx.id, [r.uid for r in rows], modseq)
            index.set_mailbox_state(box.conn, box.mbx.id, highest_modseq=modseq)
            scan.own_change(box.conn, box.mbx.id, before, box.folder)

    @guarded
    @reserve.frees_space
    def expunge(self, user: str, mailbox: str, uids: Sequence[int] | None = None) -> list[int]:
        return self._remove(user, mailbox, uids, only_deleted=True)

    @guarded
    @reserve.frees_space
    def delete_messages(self, user: str, mailbox: str, uids: Sequence[int]) -> list[int]:
        return self._remove(user, mailbox, uids, only_deleted=False)

    # ------------------------------------------------------------ copy / move

    @guarded
    def copy(
        self, user: str, src: str, uids: Sequence[int], dst: str, *, quota_bytes: int = 0
    ) -> Copied:
        return self._transfer(user, src, uids, dst, move=False, quota_bytes=quota_bytes)

    @guarded
    @reserve.frees_space  # moving to Trash is how many clients delete
    def move(self, user: str, src: str, uids: Sequence[int], dst: str) -> Copied:
        return self._transfer(user, src, uids, dst, move=True)

    def _transfer(
        self,
        user: str,
        src: str,
        uids: Sequence[int],
        dst: str,
        *,
        move: bool,
        quota_bytes: int = 0,
    ) -> Copied:
        """COPY links, MOVE renames each file into the destination under a name that
        carries its new UID; one index transaction then adds the destination rows and
        (MOVE) removes the source rows. Before the first file appears the destination's
        UIDs and the new names are committed (intent log), so after a crash at any
        point: a COPY shows all its copies or none (a re-scan removes the files of a
        COPY that did not commit), a MOVE has every message in exactly one of the two
        mailboxes (a moved file is adopted with its reserved UID), and no UID is ever
        handed out twice. A MOVE into the source mailbox gives the message a new UID
        (RFC 9051 2.3.1.1: the old one is expunged, never re-used)."""
        src, dst = validate_mailbox(src), validate_mailbox(dst)
        self._ensure(user)
        limit = 0 if move else quota_bytes  # a move leaves usage unchanged
        if limit:
            self.refresh_usage(user)
        locks = [self.lock_path(user, src), self.lock_path(user, dst)]
        with self.locks.hold(locks), self._open(user, src) as sbox, self._open(user, dst) as dbox:
            rows = index.get_messages(sbox.conn, sbox.mbx.id, list(uids))
            if not rows:
                return Copied(dbox.mbx.uidvalidity, ())
            conn = dbox.conn  # one user, one index: sbox.conn is the same connection
            incoming = sum(r.size for r in rows)
            quota.check(conn, user, incoming, limit)  # early: nothing linked yet
            dbox.keywords.assign(f for r in rows for f in r.flags.split() if not f.startswith("\\"))
            same = src == dst
            if same:
                sbox = dbox
            smodseq = sbox.mbx.highest_modseq + 1
            dmodseq = smodseq if same else dbox.mbx.highest_modseq + 1
            before_s = scan.dir_mtimes(sbox.folder)
            before_d = before_s if same else scan.dir_mtimes(dbox.folder)
            if move:
                self._write_floor(sbox, smodseq)  # a rebuild never re-uses the moved UIDs
            with index.transaction(conn):
                uid = index.reserve_uids(conn, dbox.mbx.id, len(rows))
                plan: list[tuple[index.MessageRow, index.MessageRow]] = []
                for r in rows:
                    base = f"{unique_name()},S={r.size},U={uid}"
                    info = info_of(split_flags(r.flags), dbox.keywords.letter_of)
                    plan.append(
                        (
                            r,
                            index.MessageRow(
                                uid, dmodseq, base, True, info, r.flags, r.internal_date, r.size
                            ),
                        )
                    )
                    uid += 1
                bases = [row.base for _, row in plan]
                index.add_pending(conn, dbox.mbx.id, bases, adopt=move)
            done: list[tuple[Path, Path]] = []
            try:
                for r, row in plan:
                    old, new = sbox.folder / r.relpath, dbox.folder / row.relpath
                    if move:
                        os.rename(old, new)  # atomic: in one mailbox or the other
                    else:
                        link_or_copy(old, new)
                    done.append((old, new))
                touched = {dbox.folder / "cur"}
                if move:
                    touched |= {(sbox.folder / r.relpath).parent for r in rows}
                for d in touched:
                    fsync_dir(d)
                with index.transaction(conn):
                    quota.check(conn, user, incoming, limit)  # RFC 9208 4.3.1: decides
                    for r, row in plan:
                        index.insert_message(conn, dbox.mbx.id, row)
                        index.copy_summary(conn, sbox.mbx.id, r.uid, dbox.mbx.id, row.uid)
                    index.set_mailbox_state(conn, dbox.mbx.id, highest_modseq=dmodseq)
                    index.advance_uidnext(conn, dbox.mbx.id, uid)
                    index.clear_pending(conn, dbox.mbx.id, bases)
                    if move:
                        index.remove_messages(conn, sbox.mbx.id, [r.uid for r in rows], smodseq)
                        index.set_mailbox_state(conn, sbox.mbx.id, highest_modseq=smodseq)
                        if not same:
                            scan.own_change(conn, sbox.mbx.id, before_s, sbox.folder)
                    scan.own_change(conn, dbox.mbx.id, before_d, dbox.folder)
            except BaseException:
                self._undo_transfer(conn, dbox.mbx.id, bases, plan[0][1].uid, done, move)
                raise
        self._publish(user, dst)
        if move and not same:
            self._publish(user, src)
        return Copied(dbox.mbx.uidvalidity, tuple((r.uid, row.uid) for r, row in plan))

    @staticmethod
    def _undo_transfer(
        conn: sqlite3.Connection,
        mailbox_id: int,
        bases: list[str],
        first: int,
        done: list[tuple[Path, Path]],
        move: bool,
    ) -> None:
        """A failed COPY/MOVE (locks still held): moved files go back, copies go, then
        the intent records; a crash in between leaves the records to the next re-scan.
        When every file is back or gone for good, the reserved UIDs are given back."""
        if move:
            clean = True
            for old, new in reversed(done):
                try:
                    os.rename(new, old)
                except OSError:
                    clean = False
            for d in {p.parent for pair in done for p in pair}:
                try:
                    fsync_dir(d)
                except OSError:
                    clean = False
        else:
            clean = _remove_files([new for _, new in done])
        with contextlib.suppress(OSError, sqlite3.Error), index.transaction(conn):
            index.clear_pending(conn, mailbox_id, bases)
            if clean:
                index.release_uids(conn, mailbox_id, first, len(bases))

    # ------------------------------------------------------------ upkeep

    @guarded
    def cleanup(self, user: str) -> int:
        """Remove tmp/ files older than 36 hours in every folder of ``user``."""
        removed = 0
        for info in self.list_mailboxes(user):
            if info.selectable:
                removed += clean_tmp(self.folder(user, info.name))
        return removed


# ---------------------------------------------------------------- helpers


def _remove_files(paths: Sequence[Path]) -> bool:
    """Unlink ``paths`` and fsync their directories; False when one may remain."""
    clean = True
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            clean = False
    for d in {p.parent for p in paths}:
        try:
            fsync_dir(d)
        except OSError:
            clean = False
    return clean


def _status(
    mbx: index.MailboxRow, messages: int, unseen: int, size: int, deleted: int, recent: int = 0
) -> MailboxStatus:
    return MailboxStatus(
        name=mbx.name,
        uidvalidity=mbx.uidvalidity,
        uidnext=mbx.uidnext,
        highest_modseq=mbx.highest_modseq,
        messages=messages,
        unseen=unseen,
        size=size,
        deleted=deleted,
        recent=recent,
    )


def _uids_above(messages: Sequence[MessageInfo], floor: int) -> list[int]:
    uids = []
    for m in reversed(messages):
        if m.uid <= floor:
            break
        uids.append(m.uid)
    return uids


def _info(row: index.MessageRow) -> MessageInfo:
    return MessageInfo(
        row.uid, row.modseq, split_flags(row.flags), row.internal_date, row.size, row.base
    )
