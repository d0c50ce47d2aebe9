"""State shared by every SMTP connection of one service: config, limits, drain, counters."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from appliance.accounts import Authenticator
from appliance.config import Config
from appliance.delivery.pipeline import PipelineDeps
from appliance.listeners import ConnectionLimits, ServerTls

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


@dataclass(frozen=True)
class SmtpDeps:
    """What SMTP sessions use besides the config."""

    auth: Authenticator
    tls: ServerTls  # STARTTLS reads the current context at each upgrade
    delivery: PipelineDeps  # accounts, store, queue and filters


REFUSALS = {
    "draining": "Service shutting down",
    "global": "Too many connections, try again later",
    "per_ip": "Too many connections from your address, try again later",
}


class ServerState:
    def __init__(self, config: Config, deps: SmtpDeps, spool_dir: Path) -> None:
        self.config = config  # replaced on reload; each new connection reads it
        self.deps = deps
        self.spool_dir = spool_dir
        self.limits = ConnectionLimits(lambda: self.config.limits)
        self.in_flight = 0  # transactions between DATA and the reply
        self.idle = asyncio.Event()
        self.idle.set()
        self.sessions: set[Connection] = set()
        self.tasks: set[asyncio.Task[object]] = set()

    @property
    def total(self) -> int:
        return self.limits.total

    @property
    def stats(self) -> collections.Counter[str]:
        return self.limits.stats

    def admit(self, ip: str) -> str | None:
        """Count a new connection; returns the refusal text when a limit is reached."""
        refusal = self.limits.admit(ip)
        return None if refusal is None else REFUSALS[refusal]

    def release(self, ip: str) -> None:
        self.limits.release(ip)

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
