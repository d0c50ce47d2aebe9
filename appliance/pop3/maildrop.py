"""One POP3 session's view of a user's INBOX, and message text on the wire.

The message list is fixed at login (RFC 1939 5: numbers 1..n stay valid for the whole
session). DELE only marks; :meth:`Maildrop.commit` removes the marked messages in the
UPDATE state through ``MailStore.delete_messages``. A session that ends any other way
deletes nothing.

UIDL (RFC 1939 7): ``%08X%08X`` of the IMAP UID and the INBOX UIDVALIDITY (the format
Dovecot uses by default, ``%08Xu%08Xv``). Both come from the store, so the id of a
message never changes while it exists, and a client that also uses IMAP sees the same
message identity. 16 characters from 0x21-0x7E, within the 70 the RFC allows.

Wire form (RFC 1939 3): lines end in CRLF (bare LF is converted), a line starting with
"." gets one more "." in front, and the response ends with ".".

Sizes (RFC 1939 5 STAT/LIST: "the exact size of the message in octets"): the octets
RETR sends before byte-stuffing, which is the file size plus one octet per bare LF plus
a CRLF if the last line has no line end. The index size is the file size, so each file
is measured once at login (a streaming count in C, no parsing) and the result kept in
a bounded in-process cache keyed by file name and size (Maildir files never change
content). Dovecot 2.3 reports its CRLF-counted virtual size here, which is still two
short for a message without a final line end; ours equals what RETR sends.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from appliance.store.base import INBOX, MailStore, Snapshot, StoreError


@dataclass(frozen=True)
class Entry:
    number: int
    uid: int
    size: int
    uidl: str


SCAN_CHUNK = 1 << 20
SIZE_CACHE_ENTRIES = 100_000  # about 10 MB of cache at most


class NoSuchMessage(Exception):
    """A message number that does not exist or is marked as deleted."""


def uidl_of(uid: int, uidvalidity: int) -> str:
    return f"{uid:08X}{uidvalidity:08X}"


def wire_size_of(fh: BinaryIO) -> int:
    """Octets :class:`WireEncoder` sends for the whole file (RETR, before byte-stuffing):
    every line ends in CRLF, so each bare LF gains one octet and an unterminated last
    line gains two."""
    total = bare = 0
    prev = b""
    while chunk := fh.read(SCAN_CHUNK):
        total += len(chunk)
        bare += chunk.count(b"\n") - chunk.count(b"\r\n")
        if prev == b"\r" and chunk[:1] == b"\n":
            bare -= 1  # a CRLF split across two reads
        prev = chunk[-1:]
    if total and prev != b"\n":
        total += 2  # RFC 1939 3: the last line is sent with a CRLF too
    return total + bare


class _SizeCache:
    """Wire sizes by (file name without flags, file size); bounded, thread-safe."""

    def __init__(self, limit: int = SIZE_CACHE_ENTRIES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._sizes: OrderedDict[tuple[str, int], int] = OrderedDict()

    def measure(self, path: Path) -> int | None:
        """The wire size of ``path``, or None when it cannot be read."""
        try:
            with path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                key = (path.name.split(":", 1)[0], st.st_size)
                with self._lock:
                    if (known := self._sizes.get(key)) is not None:
                        self._sizes.move_to_end(key)
                        return known
                size = wire_size_of(fh)
        except OSError:
            return None
        with self._lock:
            self._sizes[key] = size
            while len(self._sizes) > self.limit:
                self._sizes.popitem(last=False)
        return size


SIZES = _SizeCache()


class Maildrop:
    def __init__(self, user: str, snapshot: Snapshot, paths: dict[int, Path] | None = None) -> None:
        self.user = user
        self.paths = paths or {}  # uid -> file at login (may go stale: flags renamed it)
        self.uidvalidity = snapshot.status.uidvalidity
        self.entries = tuple(
            Entry(i, m.uid, m.size, uidl_of(m.uid, self.uidvalidity))
            for i, m in enumerate(snapshot.messages, start=1)
        )
        self.deleted: set[int] = set()

    @classmethod
    def load(cls, store: MailStore, user: str) -> Maildrop:
        """Blocking: call through asyncio.to_thread."""
        snapshot = store.snapshot(user, INBOX)
        paths = store.message_paths(user, INBOX, [m.uid for m in snapshot.messages])
        drop = cls(user, snapshot, paths)
        drop.measure(store)
        return drop

    def measure(self, store: MailStore) -> None:
        """Replace the stored sizes by the octets RETR will send (blocking)."""
        measured = []
        for e in self.entries:
            path = self.paths.get(e.uid)
            size = SIZES.measure(path) if path is not None else None
            if size is None:
                # Renamed since login (flags changed): ask the store where it is now.
                try:
                    with self.open(store, e.uid) as fh:
                        size = wire_size_of(fh)
                except (OSError, StoreError):
                    size = e.size  # gone: RETR will answer -ERR anyway
            measured.append(replace(e, size=size))
        self.entries = tuple(measured)

    def open(self, store: MailStore, uid: int) -> BinaryIO:
        """The message file (blocking): the path known at login, else ask the store."""
        path = self.paths.get(uid)
        if path is not None:
            try:
                return path.open("rb")
            except FileNotFoundError:
                pass
        return store.open_message(self.user, INBOX, uid)

    def get(self, number: int) -> Entry:
        if not 1 <= number <= len(self.entries) or number in self.deleted:
            raise NoSuchMessage(number)
        return self.entries[number - 1]

    def visible(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.number not in self.deleted)

    def stat(self) -> tuple[int, int]:
        count = size = 0
        for e in self.visible():
            count += 1
            size += e.size
        return count, size

    def mark(self, number: int) -> None:
        self.get(number)
        self.deleted.add(number)

    def reset(self) -> None:
        self.deleted.clear()

    def marked_uids(self) -> list[int]:
        return sorted(self.entries[n - 1].uid for n in self.deleted)

    def commit(self, store: MailStore) -> list[int]:
        """UPDATE state (RFC 1939 6): remove the marked messages. Blocking."""
        uids = self.marked_uids()
        return store.delete_messages(self.user, INBOX, uids) if uids else []


class WireEncoder:
    """Turns stored message lines into POP3 multi-line response text.

    ``body_lines`` limits the lines sent after the header/body separator (TOP);
    None sends everything (RETR).
    """

    def __init__(self, body_lines: int | None = None) -> None:
        self.body_lines = body_lines
        self.in_body = False
        self.sent_body = 0
        self.done = False

    def encode(self, lines: Iterable[bytes]) -> bytes:
        out = bytearray()
        for raw in lines:
            if self.done:
                break
            if self.in_body and self.body_lines is not None:
                if self.sent_body >= self.body_lines:
                    self.done = True
                    break
                self.sent_body += 1
            if raw.endswith(b"\r\n"):
                line = raw[:-2]
            elif raw.endswith(b"\n"):
                line = raw[:-1]
            else:
                line = raw
            if line.startswith(b"."):
                out += b"."  # RFC 1939 3: byte-stuff lines beginning with the termination octet
            out += line
            out += b"\r\n"
            if not self.in_body and not line:
                self.in_body = True
                if self.body_lines == 0:
                    self.done = True
        return bytes(out)
