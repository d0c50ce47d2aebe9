"""The outbound queue as a daemon service: the scheduling loop, DSNs through the box's
notifier (``appliance.delivery.notices``: stored for local senders, queued for others),
and the control handlers (``queue.list/retry/delete/flush`` on the ctl socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.accounts import Accounts
from appliance.config import Config
from appliance.dns import Resolver
from appliance.queue import dkim
from appliance.queue.base import OutboundQueue
from appliance.queue.engine import BounceSink, DeliveryEngine, RetryPolicy
from appliance.queue.mtasts import HttpsPolicyFetcher, MtaSts, PolicyFetcher
from appliance.queue.routes import Router
from appliance.queue.smtpclient import SmtpClient
from appliance.queue.spool import Entry, EntryNotFound, Spool
from appliance.runtime import CtlHandlers, Service
from appliance.tls import client_context

log = logging.getLogger(__name__)

POLL_SECONDS = 60.0
RECOVER_AGE = 3600.0
DRAIN_SECONDS = 8.0  # below the daemon's 10 s stop budget


@dataclass(frozen=True)
class QueueDeps:
    """What the queue service uses besides the config."""

    accounts: Accounts
    bounces: BounceSink  # the box's one notifier (appliance.delivery.notices)
    queue: OutboundQueue  # the spool (a Spool is used as is)
    dns: Resolver  # the daemon's one resolver and cache (MX, MTA-STS)


class QueueService:
    name = "queue"

    def __init__(
        self,
        config: Config,
        deps: QueueDeps,
        *,
        resolver: Resolver | None = None,
        fetcher: PolicyFetcher | None = None,
        context_factory: Callable[[bool], ssl.SSLContext] = client_context,
        port_for: Callable[[str], int] = lambda host: 25,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        retry: RetryPolicy | None = None,
        poll: float = POLL_SECONDS,
        timeout: float = 300.0,
        drain: float = DRAIN_SECONDS,
    ) -> None:
        self.config = config  # replaced on reload
        self.deps = deps
        self.drain = drain
        queue = deps.queue
        self.spool = queue if isinstance(queue, Spool) else Spool(config.queue_dir)
        self.clock = clock
        self.poll = poll
        resolver = resolver or deps.dns  # the daemon's one resolver and cache
        rng = rng or random.Random()  # noqa: S311 - MX order and jitter, not secrets
        mtasts = MtaSts(
            resolver,
            fetcher or HttpsPolicyFetcher(lambda: context_factory(True)),
            clock,
            cache_file=self.spool.directory / "mta-sts-cache.json",
        )
        self.engine = DeliveryEngine(
            self.spool,
            config=lambda: self.config,
            router=Router(resolver, mtasts, rng, port_for),
            client=SmtpClient(config.hostname, context_factory, timeout),
            bounces=deps.bounces,
            signer=lambda domain, data: dkim.sign(self.config, domain, data),
            sealer=lambda domain, ar, data: dkim.arc_seal(self.config, domain, ar, data),
            is_local_domain=deps.accounts.is_local_domain,
            clock=clock,
            rng=rng,
            retry=retry,
        )
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._size = 0

    # ------------------------------------------------------------ lifecycle

    def _on_enqueue(self, queue_id: str) -> None:
        # Called in the enqueuing thread (SMTP's to_thread) or in the loop.
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
                loop.call_soon_threadsafe(wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        removed = await asyncio.to_thread(self.spool.recover, RECOVER_AGE)
        await asyncio.to_thread(self._ensure_dkim_keys)
        self._size = await asyncio.to_thread(len, self.spool)
        self.spool.add_listener(self._on_enqueue)
        self._task = asyncio.create_task(self._run(), name="queue-scheduler")
        log.info("queue_id=- event=started size=%d orphans_removed=%d", self._size, removed)

    def _ensure_dkim_keys(self) -> None:
        dkim.ensure_keys(self.config, self.deps.accounts.list_domains())

    async def stop(self) -> None:
        """Stop scheduling, let running deliveries finish (bounded), cancel the rest."""
        self.spool.remove_listener(self._on_enqueue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        workers = list(self._workers.values())
        pending: set[asyncio.Task[None]] = set()
        if workers:
            _, pending = await asyncio.wait(workers, timeout=self.drain)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        log.info("queue_id=- event=stopped drained=%d cancelled=%d", len(workers), len(pending))

    async def reload(self, new: Config) -> None:
        self.config = new
        self.engine.reset_limits()
        await asyncio.to_thread(self._ensure_dkim_keys)  # new domains or selector
        self.engine.client.local_hostname = new.hostname

    def status(self) -> dict[str, Any]:
        return {
            "size": self._size,  # entries in the queue (the web dashboard reads this)
            "queue_size": self._size,
            "in_flight": len(self.engine.inflight),
            "delivered": self.engine.delivered,
            "deferred": self.engine.deferred,
            "failed": self.engine.failed,
            "running": self._task is not None and not self._task.done(),
        }

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            later = self.clock() + self.poll
            try:
                ready, later = await asyncio.to_thread(self.engine.due)
                self._size = await asyncio.to_thread(len, self.spool)
            except Exception as exc:  # the scheduler must survive a bad scan; retried below
                log.error("queue_id=- event=scan-failed error=%s", exc)
                ready = []
            limit = self.config.queue.concurrency  # bounds messages held in memory
            for qid in ready:
                if len(self._workers) >= limit:
                    break
                if qid in self.engine.inflight or qid in self._workers:
                    continue
                task = asyncio.create_task(self.engine.process(qid), name=f"queue-{qid}")
                task.add_done_callback(functools.partial(self._worker_done, qid))
                self._workers[qid] = task
            timeout = min(self.poll, max(0.2, later - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            await asyncio.sleep(0.05)  # coalesce bursts of wake-ups

    def _worker_done(self, queue_id: str, task: asyncio.Task[None]) -> None:
        self._workers.pop(queue_id, None)
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------ control

    def _describe(self, entry: Entry) -> dict[str, Any]:
        return {
            "id": entry.id,
            "sender": entry.sender,
            "created": entry.created,
            "size": entry.size,
            "kind": entry.kind,
            "origin": entry.origin,
            "dkim_signed": "DKIM-Signature:" in entry.dkim_headers,
            "arc_sealed": "ARC-Seal:" in entry.dkim_headers,
            "next_attempt": None if entry.done else entry.next_attempt,
            "in_flight": entry.id in self.engine.inflight,
            "recipients": [
                {
                    "address": r.address,
                    "status": r.status,
                    "attempts": r.attempts,
                    "next_attempt": r.next_attempt,
                    "last_attempt": r.last_attempt,
                    "last_error": r.last_error,
                    "remote_host": r.remote_host,
                    "tls": r.tls,
                }
                for r in entry.recipients
            ],
        }

    async def ctl_list(self) -> list[dict[str, Any]]:
        """Every queue entry with per-recipient state, oldest first."""
        entries = await asyncio.to_thread(lambda: list(self.spool.entries()))
        return [self._describe(e) for e in entries]

    async def ctl_retry(self, queue_id: str | None = None) -> int:
        """Make one entry (or all) due now; returns how many entries were rescheduled.
        Raises EntryNotFound for an unknown id."""
        touched = await self.engine.reschedule(queue_id.upper() if queue_id else None)
        log.info("queue_id=%s event=retry-requested entries=%d", queue_id or "-", touched)
        if self._wake is not None:
            self._wake.set()
        return touched

    async def ctl_delete(self, queue_id: str) -> None:
        """Remove an entry without bounce. Raises EntryNotFound."""
        await self.engine.delete(queue_id.upper())
        log.info("queue_id=%s event=deleted-by-admin", queue_id)
        if self._wake is not None:
            self._wake.set()

    async def ctl_flush(self) -> int:
        """Retry everything now (like ``postqueue -f``); returns entries rescheduled."""
        return await self.ctl_retry(None)


def _register_ctl(handlers: CtlHandlers, svc: QueueService) -> None:
    from appliance.runtime import CommandError, register

    async def list_(args: dict[str, Any]) -> Any:
        return await svc.ctl_list()

    def _id(args: dict[str, Any], required: bool) -> str | None:
        value = args.get("id")
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise CommandError("give the queue id as args.id")
        return value

    async def retry(args: dict[str, Any]) -> Any:
        try:
            return {"rescheduled": await svc.ctl_retry(_id(args, False))}
        except EntryNotFound as exc:
            raise CommandError(str(exc)) from None

    async def delete(args: dict[str, Any]) -> Any:
        queue_id = _id(args, True)
        assert queue_id is not None
        try:
            await svc.ctl_delete(queue_id)
        except EntryNotFound as exc:
            raise CommandError(str(exc)) from None
        return {"deleted": queue_id}

    async def flush(args: dict[str, Any]) -> Any:
        return {"rescheduled": await svc.ctl_flush()}

    register(handlers, "queue.list", list_)
    register(handlers, "queue.retry", retry)
    register(handlers, "queue.delete", delete)
    register(handlers, "queue.flush", flush)


def create(config: Config, deps: QueueDeps, handlers: CtlHandlers) -> list[Service]:
    svc = QueueService(config, deps)
    _register_ctl(handlers, svc)
    return [svc]
