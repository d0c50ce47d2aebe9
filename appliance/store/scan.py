"""Reconcile a mailbox's index rows with its cur/ and new/ directories.

Freshness: the index records the mtimes of new/ and cur/ seen before its last listing
and the time of that listing. A directory is listed again only when its mtime changed,
or when the recorded mtime was within ``MTIME_SLACK`` of the listing (a change in the
same timestamp tick could otherwise go unseen). So a quiet mailbox costs two stat()
calls per snapshot, whatever its size. After a change the store made itself (lock
held, index matching the directories just before), the new mtimes are trusted at once
(``own_change``) and one verifying listing follows when the tick is ``MTIME_SLACK``
old: flag changes in a 100k-message cur/ do not make every following read list it.

Rules when listing (the caller holds the mailbox lock):
- a file whose unique base matches a row but whose info differs was renamed by
  another Maildir program (flags changed): flags are re-read, MODSEQ bumped;
- a row whose file is gone was expunged by another program: recorded as expunged;
- a file without a row is adopted: it keeps the ``U=`` UID of its name when that UID
  is free and not below UIDNEXT (a file another program dropped in, or a rebuild),
  otherwise it gets a fresh UID and is renamed to carry it; when two files claim one
  UID, the earlier arrival keeps it and the later gets a fresh one;
- files named in the index's intent log (``pending``) belong to an operation that
  died between reserving their UIDs and committing their rows (the log is written
  and cleared under the mailbox lock this scan holds): a COPY's, APPEND's or
  delivery's are removed (nothing of it was acknowledged, so no partial copy shows),
  a MOVE's are adopted with their reserved UIDs (the source lost them already).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.store import index
from appliance.store.folder import Keywords, fsync_dir
from appliance.store.names import (
    LETTER_OF_FLAG,
    cur_name,
    flags_of,
    join_flags,
    parse_filename,
    split_flags,
    with_uid,
)

log = logging.getLogger(__name__)

MTIME_SLACK = 2.0  # seconds
_TIME = re.compile(r"(\d+)\.M(\d+)")


@dataclass(frozen=True)
class _OnDisk:
    in_cur: bool
    name: str
    info: str


def dir_mtimes(folder: Path) -> tuple[int, int]:
    return os.stat(folder / "new").st_mtime_ns, os.stat(folder / "cur").st_mtime_ns


def _stale(mtime: int, recorded: int, mbx: index.MailboxRow, now: float) -> bool:
    if mtime != recorded:
        return True
    if mbx.verify_at:
        # Recorded after our own change: trusted until the tick it fell in is old
        # enough to be sure no other program wrote in that same tick.
        return now >= mbx.verify_at
    return mtime > (mbx.scanned_at - MTIME_SLACK) * 1e9


def is_fresh(mbx: index.MailboxRow, mtimes: tuple[int, int]) -> bool:
    now = time.time()
    return not (
        _stale(mtimes[0], mbx.new_mtime, mbx, now) or _stale(mtimes[1], mbx.cur_mtime, mbx, now)
    )


def own_change(
    conn: sqlite3.Connection, mailbox_id: int, before: tuple[int, int], folder: Path
) -> None:
    """Record the directory mtimes after a change this store made (mailbox lock held,
    inside the write transaction). When the index matched the directories right before
    the change, the new mtimes are trusted at once, so the next read need not list a
    large cur/ again; one listing follows once the timestamp tick is old enough.
    """
    row = conn.execute(
        "SELECT new_mtime, cur_mtime FROM mailboxes WHERE id = ?", (mailbox_id,)
    ).fetchone()
    if row is None or (row[0], row[1]) != before:
        return  # something else changed the folder too: the next read lists it
    after = dir_mtimes(folder)
    conn.execute(
        "UPDATE mailboxes SET new_mtime = ?, cur_mtime = ?, verify_at = ? WHERE id = ?",
        (*after, max(after) / 1e9 + MTIME_SLACK, mailbox_id),
    )


def _list(folder: Path, subs: tuple[bool, ...]) -> dict[str, _OnDisk]:
    disk: dict[str, _OnDisk] = {}
    for in_cur in subs:
        for name in os.listdir(folder / ("cur" if in_cur else "new")):
            if name.startswith("."):
                continue
            base, _, info = name.partition(":2,")
            if in_cur or base not in disk:
                disk[base] = _OnDisk(in_cur, name, info if in_cur else "")
    return disk


def sync(
    conn: sqlite3.Connection,
    mbx: index.MailboxRow,
    folder: Path,
    keywords: Keywords,
    *,
    force: bool = False,
    rebuild: bool = False,
) -> bool:
    """Bring the index rows of ``mbx`` in line with the folder. Returns True when
    messages appeared, disappeared or changed flags."""
    started = time.time()
    mtimes = dir_mtimes(folder)
    # Files of an operation that died between reserving UIDs and committing rows
    # (we hold the lock, so no live operation has records here): list everything.
    pending = index.get_pending(conn, mbx.id)
    subs = tuple(
        in_cur
        for in_cur, mtime, recorded in (
            (False, mtimes[0], mbx.new_mtime),
            (True, mtimes[1], mbx.cur_mtime),
        )
        if force or rebuild or pending or _stale(mtime, recorded, mbx, started)
    )
    if not subs:
        return False
    disk = _list(folder, subs)
    keywords.refresh()
    with index.transaction(conn):
        current = index.get_mailbox(conn, mbx.name) or mbx
        pending = index.get_pending(conn, current.id)
        if pending:
            _settle_pending(conn, current.id, folder, disk, pending)
        rows = conn.execute(
            "SELECT uid, modseq, base, in_cur, info, flags, internal_date, size"
            " FROM messages WHERE mailbox_id = ? AND in_cur IN (?, ?)",
            (current.id, int(subs[0]), int(subs[-1])),
        ).fetchall()
        modseq = current.highest_modseq + 1
        expunged: list[int] = []
        updated: list[index.MessageRow] = []
        for uid, row_modseq, base, in_cur, info, flags, date, size in rows:
            found = disk.pop(base, None)
            if found is None:
                expunged.append(uid)
            elif (found.in_cur, found.info) != (bool(in_cur), info):
                old = split_flags(flags)
                index_only = {
                    f for f in old if f not in LETTER_OF_FLAG and f not in keywords.letter_of
                }
                new = flags_of(found.info, keywords.keyword_of) | index_only
                updated.append(
                    index.MessageRow(
                        uid,
                        modseq if new != old else row_modseq,
                        base,
                        found.in_cur,
                        found.info,
                        join_flags(new),
                        date,
                        size,
                    )
                )
        added: list[index.MessageRow] = []
        if disk:
            taken = {
                r[0]
                for r in conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ?", (current.id,)
                )
            } - set(expunged)
            trusted = {base for base, adopt in pending.items() if adopt}
            added = _adopt(folder, disk, taken, current.uidnext, rebuild, keywords, modseq, trusted)
        else:
            taken = set()
        if expunged:
            index.remove_messages(conn, current.id, expunged, modseq)
        for m in updated:
            index.update_message(conn, current.id, m)
        for m in added:
            index.insert_message(conn, current.id, m)
        changed = bool(expunged or updated or added)
        top = max([current.uidnext - 1, *(m.uid for m in added)])
        if rebuild:
            top = max([top, *taken])
        if changed or rebuild:
            index.set_mailbox_state(
                conn,
                current.id,
                uidnext=top + 1,
                highest_modseq=modseq if changed else None,
                recent_uid=top if rebuild else None,
            )
        index.set_scan_state(conn, current.id, *mtimes, started)
    if changed:
        log.info(
            "store=sync folder=%s adopted=%d expunged=%d updated=%d",
            folder,
            len(added),
            len(expunged),
            len(updated),
        )
    return changed


def _settle_pending(
    conn: sqlite3.Connection,
    mailbox_id: int,
    folder: Path,
    disk: dict[str, _OnDisk],
    pending: dict[str, bool],
) -> None:
    """Finish the operations that died with intent records here (lock held, inside
    the write transaction): files of a COPY, APPEND or delivery are removed (none of
    them was acknowledged: all copies or none), files of a MOVE stay in ``disk`` and
    are adopted with their reserved UIDs (each message is in exactly one mailbox)."""
    removed = False
    for base, adopt in pending.items():
        entry = disk.get(base)
        if entry is None or adopt:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / ("cur" if entry.in_cur else "new") / entry.name)
            removed = True
        del disk[base]
    if removed:
        for sub in ("new", "cur"):
            fsync_dir(folder / sub)  # gone for good before the records are
    index.clear_pending(conn, mailbox_id, None)
    log.info(
        "store=unfinished-operation folder=%s removed=%d adopted=%d",
        folder,
        sum(1 for a in pending.values() if not a),
        sum(1 for a in pending.values() if a),
    )


def _arrival(name: str) -> tuple[int, int, str]:
    """Order of arrival from a Maildir unique name (``<sec>.M<usec>...``); names in
    another form sort after those and by name."""
    match = _TIME.match(name)
    if match is None:
        return (1 << 62, 0, name)
    return (int(match.group(1)), int(match.group(2)), name)


def _adopt(
    folder: Path,
    disk: dict[str, _OnDisk],
    taken: set[int],
    uidnext: int,
    rebuild: bool,
    keywords: Keywords,
    modseq: int,
    trusted: set[str] | frozenset[str] = frozenset(),
) -> list[index.MessageRow]:
    if not disk:
        return []
    keep: list[tuple[int, _OnDisk]] = []
    fresh: list[_OnDisk] = []
    parsed = {e.name: parse_filename(e.name) for e in disk.values()}
    # Two files claiming one UID (copied by hand, or left by an older version after a
    # crash): the earlier arrival keeps it, the later gets a fresh UID; no other
    # message is renumbered (RFC 9051 2.3.1.1: a UID is never re-used).
    order = sorted(disk.values(), key=lambda e: (parsed[e.name].uid or 0, _arrival(e.name)))
    for entry in order:
        name = parsed[entry.name]
        uid = name.uid
        if (
            uid is not None
            and uid not in taken
            and (rebuild or uid >= uidnext or name.base in trusted)
        ):
            taken.add(uid)
            keep.append((uid, entry))
        else:
            fresh.append(entry)
    next_uid = max([uidnext - 1, *taken]) + 1
    added: list[index.MessageRow] = []
    renamed = False
    for uid, entry in [*keep, *((0, e) for e in sorted(fresh, key=lambda e: _arrival(e.name)))]:
        sub = "cur" if entry.in_cur else "new"
        path = folder / sub / entry.name
        base = parsed[entry.name].base
        try:
            st = os.stat(path)
            if uid == 0:
                uid = next_uid
                next_uid += 1
                base = with_uid(base, uid, st.st_size)
                target = cur_name(base, entry.info) if entry.in_cur else base
                os.rename(path, folder / sub / target)
                renamed = True
        except FileNotFoundError:
            continue  # removed while we looked
        flags = flags_of(entry.info, keywords.keyword_of)
        added.append(
            index.MessageRow(
                uid,
                modseq,
                base,
                entry.in_cur,
                entry.info,
                join_flags(flags),
                st.st_mtime,
                st.st_size,
            )
        )
    if renamed:
        for sub in ("new", "cur"):
            fsync_dir(folder / sub)
    added.sort(key=lambda m: m.uid)
    return added


def settle_new(conn: sqlite3.Connection, mailbox_id: int, folder: Path) -> None:
    """Move seen messages from new/ to cur/, as Maildir readers do (mailbox lock held),
    so new/ stays short and the re-scan after a delivery lists only a few names."""
    rows = conn.execute(
        "SELECT uid, base FROM messages WHERE mailbox_id = ? AND in_cur = 0", (mailbox_id,)
    ).fetchall()
    before = dir_mtimes(folder)
    moved = []
    try:
        for uid, base in rows:
            with contextlib.suppress(FileNotFoundError):
                os.rename(folder / "new" / base, folder / "cur" / cur_name(base, ""))
                moved.append((uid, base))
        if moved:
            with index.transaction(conn):
                conn.executemany(
                    "UPDATE messages SET in_cur = 1, info = '' WHERE mailbox_id = ? AND uid = ?",
                    [(mailbox_id, uid) for uid, _ in moved],
                )
                own_change(conn, mailbox_id, before, folder)
    except BaseException:
        # Not recorded (a full disk: a rename needing a directory block, or the index
        # write): put the files back where the index has them, so reads keep finding
        # them without a re-scan that could not be saved.
        for _, base in moved:
            with contextlib.suppress(OSError):
                os.rename(folder / "cur" / cur_name(base, ""), folder / "new" / base)
        raise
