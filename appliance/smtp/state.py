"""State shared by every SMTP connection of one service: limits, drain, counters."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from appliance.daemon import Context

log = logging.getLogger(__name__)

Kind = Literal["smtp", "submission", "submissions"]


@dataclass(frozen=True)
class ListenerKind:
    """What one listener offers: MX (25), submission (587) or submissions (465)."""

    name: Kind
    implicit_tls: bool = False  # TLS from the first byte (RFC 8314 3.3)
    starttls: bool = True  # offer STARTTLS (RFC 3207)
    submission: bool = False  # AUTH required, sender checked (RFC 6409)


MX = ListenerKind("smtp")
SUBMISSION = ListenerKind("submission", submission=True)
SUBMISSIONS = ListenerKind("submissions", implicit_tls=True, starttls=False, submission=True)
KINDS: dict[Kind, ListenerKind] = {k.name: k for k in (MX, SUBMISSION, SUBMISSIONS)}


class Connection(Protocol):
    def shutdown(self, reply: str) -> None:
        """Send ``reply`` and close, now."""


class ServerState:
    def __init__(self, ctx: Context, spool_dir: Path) -> None:
        self.ctx = ctx
        self.spool_dir = spool_dir
        self.per_ip: collections.Counter[str] = collections.Counter()
        self.total = 0
        self.in_flight = 0  # transactions between DATA and the reply
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self.sessions: set[Connection] = set()
        self.tasks: set[asyncio.Task[object]] = set()
        self.stats: collections.Counter[str] = collections.Counter()

    def admit(self, ip: str) -> str | None:
        """Count a new connection; returns the refusal text when a limit is reached."""
        limits = self.ctx.config.limits
        if self.draining:
            return "Service shutting down"
        if self.total >= limits.max_connections:
            self.stats["refused_global"] += 1
            return "Too many connections, try again later"
        if self.per_ip[ip] >= limits.max_connections_per_ip:
            self.stats["refused_per_ip"] += 1
            return "Too many connections from your address, try again later"
        self.total += 1
        self.per_ip[ip] += 1
        self.stats["connections_total"] += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Mark a message transfer in flight (drained on stop)."""
        self.in_flight += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    def track(self, task: asyncio.Task[object]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
