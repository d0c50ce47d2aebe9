"""The queue as a daemon service: wake-up on enqueue, DSNs through the local store or the
queue, status and the ctl handlers."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.delivery.notices import Notifier
from appliance.dns import DnsCache, DnsResolver
from appliance.filters.setup import build_filters
from appliance.queue.service import QueueDeps, QueueService, create
from appliance.queue.spool import EntryNotFound, Spool
from appliance.store.base import DeliveryTarget

from .conftest import FakeClock, World


@dataclass
class RecordingStore:
    delivered: list[tuple[list[DeliveryTarget], bytes]] = field(default_factory=list)

    def deliver(self, targets: list[DeliveryTarget], source: Path) -> list[Any]:
        self.delivered.append((list(targets), source.read_bytes()))
        return []


@dataclass
class Parts:
    """What the queue service is built from: its config, its deps, the ctl table."""

    config: config.Config
    accounts: Accounts
    store: Any
    queue: Any
    ctl_handlers: dict[str, Any] = field(default_factory=dict)
    # the daemon's one resolver and cache (appliance.daemon.Daemon.dns)
    dns: DnsResolver = field(default_factory=lambda: DnsResolver(cache=DnsCache()))

    @property
    def deps(self) -> QueueDeps:
        return QueueDeps(self.accounts, self.replies, self.queue, self.dns)

    @property
    def replies(self) -> Notifier:
        """The box's one notifier (queue bounces and Sieve replies)."""
        return _notifier(self, self.queue)


def _context(world: World) -> Parts:
    cfg = world.config()
    accounts = Accounts(world.tmp / "accounts.sqlite")
    accounts.add_domain("pillarbox.test")
    accounts.add_user("alice@pillarbox.test", "correct horse battery staple 42")
    return Parts(cfg, accounts, RecordingStore(), Spool(world.tmp / "queue"))


def _service(world: World, ctx: Parts, clock: Any = time.time) -> QueueService:
    return QueueService(
        ctx.config,
        ctx.deps,
        resolver=world.resolver,
        context_factory=world.pki.client_context,
        port_for=lambda h: world.ports[h],
        clock=clock,
        poll=1.0,
        timeout=10,
    )


def _notifier(ctx: Parts, spool: Spool) -> Notifier:
    """The queue's bounce sink, as QueueService builds it."""
    return Notifier(
        ctx.accounts,
        ctx.store,
        spool,
        hostname=lambda: ctx.config.hostname,
        scratch=spool.tmp_dir,
    )


async def _until(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_enqueue_wakes_service_and_delivers(world: World, sinks) -> None:
    handler, ctl = sinks()
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    ctx = _context(world)
    svc = _service(world, ctx)

    async def go() -> None:
        await svc.start()
        try:
            assert svc.status()["running"]
            await asyncio.to_thread(
                functools.partial(ctx.queue.enqueue, origin="submission"),
                "alice@pillarbox.test",
                ["bob@example.net"],
                world.message(),
            )
            await _until(lambda: len(handler.messages) == 1)
            await _until(lambda: svc.status()["delivered"] == 1)
            await _until(lambda: ctx.queue.ids() == [])  # type: ignore[attr-defined]
        finally:
            await svc.stop()
        assert not svc.status()["running"]

    asyncio.run(go())
    # The message went out DKIM-signed for the local domain.
    assert b"DKIM-Signature:" in handler.messages[0].content
    assert (world.tmp / "data" / "dkim" / "pillarbox.test" / "pb1.rsa.key").exists()


def test_entries_present_at_start_are_delivered(world: World, sinks) -> None:
    handler, ctl = sinks()
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    ctx = _context(world)
    ctx.queue.enqueue("alice@pillarbox.test", ["bob@example.net"], world.message())
    svc = _service(world, ctx)

    async def go() -> None:
        await svc.start()
        try:
            await _until(lambda: len(handler.messages) == 1)
        finally:
            await svc.stop()

    asyncio.run(go())


def _bounce_to_local_sender(world: World, sinks: Any) -> tuple[RecordingStore, str]:
    """Alice's message is refused by the next hop; returns the store her DSN reached
    and the queue id of her message."""
    handler, ctl = sinks()
    handler.rcpt_replies["nobody@example.net"] = "550 5.1.1 unknown user"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    ctx = _context(world)
    svc = _service(world, ctx)
    store: RecordingStore = ctx.store  # type: ignore[assignment]

    async def go() -> str:
        await svc.start()
        try:
            qid = await asyncio.to_thread(
                ctx.queue.enqueue, "Alice@pillarbox.test", ["nobody@example.net"], world.message()
            )
            await _until(lambda: len(store.delivered) == 1)
            return qid
        finally:
            await svc.stop()

    return store, asyncio.run(go())


def test_bounce_to_local_sender_goes_to_store(world: World, sinks) -> None:
    store, _ = _bounce_to_local_sender(world, sinks)
    [(targets, data)] = store.delivered
    assert [t.user for t in targets] == ["alice@pillarbox.test"]
    assert targets[0].header_prefix == b"Return-Path: <>\r\n"
    msg = email.message_from_bytes(data)
    assert msg.get_content_type() == "multipart/report"
    assert b"Status: 5.1.1" in data
    assert Spool(world.tmp / "queue").ids() == []


def test_bounce_to_remote_sender_is_queued_with_null_sender(world: World) -> None:
    ctx = _context(world)
    spool: Spool = ctx.queue  # type: ignore[assignment]
    asyncio.run(_notifier(ctx, spool).send_dsn("carol@remote.example", b"DSN\r\n", "Q1"))
    [entry] = list(spool.entries())
    assert entry.sender == "" and entry.kind == "bounce"
    assert [r.address for r in entry.recipients] == ["carol@remote.example"]
    assert list(spool.tmp_dir.iterdir()) == []


def test_ctl_handlers(world: World) -> None:
    clock = FakeClock()
    ctx = _context(world)
    spool = Spool(world.tmp / "queue", clock=clock)
    ctx.queue = spool
    # registers queue.* handlers on the ctl socket
    [svc] = create(ctx.config, ctx.deps, ctx.ctl_handlers)
    assert isinstance(svc, QueueService)
    svc.clock = clock
    svc.engine.clock = clock
    qid = spool.enqueue("alice@pillarbox.test", ["b@example.net"], world.message())
    entry = spool.load(qid)
    later = entry.with_recipients(
        [
            dataclasses.replace(r, next_attempt=clock.now + 9999, last_error="451 later")
            for r in entry.recipients
        ]
    )
    spool.save(later)

    async def go() -> None:
        listed = await ctx.ctl_handlers["queue.list"]({})
        assert [e["id"] for e in listed] == [qid]
        assert listed[0]["recipients"][0]["last_error"] == "451 later"
        assert listed[0]["recipients"][0]["status"] == "pending"
        assert await svc.ctl_retry(qid) == 1
        assert spool.load(qid).recipients[0].next_attempt == clock.now
        assert (await ctx.ctl_handlers["queue.flush"]({}))["rescheduled"] == 1
        with pytest.raises(EntryNotFound):
            await svc.ctl_retry("0123456789ABCDEF0123")
        from appliance.runtime import CommandError

        with pytest.raises(CommandError):
            await ctx.ctl_handlers["queue.delete"]({"id": "0123456789ABCDEF0123"})
        with pytest.raises(CommandError):
            await ctx.ctl_handlers["queue.delete"]({})
        assert await ctx.ctl_handlers["queue.delete"]({"id": qid}) == {"deleted": qid}
        assert await svc.ctl_list() == []

    asyncio.run(go())


def test_bounce_to_unknown_local_sender_is_dropped(world: World) -> None:
    ctx = _context(world)
    spool: Spool = ctx.queue  # type: ignore[assignment]
    asyncio.run(_notifier(ctx, spool).send_dsn("ghost@pillarbox.test", b"DSN\r\n", "Q2"))
    assert spool.ids() == []
    assert ctx.store.delivered == []  # type: ignore[attr-defined]


def test_queue_and_filters_share_the_daemons_dns_cache(world: World) -> None:
    """One resolver and one cache in the daemon: the queue uses the daemon's dns, the filters
    the same with their own time budget (filters.dns_timeout)."""
    ctx = _context(world)
    svc = QueueService(ctx.config, ctx.deps)
    filters, _ = build_filters(ctx)
    [mailauth] = [f for f in filters if f.name == "mailauth"]
    assert svc.engine.router.resolver is ctx.dns and ctx.dns.cache is not None
    assert mailauth.resolver.cache is ctx.dns.cache  # type: ignore[attr-defined]
    assert mailauth.resolver.timeout == ctx.config.filters.dns_timeout  # type: ignore[attr-defined]


def test_queue_bounces_go_through_the_notifier(
    world: World, sinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, str]] = []
    original = Notifier.send

    def spy(self: Notifier, recipient: str, data: bytes, kind: Any, log_id: str = "-") -> bool:
        calls.append((recipient, kind, log_id))
        return original(self, recipient, data, kind, log_id)

    monkeypatch.setattr(Notifier, "send", spy)
    store, qid = _bounce_to_local_sender(world, sinks)
    assert calls == [("Alice@pillarbox.test", "dsn", qid)]
    [(_, data)] = store.delivered
    assert b"Auto-Submitted: auto-replied" in data
