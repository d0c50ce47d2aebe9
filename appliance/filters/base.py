"""The Filter protocol: inbound checks that run between DATA and the store.

A filter sees the spooled message once per SMTP transaction and returns a Verdict.
The delivery pipeline (appliance.delivery) runs filters in order, adds their headers,
stops at the first reject/tempfail, and turns "junk" into delivery to the Junk folder.
Per-recipient rules (Sieve) are a RecipientFilter: they choose folders per user.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

log = logging.getLogger(__name__)

Action = Literal["accept", "junk", "reject", "tempfail", "discard"]


@dataclass(frozen=True)
class InboundMessage:
    path: Path  # spooled message, CRLF line ends
    mail_from: str  # envelope sender ("" for the null sender)
    rcpt_to: tuple[str, ...]
    client_ip: str
    client_name: str  # reverse DNS, or "" when unknown
    helo: str
    authenticated_user: str | None = None
    tls: bool = False
    size: int = 0
    id: str = ""  # the id SMTP answered "queued as"; the queue entry takes it too


@dataclass(frozen=True)
class Verdict:
    action: Action = "accept"
    headers: tuple[tuple[str, str], ...] = ()  # prepended in this order
    reason: str = ""  # public text for reject/tempfail replies
    smtp_code: int = 0  # override (e.g. 554 for viruses); 0 = pipeline default
    enhanced: str = ""  # override enhanced status code, e.g. "5.7.1"


class Filter(Protocol):
    name: str

    async def check(self, msg: InboundMessage) -> Verdict: ...


@dataclass(frozen=True)
class RecipientAction:
    """Where one recipient's copy goes: folders to file into, addresses to forward to."""

    mailboxes: tuple[str, ...] = ("INBOX",)
    flags: frozenset[str] = frozenset()
    redirect: tuple[str, ...] = ()
    reject_reason: str = ""  # Sieve reject: a bounce (or SMTP refusal for one recipient)
    extra: dict[str, str] = field(default_factory=dict)


class RecipientFilter(Protocol):
    name: str

    async def route(self, user: str, msg: InboundMessage, verdict: Verdict) -> RecipientAction: ...


@runtime_checkable
class Closable(Protocol):
    """A filter holding resources (a database, a connection) closes them here."""

    async def close(self) -> None: ...


@dataclass
class FilterSet:
    """One build of the chain (appliance.filters.setup.build_filters)."""

    filters: list[Filter] = field(default_factory=list)
    recipient_filters: list[RecipientFilter] = field(default_factory=list)
    users: int = 0  # pipeline runs holding this build
    retired: bool = False

    async def close(self) -> None:
        for item in [*self.filters, *self.recipient_filters]:
            if isinstance(item, Closable):
                try:
                    await item.close()
                except Exception:
                    log.exception("filter=close-failed name=%s", getattr(item, "name", "?"))


class FilterChain:
    """The filters in force. Replaced as a whole on reload (on the event loop); a build
    that is replaced is closed once the last pipeline run holding it has finished."""

    def __init__(
        self,
        filters: list[Filter] | None = None,
        recipient_filters: list[RecipientFilter] | None = None,
    ) -> None:
        self.current = FilterSet(filters or [], recipient_filters or [])

    @property
    def filters(self) -> list[Filter]:
        return self.current.filters

    @property
    def recipient_filters(self) -> list[RecipientFilter]:
        return self.current.recipient_filters

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[FilterSet]:
        held = self.current
        held.users += 1
        try:
            yield held
        finally:
            held.users -= 1
            if held.retired and held.users == 0:
                await held.close()

    async def replace(
        self, filters: list[Filter], recipient_filters: list[RecipientFilter]
    ) -> None:
        old, self.current = self.current, FilterSet(filters, recipient_filters)
        old.retired = True
        if old.users == 0:
            await old.close()
