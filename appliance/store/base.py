"""The MailStore protocol: what SMTP delivery, IMAP and POP3 need from mail storage.

All methods are blocking (disk, fsync, SQLite); async callers use ``asyncio.to_thread``.
Users are identified by their normalised address (``alice@example.org``). Mailbox
names are Unicode with ``/`` as the hierarchy separator; ``INBOX`` is case-insensitive
and always exists. Protocol layers translate (IMAP modified UTF-7, etc.).

Flags are IMAP flag strings: the system flags ``\\Seen \\Answered \\Flagged \\Deleted
\\Draft`` and keywords (atoms such as ``$Junk``). ``\\Recent`` is not stored.

Every method that changes a mailbox bumps its MODSEQ and publishes a
:class:`appliance.events.MailboxChanged` through the notifier given to the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
SPECIAL_USE = ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive")
DEFAULT_FOLDERS: tuple[tuple[str, str], ...] = (
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
INBOX = "INBOX"
SEPARATOR = "/"


# ------------------------------------------------------------------ errors


class StoreError(Exception):
    """Base class. ``temporary`` errors map to SMTP 4xx / IMAP NO [SERVERBUG]."""

    temporary = False


class MailboxNotFound(StoreError):
    pass


class MailboxExists(StoreError):
    pass


class InvalidMailboxName(StoreError):
    pass


class MessageNotFound(StoreError):
    pass


class InvalidFlag(StoreError):
    """A flag that cannot be stored: \\Recent, an unknown system flag, a malformed keyword."""


class QuotaExceeded(StoreError):
    """The user's quota would be exceeded (SMTP 452 4.2.2 / 552, IMAP NO [OVERQUOTA]).
    Nothing was stored; ``user`` names the user whose quota refused."""

    def __init__(self, message: str = "quota exceeded", *, user: str = "") -> None:
        super().__init__(message)
        self.user = user


class StorageFull(StoreError):
    """ENOSPC: the disk is full (SMTP 452 4.3.1, IMAP NO [SERVERBUG])."""

    temporary = True


class StorageUnavailable(StoreError):
    """EROFS, EIO, a missing mail disk: nothing was written (SMTP 451 4.3.0)."""

    temporary = True


# ------------------------------------------------------------------ values


@dataclass(frozen=True)
class MailboxInfo:
    name: str
    special_use: str | None = None  # one of SPECIAL_USE
    subscribed: bool = False
    has_children: bool = False
    selectable: bool = True


@dataclass(frozen=True)
class MessageInfo:
    uid: int
    modseq: int
    flags: frozenset[str]
    internal_date: float  # seconds since the epoch, UTC
    size: int  # RFC822.SIZE: bytes of the message as stored (CRLF line ends)
    key: str  # stable Maildir unique name (without :2, info), used by POP3 UIDL


@dataclass(frozen=True)
class MailboxStatus:
    name: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    messages: int
    unseen: int
    size: int  # bytes, for STATUS=SIZE
    deleted: int = 0
    recent: int = 0  # messages no session has seen yet (RFC 3501 6.3.10: STATUS RECENT)


@dataclass(frozen=True)
class Snapshot:
    """The state of a mailbox at one moment: what IMAP SELECT and POP3 login start from."""

    status: MailboxStatus
    messages: tuple[MessageInfo, ...]  # ascending UID
    # UIDs this caller is the first to see (\Recent); without claim_recent, the UIDs no
    # session has seen yet, left for the next claimer (RFC 3501 6.3.2: EXAMINE shows them)
    recent: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Changes:
    """What happened to a mailbox after ``since`` (a MODSEQ)."""

    highest_modseq: int
    uidnext: int
    changed: tuple[MessageInfo, ...]  # new messages and messages whose flags changed
    expunged: tuple[int, ...]  # UIDs removed after ``since`` (for EXPUNGE / VANISHED)


@dataclass(frozen=True)
class DeliveryTarget:
    user: str
    mailbox: str = INBOX
    flags: frozenset[str] = frozenset()
    header_prefix: bytes = b""  # e.g. b"Return-Path: <...>\r\nDelivered-To: ...\r\n"
    quota_bytes: int = 0  # 0 = unlimited


@dataclass(frozen=True)
class NewMessage:
    """One message of an APPEND: the file (RFC 5322, CRLF), its flags and date."""

    source: Path
    flags: frozenset[str] = frozenset()
    internal_date: float | None = None


@dataclass(frozen=True)
class Appended:
    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class Copied:
    uidvalidity: int  # of the destination
    pairs: tuple[tuple[int, int], ...]  # (source UID, destination UID)


@dataclass(frozen=True)
class Usage:
    bytes: int
    messages: int


FlagMode = Literal["set", "add", "remove"]


@dataclass(frozen=True)
class FlagResult:
    updated: tuple[MessageInfo, ...]  # messages whose flags or modseq changed
    failed_modseq: tuple[int, ...] = ()  # UIDs refused by UNCHANGEDSINCE (RFC 7162 3.1.3)


# ------------------------------------------------------------------ protocol


class MailStore(Protocol):
    # ---- mailboxes
    def ensure_user(self, user: str) -> None:
        """Create the user's Maildir with INBOX and the SPECIAL-USE folders if missing."""

    def list_mailboxes(self, user: str) -> list[MailboxInfo]: ...

    def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> None: ...

    def delete_mailbox(self, user: str, name: str) -> None: ...

    def rename_mailbox(self, user: str, old: str, new: str) -> None: ...

    def subscribe(self, user: str, name: str, subscribed: bool) -> None: ...

    def subscriptions(self, user: str) -> frozenset[str]:
        """Subscribed names, including those whose mailbox no longer exists (RFC 3501
        6.3.6: the server never removes a name from the list on its own)."""
        ...

    def status(self, user: str, mailbox: str) -> MailboxStatus: ...

    # ---- reading
    def snapshot(self, user: str, mailbox: str, *, claim_recent: bool = False) -> Snapshot:
        """Current messages; picks up files other programs dropped into new/."""
        ...

    def changes(self, user: str, mailbox: str, since: int) -> Changes: ...

    def open_message(self, user: str, mailbox: str, uid: int) -> BinaryIO:
        """The stored message bytes (CRLF), for streaming FETCH/RETR."""
        ...

    def message_path(self, user: str, mailbox: str, uid: int) -> Path: ...

    def summary(self, user: str, mailbox: str, uid: int) -> bytes:
        """Cached per-message parse (ENVELOPE/BODYSTRUCTURE data) made by the summarizer
        the store was built with; computed on first use when not cached at delivery."""
        ...

    def claim_recent(
        self, user: str, mailbox: str, uids: Sequence[int], *, peek: bool = False
    ) -> frozenset[int]:
        """Of ``uids`` (new arrivals a session has just seen), the ones no session saw
        before: the caller shows them \\Recent (RFC 3501 2.3.2), nobody else will. With
        ``peek`` (a read-only session) nothing is claimed: the next claimer gets them too."""
        ...

    def summaries(self, user: str, mailbox: str, uids: Sequence[int]) -> dict[int, bytes]:
        """:meth:`summary` for many messages at once (one index read, one write for the
        ones computed now); messages that no longer exist are left out."""
        ...

    def message_paths(self, user: str, mailbox: str, uids: Sequence[int]) -> dict[int, Path]:
        """Where the messages' files are now (one index read); unknown UIDs left out. A
        path can go stale when flags change: fall back to :meth:`open_message`."""
        ...

    # ---- writing
    def deliver(self, targets: Sequence[DeliveryTarget], source: Path) -> list[Appended]:
        """Store ``source`` (an RFC 5322 message file, CRLF) for every target, all or none.

        Returns only after every copy is durable (file and directory fsync). On error no
        target keeps a copy and a StoreError (often temporary) is raised. A target's
        ``quota_bytes`` is enforced atomically: QuotaExceeded, nothing stored. The
        decision uses the usage the store knows; files other programs changed count
        once :meth:`usage` has been read (the caller does, once per message).
        """
        ...

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
        """Store one message; QuotaExceeded (nothing stored) when it does not fit
        ``quota_bytes`` (0 = unlimited)."""
        ...

    def append_many(
        self, user: str, mailbox: str, messages: Sequence[NewMessage], *, quota_bytes: int = 0
    ) -> list[Appended]:
        """Store several messages into one mailbox, all or none (IMAP MULTIAPPEND,
        RFC 3502): their total must fit ``quota_bytes``."""
        ...

    def store_flags(
        self,
        user: str,
        mailbox: str,
        uids: Sequence[int],
        mode: FlagMode,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> FlagResult: ...

    def copy(
        self, user: str, src: str, uids: Sequence[int], dst: str, *, quota_bytes: int = 0
    ) -> Copied:
        """Copy messages; QuotaExceeded (nothing copied) when the copies do not fit."""
        ...

    def move(self, user: str, src: str, uids: Sequence[int], dst: str) -> Copied:
        """Move messages between mailboxes of the user: usage does not change, so a
        move is never refused for quota (it is how a user over quota makes room)."""
        ...

    def expunge(self, user: str, mailbox: str, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only those in ``uids`` when given); returns
        the removed UIDs in ascending order."""
        ...

    def delete_messages(self, user: str, mailbox: str, uids: Sequence[int]) -> list[int]:
        """Remove the given messages regardless of flags (POP3 DELE at QUIT)."""
        ...

    # ---- locking
    def hold(self, user: str) -> AbstractContextManager[None]:
        """Hold all of ``user``'s mailboxes while the context lasts: no mailbox is
        created, renamed or deleted and no message is added, changed or removed, in
        this process or another (a backup stages the user's files meanwhile)."""
        ...

    # ---- accounting
    def usage(self, user: str) -> Usage:
        """Bytes and messages in all the user's mailboxes (the quota's usage): cheap,
        independent of the number of messages; picks up files other programs added or
        removed in folders whose directories changed."""
        ...
