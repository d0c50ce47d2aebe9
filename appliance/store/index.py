"""The per-user message index: SQLite in WAL mode, ``<user>/pillarbox-index.sqlite``.

Why SQLite per user (and not a compact file per mailbox): one transaction covers every
mailbox of the user, so the rows of a COPY/MOVE or a multi-folder delivery commit
together (what a crash leaves on disk is settled by the intent log, ``pending``:
see ``add_pending`` and ``scan.py``); WAL lets
IMAP readers proceed while delivery writes; a crash mid-write leaves the last committed
state, never a half-written record (``synchronous=FULL``: a committed UID, flag or
MODSEQ survives power loss). A 100k-message snapshot is one indexed range scan of a
``WITHOUT ROWID`` table keyed by (mailbox, uid); summaries live in their own table so
that scan stays narrow.

The index is a cache of the Maildir (``scan.py`` re-derives it): a missing file is
recreated and a corrupt one (quick_check fails or "not a database") is moved aside to
``*.corrupt-<time>`` and rebuilt from the folders, whose file names carry the UIDs.

Usage: every mailbox row carries the byte and message totals of its messages, kept by
triggers on ``messages`` in the same transaction as the row change. Every writer
(delivery, APPEND, COPY, expunge, a re-scan adopting or dropping foreign files, a
rebuild) goes through that table, so a user's usage is one read of a few mailbox rows
(:func:`usage`), never a walk over messages or files. An index written before the
totals existed gets them counted once when it is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INDEX_FILE = "pillarbox-index.sqlite"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    recent_uid INTEGER NOT NULL DEFAULT 0,
    vanished_floor INTEGER NOT NULL DEFAULT 0,
    new_mtime INTEGER NOT NULL DEFAULT -1,
    cur_mtime INTEGER NOT NULL DEFAULT -1,
    scanned_at REAL NOT NULL DEFAULT 0,
    verify_at REAL NOT NULL DEFAULT 0,
    total_bytes INTEGER NOT NULL DEFAULT 0,
    total_messages INTEGER NOT NULL DEFAULT 0,
    uid_reserved INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    base TEXT NOT NULL,
    in_cur INTEGER NOT NULL,
    info TEXT NOT NULL,
    flags TEXT NOT NULL,
    seen INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    internal_date REAL NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);
CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    mailbox_id INTEGER NOT NULL,
    base TEXT NOT NULL,
    adopt INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, base)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS summaries (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
"""

# The per-mailbox totals follow every row change, inside the changing transaction.
USAGE_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS usage_insert AFTER INSERT ON messages BEGIN
    UPDATE mailboxes SET total_bytes = total_bytes + NEW.size,
        total_messages = total_messages + 1 WHERE id = NEW.mailbox_id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS usage_delete AFTER DELETE ON messages BEGIN
    UPDATE mailboxes SET total_bytes = total_bytes - OLD.size,
        total_messages = total_messages - 1 WHERE id = OLD.mailbox_id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS usage_update AFTER UPDATE OF size, mailbox_id ON messages
    BEGIN
    UPDATE mailboxes SET total_bytes = total_bytes - OLD.size,
        total_messages = total_messages - 1 WHERE id = OLD.mailbox_id;
    UPDATE mailboxes SET total_bytes = total_bytes + NEW.size,
        total_messages = total_messages + 1 WHERE id = NEW.mailbox_id;
    END""",
)

MESSAGE_COLUMNS = "uid, modseq, base, in_cur, info, flags, internal_date, size"


@dataclass(frozen=True)
class MailboxRow:
    id: int
    name: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    recent_uid: int
    vanished_floor: int
    new_mtime: int
    cur_mtime: int
    scanned_at: float
    verify_at: float = 0.0  # > 0: mtimes recorded after our own change; list again then


@dataclass(frozen=True)
class MessageRow:
    uid: int
    modseq: int
    base: str
    in_cur: bool
    info: str
    flags: str  # space-separated, sorted
    internal_date: float
    size: int

    @property
    def relpath(self) -> str:
        return f"cur/{self.base}:2,{self.info}" if self.in_cur else f"new/{self.base}"


def message_row(row: tuple[int, int, str, int, str, str, float, int]) -> MessageRow:
    return MessageRow(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7])


class IndexCorrupt(Exception):
    pass


class _Local(threading.local):
    conn: sqlite3.Connection | None = None
    inode: int = -1


class Index:
    """Per-thread connections to one user's index, reopened when the file is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = _Local()
        self._open_lock = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        local = self._local
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = -1
        if local.conn is not None and inode == local.inode:
            return local.conn
        if local.conn is not None:
            local.conn.close()
            local.conn = None
        with self._open_lock:
            conn = self._open()
        local.conn = conn
        local.inode = os.stat(self.path).st_ino
        return conn

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            # A stale WAL must not be replayed into a fresh database.
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        try:
            return self._connect()
        except sqlite3.OperationalError:
            raise  # disk full, locked, I/O: not corruption, never a reason to rebuild
        except sqlite3.DatabaseError as exc:
            log.error("index=corrupt path=%s error=%s action=rebuild", self.path, exc)
            self.quarantine()
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            result = conn.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {result}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"unknown index version {version}")
            conn.executescript(SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(mailboxes)")}
            if "verify_at" not in columns:  # indexes written before the column existed
                conn.execute("ALTER TABLE mailboxes ADD COLUMN verify_at REAL NOT NULL DEFAULT 0")
            _add_usage(conn)
            if version != SCHEMA_VERSION:  # a write: a full disk must not stop reads
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def quarantine(self) -> None:
        stamp = int(time.time())
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            with contextlib.suppress(FileNotFoundError):
                src.rename(src.with_name(f"{src.name}.corrupt-{stamp}"))

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn()
        with transaction(conn):
            yield conn

    def close(self) -> None:
        if self._local.conn is not None:
            self._local.conn.close()
            self._local.conn = None


def _add_usage(conn: sqlite3.Connection) -> None:
    """Give an index the usage totals and their triggers (once; several processes may
    open the same old index at the same moment, so the check runs inside the write
    transaction)."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    if all(f"usage_{op}" in names for op in ("insert", "delete", "update")):
        return
    with transaction(conn):
        columns = {r[1] for r in conn.execute("PRAGMA table_info(mailboxes)")}
        for column in ("total_bytes", "total_messages"):
            if column not in columns:
                conn.execute(
                    f"ALTER TABLE mailboxes ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                )
        for trigger in USAGE_TRIGGERS:
            conn.execute(trigger)
        recount(conn)


def recount(conn: sqlite3.Connection) -> None:
    """Set every mailbox's totals from its message rows (caller holds a write
    transaction): used when the totals are added to an older index."""
    conn.execute(
        "UPDATE mailboxes SET"
        " total_bytes = (SELECT coalesce(sum(size), 0) FROM messages"
        " WHERE mailbox_id = mailboxes.id),"
        " total_messages = (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id)"
    )


def usage(conn: sqlite3.Connection) -> tuple[int, int]:
    """(bytes, messages) of every mailbox in this user's index: a read of the mailbox
    rows, whatever the number of messages."""
    row = conn.execute(
        "SELECT coalesce(sum(total_bytes), 0), coalesce(sum(total_messages), 0) FROM mailboxes"
    ).fetchone()
    return int(row[0]), int(row[1])


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; rolled back on any error, including a failed COMMIT."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A consistent read view across several SELECTs (WAL snapshot)."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


# ------------------------------------------------------------------ queries


def get_mailbox(conn: sqlite3.Connection, name: str) -> MailboxRow | None:
    row = conn.execute(
        "SELECT id, name, uidvalidity, uidnext, highest_modseq, recent_uid, vanished_floor,"
        " new_mtime, cur_mtime, scanned_at, verify_at FROM mailboxes WHERE name = ?",
        (name,),
    ).fetchone()
    return MailboxRow(*row) if row else None


def insert_mailbox(
    conn: sqlite3.Connection,
    name: str,
    uidvalidity: int,
    uidnext: int,
    modseq: int,
    vanished_floor: int = 0,
) -> MailboxRow:
    conn.execute(
        "INSERT INTO mailboxes (name, uidvalidity, uidnext, highest_modseq, recent_uid,"
        " vanished_floor) VALUES (?, ?, ?, ?, ?, ?)",
        (name, uidvalidity, uidnext, modseq, 0, vanished_floor),
    )
    row = get_mailbox(conn, name)
    assert row is not None
    return row


def drop_mailbox(conn: sqlite3.Connection, mailbox_id: int) -> None:
    for table in ("messages", "expunged", "summaries", "pending"):
        conn.execute(f"DELETE FROM {table} WHERE mailbox_id = ?", (mailbox_id,))  # noqa: S608
    conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))


def get_messages(
    conn: sqlite3.Connection, mailbox_id: int, uids: list[int] | None = None
) -> list[MessageRow]:
    if uids is None:
        rows = conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? ORDER BY uid",  # noqa: S608
            (mailbox_id,),
        ).fetchall()
        return [message_row(r) for r in rows]
    result: list[MessageRow] = []
    wanted = sorted(set(uids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?"  # noqa: S608
            f" AND uid IN ({marks}) ORDER BY uid",
            (mailbox_id, *chunk),
        ).fetchall()
        result.extend(message_row(r) for r in rows)
    return result


def insert_message(conn: sqlite3.Connection, mailbox_id: int, m: MessageRow) -> None:
    conn.execute(
        "INSERT INTO messages (mailbox_id, uid, modseq, base, in_cur, info, flags, seen,"
        " deleted, internal_date, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            mailbox_id,
            m.uid,
            m.modseq,
            m.base,
            int(m.in_cur),
            m.info,
            m.flags,
            int("\\Seen" in m.flags.split()),
            int("\\Deleted" in m.flags.split()),
            m.internal_date,
            m.size,
        ),
    )


def update_message(conn: sqlite3.Connection, mailbox_id: int, m: MessageRow) -> None:
    conn.execute(
        "UPDATE messages SET modseq = ?, base = ?, in_cur = ?, info = ?, flags = ?, seen = ?,"
        " deleted = ? WHERE mailbox_id = ? AND uid = ?",
        (
            m.modseq,
            m.base,
            int(m.in_cur),
            m.info,
            m.flags,
            int("\\Seen" in m.flags.split()),
            int("\\Deleted" in m.flags.split()),
            mailbox_id,
            m.uid,
        ),
    )


def remove_messages(
    conn: sqlite3.Connection, mailbox_id: int, uids: list[int], modseq: int
) -> None:
    conn.executemany(
        "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", [(mailbox_id, u) for u in uids]
    )
    conn.executemany(
        "DELETE FROM summaries WHERE mailbox_id = ? AND uid = ?", [(mailbox_id, u) for u in uids]
    )
    conn.executemany(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(mailbox_id, u, modseq) for u in uids],
    )


def set_mailbox_state(
    conn: sqlite3.Connection,
    mailbox_id: int,
    *,
    uidnext: int | None = None,
    highest_modseq: int | None = None,
    recent_uid: int | None = None,
) -> None:
    sets: list[str] = []
    args: list[int] = []
    for column, value in (
        ("uidnext", uidnext),
        ("highest_modseq", highest_modseq),
        ("recent_uid", recent_uid),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            args.append(value)
    if sets:
        conn.execute(
            f"UPDATE mailboxes SET {', '.join(sets)} WHERE id = ?",  # noqa: S608
            (*args, mailbox_id),
        )


def mailbox_counts(
    conn: sqlite3.Connection, mailbox_id: int, recent_uid: int
) -> tuple[int, int, int, int, int]:
    """(messages, unseen, bytes, deleted, above ``recent_uid``) of one mailbox."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(1 - seen), 0), coalesce(sum(size), 0),"
        " coalesce(sum(deleted), 0), coalesce(sum(uid > ?), 0)"
        " FROM messages WHERE mailbox_id = ?",
        (recent_uid, mailbox_id),
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4])


def changed_since(conn: sqlite3.Connection, mailbox_id: int, modseq: int) -> list[MessageRow]:
    """Rows whose MODSEQ is above ``modseq``, ascending UID."""
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages"  # noqa: S608
        " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
        (mailbox_id, modseq),
    ).fetchall()
    return [message_row(r) for r in rows]


def present_uids(conn: sqlite3.Connection, mailbox_id: int) -> set[int]:
    return {
        int(r[0])
        for r in conn.execute("SELECT uid FROM messages WHERE mailbox_id = ?", (mailbox_id,))
    }


def expunged_since(conn: sqlite3.Connection, mailbox_id: int, modseq: int) -> tuple[int, ...]:
    """UIDs expunged with a MODSEQ above ``modseq``, ascending."""
    return tuple(
        int(r[0])
        for r in conn.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
            (mailbox_id, modseq),
        )
    )


# ------------------------------------------------------------------ summaries


def get_summaries(conn: sqlite3.Connection, mailbox_id: int, uids: list[int]) -> dict[int, bytes]:
    """The cached summaries of ``uids`` that exist (read in chunks of 500)."""
    found: dict[int, bytes] = {}
    wanted = sorted(set(uids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for uid, data in conn.execute(
            f"SELECT uid, data FROM summaries WHERE mailbox_id = ? AND uid IN ({marks})",  # noqa: S608
            (mailbox_id, *chunk),
        ):
            found[int(uid)] = bytes(data)
    return found


def put_summaries(
    conn: sqlite3.Connection, mailbox_id: int, summaries: dict[int, bytes], *, checked: bool
) -> None:
    """Cache summaries (caller holds a write transaction). ``checked``: only for rows
    that still exist (a summary made outside the transaction may outlive its message)."""
    if checked:
        conn.executemany(
            "INSERT OR REPLACE INTO summaries (mailbox_id, uid, data)"
            " SELECT ?, ?, ? WHERE EXISTS"
            " (SELECT 1 FROM messages WHERE mailbox_id = ? AND uid = ?)",
            [(mailbox_id, u, d, mailbox_id, u) for u, d in summaries.items()],
        )
    else:
        conn.executemany(
            "INSERT OR REPLACE INTO summaries (mailbox_id, uid, data) VALUES (?, ?, ?)",
            [(mailbox_id, u, d) for u, d in summaries.items()],
        )


def copy_summary(
    conn: sqlite3.Connection, src_mailbox: int, src_uid: int, dst_mailbox: int, dst_uid: int
) -> None:
    """A copied message keeps its summary (caller holds a write transaction)."""
    conn.execute(
        "INSERT OR IGNORE INTO summaries (mailbox_id, uid, data)"
        " SELECT ?, ?, data FROM summaries WHERE mailbox_id = ? AND uid = ?",
        (dst_mailbox, dst_uid, src_mailbox, src_uid),
    )


# ------------------------------------------------------------------ reservations


def reserve_uids(conn: sqlite3.Connection, mailbox_id: int, count: int) -> int:
    """Reserve ``count`` UIDs at or above UIDNEXT and every earlier reservation (caller
    holds the mailbox lock and a write transaction); returns the first. Committed
    before any file named with one of them appears, so a crash wastes UIDs and never
    hands one out twice. UIDNEXT itself moves only with the rows (:func:`advance_uidnext`):
    RFC 9051 2.3.1.1, it changes only when messages are added."""
    try:
        row = conn.execute(
            "SELECT uidnext, uid_reserved FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
    except sqlite3.OperationalError:  # an index from before the column (added here, a write)
        conn.execute("ALTER TABLE mailboxes ADD COLUMN uid_reserved INTEGER NOT NULL DEFAULT 0")
        row = conn.execute(
            "SELECT uidnext, uid_reserved FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
    if row is None:
        raise sqlite3.IntegrityError(f"no mailbox {mailbox_id}")
    first = max(int(row[0]), int(row[1]))
    conn.execute("UPDATE mailboxes SET uid_reserved = ? WHERE id = ?", (first + count, mailbox_id))
    return first


def advance_uidnext(conn: sqlite3.Connection, mailbox_id: int, uidnext: int) -> None:
    """Raise UIDNEXT to ``uidnext`` (in the transaction that adds the rows)."""
    conn.execute(
        "UPDATE mailboxes SET uidnext = max(uidnext, ?) WHERE id = ?", (uidnext, mailbox_id)
    )


def release_uids(conn: sqlite3.Connection, mailbox_id: int, first: int, count: int) -> None:
    """Give back UIDs reserved by an operation that failed cleanly, when no file with
    one of them is left and nothing was reserved after them (mailbox lock held)."""
    conn.execute(
        "UPDATE mailboxes SET uid_reserved = ? WHERE id = ? AND uid_reserved = ?",
        (first, mailbox_id, first + count),
    )


def add_pending(
    conn: sqlite3.Connection, mailbox_id: int, bases: list[str], *, adopt: bool
) -> None:
    """Record the files an operation is about to place in a mailbox (the intent log),
    in the transaction that reserves their UIDs. The transaction that adds their rows
    removes the records (:func:`clear_pending`); records a re-scan finds under the
    mailbox lock belong to an operation that died: its files are removed (``adopt``
    false: COPY, APPEND, delivery) or kept with their reserved UIDs (MOVE)."""
    conn.executemany(
        "INSERT OR REPLACE INTO pending (mailbox_id, base, adopt) VALUES (?, ?, ?)",
        [(mailbox_id, b, int(adopt)) for b in bases],
    )


def clear_pending(conn: sqlite3.Connection, mailbox_id: int, bases: list[str] | None) -> None:
    if bases is None:
        conn.execute("DELETE FROM pending WHERE mailbox_id = ?", (mailbox_id,))
        return
    conn.executemany(
        "DELETE FROM pending WHERE mailbox_id = ? AND base = ?", [(mailbox_id, b) for b in bases]
    )


def get_pending(conn: sqlite3.Connection, mailbox_id: int) -> dict[str, bool]:
    """Base name -> adopt, for the files of unfinished operations in a mailbox."""
    return {
        str(base): bool(adopt)
        for base, adopt in conn.execute(
            "SELECT base, adopt FROM pending WHERE mailbox_id = ?", (mailbox_id,)
        )
    }


def set_scan_state(
    conn: sqlite3.Connection, mailbox_id: int, new_mtime: int, cur_mtime: int, at: float
) -> None:
    conn.execute(
        "UPDATE mailboxes SET new_mtime = ?, cur_mtime = ?, scanned_at = ?, verify_at = 0"
        " WHERE id = ?",
        (new_mtime, cur_mtime, at, mailbox_id),
    )
