"""Typed IMAP errors, rendered once by the session as ``tag NO|BAD [CODE] text``."""

from __future__ import annotations

from appliance.store.base import (
    InvalidMailboxName,
    MailboxExists,
    MailboxNotFound,
    MessageNotFound,
    QuotaExceeded,
    StoreError,
)


class ImapError(Exception):
    def __init__(self, text: str, code: str = "", status: str = "NO") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status

    def render(self, tag: str) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{tag} {self.status} {code}{self.text}\r\n".encode()


def bad(text: str) -> ImapError:
    return ImapError(text, status="BAD")


def from_store(exc: StoreError, trycreate: bool = False) -> ImapError:
    """Map a store error to the RFC 5530 response code; the text stays generic."""
    if isinstance(exc, MailboxNotFound):
        if trycreate:  # RFC 9051 6.3.12: the client may CREATE and retry
            return ImapError("Mailbox does not exist", "TRYCREATE")
        return ImapError("Mailbox does not exist", "NONEXISTENT")
    if isinstance(exc, MailboxExists):
        return ImapError("Mailbox already exists", "ALREADYEXISTS")
    if isinstance(exc, InvalidMailboxName):
        return ImapError("Invalid mailbox name", "CANNOT")
    if isinstance(exc, QuotaExceeded):
        return ImapError("Quota exceeded", "OVERQUOTA")
    if isinstance(exc, MessageNotFound):
        return ImapError("Message no longer exists", "EXPUNGEISSUED")
    if exc.temporary:
        return ImapError("Temporary storage failure, try again later", "UNAVAILABLE")
    return ImapError("Operation failed", "CANNOT")
