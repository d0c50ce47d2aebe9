"""Where imported mail goes: the local user's folders in the MailStore.

Messages are written in batches with ``append_many`` (all or none, durable before it
returns, quota decided by the store inside its write transaction). A batch the quota
refuses is retried one message at a time, so everything that fits is kept before
:class:`QuotaFull` stops the import. Duplicate detection keys a message by its
Message-ID and size, or by a SHA-256 of its bytes when it has no Message-ID.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.store.base import (
    INBOX,
    SEPARATOR,
    MailboxExists,
    MailStore,
    NewMessage,
    QuotaExceeded,
)
from appliance.store.names import normalize_flag, valid_flag

HEADER_LIMIT = 256 * 1024  # bytes read to find a stored message's Message-ID

_MSGID_RE = re.compile(rb"^Message-ID:[ \t]*(.*?)\r?$", re.I | re.M)


class QuotaFull(Exception):
    """The user's quota refused a message; what was stored before stays."""


@dataclass(frozen=True)
class Item:
    data: bytes
    flags: frozenset[str]
    internal_date: float | None


def header_block(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    return data if end < 0 else data[: end + 2]


def message_id(headers: bytes) -> str:
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", headers)
    m = _MSGID_RE.search(unfolded)
    return m.group(1).strip().decode("utf-8", "replace") if m else ""


def key_of(data: bytes) -> str:
    """The duplicate key of a message's bytes."""
    mid = message_id(header_block(data))
    if mid:
        return f"{mid}|{len(data)}"
    return "sha:" + hashlib.sha256(data).hexdigest()


def storable_flags(flags: frozenset[str]) -> frozenset[str]:
    """The flags the store accepts (\\Recent and malformed keywords are dropped)."""
    out = set()
    for raw in flags:
        flag = normalize_flag(raw)
        if flag.lower() != "\\recent" and valid_flag(flag):
            out.add(flag)
    return frozenset(out)


class Destination:
    def __init__(self, store: MailStore, user: str, quota_bytes: int, spool: Path) -> None:
        self.store = store
        self.user = user
        self.quota_bytes = quota_bytes
        self.spool = spool
        self._known: dict[str, set[str]] = {}
        store.ensure_user(user)

    # -------------------------------------------------------------- folders

    def special_folders(self) -> dict[str, str]:
        """special-use attribute -> local mailbox name."""
        return {
            mb.special_use: mb.name
            for mb in self.store.list_mailboxes(self.user)
            if mb.special_use is not None
        }

    def ensure(self, name: str) -> str:
        """Create ``name`` (and its parents) when missing; returns it."""
        if name.upper() == INBOX:
            return INBOX
        existing = {mb.name for mb in self.store.list_mailboxes(self.user)}
        parts = name.split(SEPARATOR)
        for i in range(1, len(parts) + 1):
            path = SEPARATOR.join(parts[:i])
            if path not in existing:
                with contextlib.suppress(MailboxExists):
                    self.store.create_mailbox(self.user, path)
        return name

    # -------------------------------------------------------------- duplicates

    def known(self, mailbox: str) -> set[str]:
        """Duplicate keys of the messages in ``mailbox`` (read once, then kept current)."""
        keys = self._known.get(mailbox)
        if keys is None:
            keys = set()
            snap = self.store.snapshot(self.user, mailbox)
            for info in snap.messages:
                try:
                    with self.store.open_message(self.user, mailbox, info.uid) as fh:
                        head = fh.read(HEADER_LIMIT)
                        mid = message_id(header_block(head))
                        if mid:
                            keys.add(f"{mid}|{info.size}")
                        else:
                            fh.seek(0)
                            keys.add("sha:" + hashlib.sha256(fh.read()).hexdigest())
                except OSError:
                    continue  # expunged meanwhile
            self._known[mailbox] = keys
        return keys

    # -------------------------------------------------------------- writing

    def store_batch(self, mailbox: str, items: Sequence[Item]) -> int:
        """Store ``items`` (all durable on return); QuotaFull after storing what fits."""
        if not items:
            return 0
        self.spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        paths: list[Path] = []
        try:
            for item in items:
                fd, name = tempfile.mkstemp(dir=self.spool, prefix="import-")
                with os.fdopen(fd, "wb") as fh:
                    fh.write(item.data)
                paths.append(Path(name))
            batch = [
                NewMessage(p, storable_flags(i.flags), i.internal_date)
                for p, i in zip(paths, items, strict=True)
            ]
            try:
                self.store.append_many(self.user, mailbox, batch, quota_bytes=self.quota_bytes)
                stored = len(batch)
            except QuotaExceeded:
                stored = 0
                for msg in batch:
                    try:
                        self.store.append_many(
                            self.user, mailbox, [msg], quota_bytes=self.quota_bytes
                        )
                    except QuotaExceeded:
                        self._remember(mailbox, items[:stored])
                        raise QuotaFull(
                            f"the quota of {self.user} is full"
                            + (f" ({self.quota_bytes} bytes)" if self.quota_bytes else "")
                        ) from None
                    stored += 1
            self._remember(mailbox, items)
            return stored
        finally:
            for p in paths:
                p.unlink(missing_ok=True)

    def _remember(self, mailbox: str, items: Sequence[Item]) -> None:
        keys = self._known.get(mailbox)
        if keys is not None:
            keys.update(key_of(i.data) for i in items)
