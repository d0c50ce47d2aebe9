"""In-process change notifications: the store publishes, IMAP IDLE sessions listen.

``publish`` may be called from any thread (store work runs in ``asyncio.to_thread``);
subscribers are woken on their own event loop. A subscriber that falls behind keeps
only the fact that something changed: events are coalesced, never queued without bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class MailboxChanged:
    user: str
    mailbox: str  # store name ("INBOX", "Archive/2024"); "" = mailbox list changed
    origin: object | None = None  # the session that made the change, if any


Notifier = Callable[[MailboxChanged], None]


class Subscription:
    """Wait for changes to one user's mailbox (or all of a user's mailboxes)."""

    def __init__(self, bus: ChangeBus, user: str, mailbox: str | None) -> None:
        self._bus = bus
        self.user = user
        self.mailbox = mailbox
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.pending: list[MailboxChanged] = []

    def _deliver(self, event: MailboxChanged) -> None:  # runs on self._loop
        if len(self.pending) < 100:
            self.pending.append(event)
        self._event.set()

    async def wait(self, timeout: float | None = None) -> list[MailboxChanged]:  # noqa: ASYNC109
        """Events since the last call (empty on timeout)."""
        if not self._event.is_set():
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return []
        self._event.clear()
        events, self.pending = self.pending, []
        return events

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChangeBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}

    def subscribe(self, user: str, mailbox: str | None = None) -> Subscription:
        """Must be called on the event loop that will wait on the subscription."""
        sub = Subscription(self, user, mailbox)
        with self._lock:
            self._subs.setdefault(user, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.user)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.user]

    def publish(self, event: MailboxChanged) -> None:
        with self._lock:
            targets = [
                s
                for s in self._subs.get(event.user, ())
                if s.mailbox is None or event.mailbox in ("", s.mailbox)
            ]
        for sub in targets:
            try:
                sub._loop.call_soon_threadsafe(sub._deliver, event)
            except RuntimeError:  # loop closed: the session is gone
                self._remove(sub)

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())
