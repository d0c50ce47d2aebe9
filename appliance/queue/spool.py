"""The durable outbound spool: one message file and one JSON metadata file per entry.

Layout under the queue directory::

    tmp/            files being written (never read; cleaned by :meth:`Spool.recover`)
    msg/<id>.eml    the message bytes as received (CRLF)
    meta/<id>.json  the envelope and per-recipient state

Every file is written to ``tmp/``, fsynced, renamed into place and the directory is
fsynced. The message is committed before its metadata, so an entry is visible (listed)
only once both are durable: a crash or ``kill -9`` at any point leaves either a complete
entry or an orphan message file that :meth:`Spool.recover` removes.

All methods are blocking (disk, fsync); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from appliance import atomicfile

log = logging.getLogger(__name__)

RecipientStatus = Literal["pending", "delivered", "failed"]
TlsResult = Literal["verified", "unverified", "none", ""]
EntryKind = Literal["message", "bounce"]
# Who wrote the message, recorded at enqueue time; it decides what the box signs:
# "submission" (an authenticated local user) and "local" (the box itself: DSNs, Sieve
# replies, alerts) are DKIM-signed; "forward" (relayed for someone else: remote alias
# targets, Sieve redirect) is ARC-sealed and leaves with an SRS envelope sender;
# "" (unknown, e.g. entries spooled by an older version) is sent as it is, unsigned.
Origin = Literal["submission", "local", "forward", ""]
ORIGINS: tuple[Origin, ...] = ("submission", "local", "forward", "")

_ID_RE = re.compile(r"^[0-9A-F]{10,40}$")


def message_id(now: float) -> str:
    """A message's one id, from the SMTP "queued as" reply to the queue entry and the
    logs: sortable by creation time (microseconds), then 40 random bits."""
    return f"{int(now * 1_000_000):014X}{secrets.token_hex(5).upper()}"


FORMAT_VERSION = 1


class SpoolError(Exception):
    """A spool entry that cannot be found or read."""


class EntryNotFound(SpoolError):
    pass


class CorruptEntry(SpoolError):
    pass


@dataclass(frozen=True)
class Recipient:
    """Delivery state of one recipient of one queue entry."""

    address: str
    status: RecipientStatus = "pending"
    attempts: int = 0
    next_attempt: float = 0.0
    last_attempt: float = 0.0
    last_error: str = ""  # e.g. "451 4.7.1 greylisted" or "connection refused"
    remote_host: str = ""  # the MX or smarthost that gave the last answer
    tls: TlsResult = ""  # verified / unverified / none for the last session
    bounced: bool = False  # a failure DSN was queued for this recipient
    dsn_status: str = ""  # RFC 3463 code of a local failure (e.g. 5.1.10 null MX)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Recipient:
        return cls(
            address=str(raw["address"]),
            status=raw.get("status", "pending"),
            attempts=int(raw.get("attempts", 0)),
            next_attempt=float(raw.get("next_attempt", 0.0)),
            last_attempt=float(raw.get("last_attempt", 0.0)),
            last_error=str(raw.get("last_error", "")),
            remote_host=str(raw.get("remote_host", "")),
            tls=raw.get("tls", ""),
            bounced=bool(raw.get("bounced", False)),
            dsn_status=str(raw.get("dsn_status", "")),
        )


@dataclass(frozen=True)
class Entry:
    """One queued message: envelope, timestamps and per-recipient state."""

    id: str
    sender: str  # "" is the null reverse-path (bounces)
    recipients: tuple[Recipient, ...]
    created: float
    size: int
    kind: EntryKind = "message"
    delay_warned: bool = False
    dkim_headers: str = ""  # DKIM-Signature or ARC set fields prepended when sending
    dkim_done: bool = False  # signing was attempted (never sign twice)
    origin: Origin = ""  # see Origin; "" (older spools) is never signed
    wire_sender: str = ""  # MAIL FROM on the wire when not ``sender`` (SRS for forwards)
    auth_results: str = ""  # this box's Authentication-Results value (ARC-sealed forwards)
    forward_domain: str = ""  # the local domain that forwards (ARC d=, SRS domain)

    @property
    def pending(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.recipients if r.status == "pending")

    @property
    def done(self) -> bool:
        return not self.pending

    @property
    def next_attempt(self) -> float:
        """When the earliest pending recipient is due (inf when nothing is pending)."""
        return min((r.next_attempt for r in self.pending), default=float("inf"))

    def with_recipients(self, recipients: Sequence[Recipient]) -> Entry:
        return dataclasses.replace(self, recipients=tuple(recipients))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "id": self.id,
            "sender": self.sender,
            "created": self.created,
            "size": self.size,
            "kind": self.kind,
            "delay_warned": self.delay_warned,
            "dkim_headers": self.dkim_headers,
            "dkim_done": self.dkim_done,
            "origin": self.origin,
            "wire_sender": self.wire_sender,
            "auth_results": self.auth_results,
            "forward_domain": self.forward_domain,
            "recipients": [r.to_json() for r in self.recipients],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Entry:
        return cls(
            id=str(raw["id"]),
            sender=str(raw["sender"]),
            recipients=tuple(Recipient.from_json(r) for r in raw["recipients"]),
            created=float(raw["created"]),
            size=int(raw["size"]),
            kind=raw.get("kind", "message"),
            delay_warned=bool(raw.get("delay_warned", False)),
            dkim_headers=str(raw.get("dkim_headers", "")),
            dkim_done=bool(raw.get("dkim_done", False)),
            origin=_origin(raw.get("origin", "")),
            wire_sender=str(raw.get("wire_sender", "")),
            auth_results=str(raw.get("auth_results", "")),
            forward_domain=str(raw.get("forward_domain", "")),
        )


def _origin(value: object) -> Origin:
    for origin in ORIGINS:
        if value == origin:
            return origin
    return ""  # unknown value: treated like an old entry (not signed)


def scratch_dir(directory: Path) -> Path:
    """The spool's tmp/: files being written; what a crash leaves is swept by recover()."""
    return directory / "tmp"


class Spool:
    """Implements :class:`appliance.queue.base.OutboundQueue` on a directory."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.clock = clock
        self.tmp_dir = scratch_dir(directory)
        self.msg_dir = directory / "msg"
        self.meta_dir = directory / "meta"
        for d in (self.tmp_dir, self.msg_dir, self.meta_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------ notification

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """``callback(queue_id)`` runs after each enqueue, in the enqueuing thread."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    # ------------------------------------------------------------ paths

    def _check_id(self, queue_id: str) -> str:
        canonical = queue_id.upper()  # ids are upper-case hex; typed ids may not be
        if not _ID_RE.match(canonical):
            raise EntryNotFound(f"no queue entry {queue_id!r}")
        return canonical

    def message_path(self, queue_id: str) -> Path:
        return self.msg_dir / f"{self._check_id(queue_id)}.eml"

    def meta_path(self, queue_id: str) -> Path:
        return self.meta_dir / f"{self._check_id(queue_id)}.json"

    def new_id(self) -> str:
        return message_id(self.clock())

    # ------------------------------------------------------------ writing

    def _write_meta(self, entry: Entry) -> None:
        data = json.dumps(entry.to_json(), separators=(",", ":")).encode()
        atomicfile.write_bytes(self.meta_path(entry.id), data, mode=0o600, tmp_dir=self.tmp_dir)

    def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        message: Path,
        kind: EntryKind = "message",
        *,
        origin: Origin | None = None,
        wire_sender: str = "",
        auth_results: str = "",
        forward_domain: str = "",
        queue_id: str = "",
    ) -> str:
        """Durably copy ``message`` into the spool for ``recipients``; returns the id:
        ``queue_id`` (the id SMTP answered "queued as") when given and free, else a new one.

        ``origin`` None: "local" for the null reverse-path (only the box's own
        notifications are enqueued from it without an origin; a forwarded bounce passes
        "forward"), else "" (unknown, never signed)."""
        if origin is None:
            origin = "local" if not sender else ""
        if not recipients:
            raise ValueError("a queue entry needs at least one recipient")
        if queue_id:
            queue_id = self._check_id(queue_id)
            if self.message_path(queue_id).exists() or self.meta_path(queue_id).exists():
                log.warning("queue_id=%s event=id-taken (a new id is used)", queue_id)
                queue_id = ""
        queue_id = queue_id or self.new_id()
        final = self.message_path(queue_id)
        with atomicfile.writing(final, mode=0o600, tmp_dir=self.tmp_dir) as out:
            with message.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
            size = out.tell()
        now = self.clock()
        entry = Entry(
            id=queue_id,
            sender=sender,
            recipients=tuple(Recipient(address=r, next_attempt=now) for r in recipients),
            created=now,
            size=size,
            kind=kind,
            origin=origin,
            wire_sender=wire_sender,
            auth_results=auth_results,
            forward_domain=forward_domain,
        )
        try:
            self._write_meta(entry)  # the entry becomes visible here
        except BaseException:
            self.message_path(queue_id).unlink(missing_ok=True)
            raise
        log.info(
            "queue_id=%s event=enqueued sender=<%s> rcpts=%d size=%d kind=%s origin=%s",
            queue_id,
            sender,
            len(recipients),
            size,
            kind,
            origin or "-",
        )
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(queue_id)
            except Exception:  # the entry is committed: a listener must not undo the reply
                log.exception("queue_id=%s event=listener-failed", queue_id)
        return queue_id

    def save(self, entry: Entry) -> None:
        """Replace the metadata of an existing entry (atomic, durable)."""
        if not self.message_path(entry.id).exists():
            raise EntryNotFound(f"no queue entry {entry.id!r}")
        self._write_meta(entry)

    def remove(self, queue_id: str) -> None:
        """Delete an entry: metadata first (it disappears), then the message."""
        meta = self.meta_path(queue_id)
        try:
            meta.unlink()
        except FileNotFoundError:
            raise EntryNotFound(f"no queue entry {queue_id!r}") from None
        atomicfile.fsync_dir(self.meta_dir)
        self.message_path(queue_id).unlink(missing_ok=True)
        atomicfile.fsync_dir(self.msg_dir)
        log.info("queue_id=%s event=removed", queue_id)

    # ------------------------------------------------------------ reading

    def load(self, queue_id: str) -> Entry:
        try:
            raw = json.loads(self.meta_path(queue_id).read_bytes())
        except FileNotFoundError:
            raise EntryNotFound(f"no queue entry {queue_id!r}") from None
        except (ValueError, OSError) as exc:
            raise CorruptEntry(f"queue entry {queue_id}: {exc}") from exc
        try:
            return Entry.from_json(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptEntry(f"queue entry {queue_id}: {exc}") from exc

    def ids(self) -> list[str]:
        """Ids of every visible entry, oldest first."""
        names = (p.name for p in self.meta_dir.iterdir())
        return sorted(n[:-5] for n in names if n.endswith(".json") and _ID_RE.match(n[:-5]))

    def entries(self) -> Iterator[Entry]:
        """Every readable entry, oldest first; corrupt ones are logged and skipped."""
        for queue_id in self.ids():
            try:
                yield self.load(queue_id)
            except EntryNotFound:
                continue  # removed while listing
            except CorruptEntry as exc:
                log.error("queue_id=%s event=corrupt error=%s", queue_id, exc)

    def __len__(self) -> int:
        return len(self.ids())

    # ------------------------------------------------------------ recovery

    def recover(self, min_age: float = 3600.0) -> int:
        """Remove leftovers of interrupted writes older than ``min_age`` seconds: files in
        tmp/ and message files without metadata. Returns how many were removed."""
        limit = time.time() - min_age
        removed = 0
        visible = set(self.ids())
        candidates = list(self.tmp_dir.iterdir())
        candidates += [p for p in self.msg_dir.iterdir() if p.name[:-4] not in visible]
        for path in candidates:
            try:
                if path.stat().st_mtime <= limit:
                    path.unlink()
                    removed += 1
                    log.info("queue_id=- event=recovered-orphan file=%s", path.name)
            except FileNotFoundError:
                continue
        return removed
