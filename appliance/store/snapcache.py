"""Recently used mailbox snapshots kept in memory and brought up to date by MODSEQ.

Every change to a mailbox's messages gives the touched rows, and the mailbox, a new
MODSEQ; expunged UIDs are recorded with theirs. So a snapshot taken at HIGHESTMODSEQ
``m`` becomes current by applying the rows with MODSEQ > ``m`` and dropping the UIDs
expunged after ``m``: an IMAP SELECT of a 100k mailbox after one new message costs
two small queries instead of loading and building 100k MessageInfo objects.

A cached entry is used only for the same mailbox row and UIDVALIDITY, and only when
no index rebuild happened after it (``vanished_floor``): otherwise it is reloaded.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass

from appliance.store import index
from appliance.store.base import MessageInfo
from appliance.store.names import split_flags

DEFAULT_ENTRIES = 16

_COLUMNS = "uid, modseq, flags, internal_date, size, base"


@dataclass(frozen=True)
class _Entry:
    mailbox_id: int
    uidvalidity: int
    modseq: int
    messages: tuple[MessageInfo, ...]


def _build(rows: list[tuple[int, int, str, float, int, str]]) -> list[MessageInfo]:
    flag_sets: dict[str, frozenset[str]] = {}
    result = []
    for uid, modseq, text, date, size, base in rows:
        flags = flag_sets.get(text)
        if flags is None:
            flags = flag_sets[text] = split_flags(text)
        result.append(MessageInfo(uid, modseq, flags, date, size, base))
    return result


class SnapshotCache:
    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self.entries = entries
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def messages(
        self, conn: sqlite3.Connection, key: tuple[str, str], mbx: index.MailboxRow
    ) -> tuple[MessageInfo, ...]:
        """The messages of ``mbx`` in UID order (call inside a read transaction)."""
        with self._lock:
            entry = self._data.get(key)
        usable = (
            entry is not None
            and entry.mailbox_id == mbx.id
            and entry.uidvalidity == mbx.uidvalidity
            and mbx.vanished_floor <= entry.modseq <= mbx.highest_modseq
        )
        if entry is not None and usable and entry.modseq == mbx.highest_modseq:
            messages = entry.messages
        elif entry is not None and usable:
            messages = self._update(conn, mbx, entry)
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE mailbox_id = ? ORDER BY uid",  # noqa: S608
                (mbx.id,),
            ).fetchall()
            messages = tuple(_build(rows))
        if self.entries:
            with self._lock:
                self._data[key] = _Entry(mbx.id, mbx.uidvalidity, mbx.highest_modseq, messages)
                self._data.move_to_end(key)
                while len(self._data) > self.entries:
                    self._data.popitem(last=False)
        return messages

    @staticmethod
    def _update(
        conn: sqlite3.Connection, mbx: index.MailboxRow, entry: _Entry
    ) -> tuple[MessageInfo, ...]:
        changed = _build(
            conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE mailbox_id = ? AND modseq > ?"  # noqa: S608
                " ORDER BY uid",
                (mbx.id, entry.modseq),
            ).fetchall()
        )
        gone = {
            r[0]
            for r in conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?",
                (mbx.id, entry.modseq),
            )
        }
        by_uid = {m.uid: m for m in entry.messages}
        for uid in gone:
            by_uid.pop(uid, None)
        last = entry.messages[-1].uid if entry.messages else 0
        need_sort = False
        for m in changed:
            if m.uid < last and m.uid not in by_uid:
                need_sort = True
            by_uid[m.uid] = m
        if need_sort:
            return tuple(by_uid[uid] for uid in sorted(by_uid))
        # In-place updates keep their position and new UIDs come after the old
        # maximum in ascending order, so insertion order is UID order.
        return tuple(by_uid.values())

    def forget(self, user: str, mailbox: str) -> None:
        with self._lock:
            self._data.pop((user, mailbox), None)
