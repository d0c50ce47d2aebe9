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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.store.base import INBOX, MailStore, Snapshot


@dataclass(frozen=True)
class Entry:
    number: int
    uid: int
    size: int
    uidl: str


class NoSuchMessage(Exception):
    """A message number that does not exist or is marked as deleted."""


def uidl_of(uid: int, uidvalidity: int) -> str:
    return f"{uid:08X}{uidvalidity:08X}"


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
        return cls(user, snapshot, paths)

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
