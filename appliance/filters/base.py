"""The Filter protocol: inbound checks that run between DATA and the store.

A filter sees the spooled message once per SMTP transaction and returns a Verdict.
The delivery pipeline (appliance.delivery) runs filters in order, adds their headers,
stops at the first reject/tempfail, and turns "junk" into delivery to the Junk folder.
Per-recipient rules (Sieve) are a RecipientFilter: they choose folders per user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

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
