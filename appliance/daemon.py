"""The mail daemon: builds the shared context, starts every service, handles signals.

Services are plug points: each module named in SERVICE_MODULES has a function
``create(ctx: Context) -> list[Service]``. A service starts its listeners in ``start``,
stops accepting and drains in ``stop``, and re-reads ``ctx.config`` on ``reload``.

Signals: SIGTERM/SIGINT drain and exit; SIGHUP (and ctl ``reload``) re-reads
pillarbox.toml (an invalid file keeps the old config and logs why) and the certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance import __version__, config
from appliance.accounts import Accounts, Authenticator, LoginThrottle
from appliance.dns import DnsCache, DnsResolver
from appliance.events import ChangeBus
from appliance.filters.base import Filter, RecipientFilter
from appliance.queue.base import OutboundQueue
from appliance.store.base import MailStore
from appliance.tls import TlsManager, trim_asyncio_tls_buffers

log = logging.getLogger(__name__)

# Each module provides create(ctx) -> list[Service]. Order = start order.
SERVICE_MODULES: tuple[str, ...] = (
    "appliance.ctl.service",
    "appliance.filters.service",
    "appliance.queue.service",
    "appliance.backup.service",
    "appliance.smtp.service",
    "appliance.imap.service",
    "appliance.pop3.service",
)

DRAIN_SECONDS = 10.0


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def reload(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


@dataclass
class Context:
    """Everything services share. ``config`` is replaced on a successful reload."""

    config: config.Config
    accounts: Accounts
    auth: Authenticator
    store: MailStore
    bus: ChangeBus
    tls: TlsManager
    queue: OutboundQueue
    # One resolver and cache for queue and filters (filters use it with their own timeout).
    dns: DnsResolver = field(default_factory=lambda: DnsResolver(cache=DnsCache()))
    filters: list[Filter] = field(default_factory=list)
    recipient_filters: list[RecipientFilter] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    services: list[Service] = field(default_factory=list)
    request_stop: Callable[[], None] = lambda: None
    # ctl command name -> async handler(args) -> JSON-able result (see appliance.ctl.service)
    ctl_handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = field(
        default_factory=dict
    )

    def reload_config(self) -> str | None:
        """Re-read the config file; returns an error text (old config kept) or None."""
        if self.config.source is None:
            return "no config file to reload"
        try:
            new = config.load(self.config.source)
        except config.ConfigError as exc:
            log.error("reload=rejected reason=%s", exc)
            return str(exc)
        self.config = new
        try:
            self.tls.reload()
        except (OSError, ValueError) as exc:
            log.error("reload=tls-failed reason=%s", exc)
            return f"certificate: {exc}"
        log.info("reload=ok source=%s", new.source)
        return None

    async def reload(self) -> str | None:
        error = await asyncio.to_thread(self.reload_config)
        if error is None:
            for svc in self.services:
                await svc.reload()
        return error

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "hostname": self.config.hostname,
            "uptime": round(time.time() - self.started, 1),
            "services": {svc.name: svc.status() for svc in self.services},
        }


def build_context(cfg: config.Config) -> Context:
    """Construct the shared objects (blocking: call before the loop starts serving)."""
    from appliance.mime.summary import is_current as summary_is_current
    from appliance.mime.summary import summarize
    from appliance.queue.spool import Spool
    from appliance.store.maildir import MaildirStore

    for d in (cfg.data_dir, cfg.mail_dir, cfg.queue_dir, cfg.ctl_socket.parent):
        d.mkdir(parents=True, exist_ok=True)
    # The daemon only reads accounts; on the appliance the file belongs to the web UI's
    # user, so a daemon compromise cannot make itself an admin. Dev mode (one user runs
    # everything, devrun adds the dev domain) opens it read-write.
    accounts = Accounts(cfg.accounts_db, readonly=not cfg.dev)
    bus = ChangeBus()
    store = MaildirStore(
        cfg.mail_dir, notify=bus.publish, summarizer=summarize, summary_current=summary_is_current
    )
    tls = TlsManager(cfg.tls.cert, cfg.tls.key, cfg.hostname, cfg.tls.self_signed)
    ctx = Context(
        config=cfg,
        accounts=accounts,
        # [limits] login_*: read once at start (a reload keeps the running throttle).
        auth=Authenticator(accounts, LoginThrottle.from_limits(cfg.limits)),
        store=store,
        bus=bus,
        tls=tls,
        queue=Spool(cfg.queue_dir),
    )
    # [filters]: mailauth, DNSBL/greylisting, ClamAV, rspamd; per-user Sieve.
    from appliance.filters.setup import build_filters

    ctx.filters, ctx.recipient_filters = build_filters(ctx)
    return ctx


M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD = 1024 * 1024


def fixed_mmap_threshold() -> None:
    """Give glibc malloc a fixed mmap threshold of 1 MiB, so large blocks go back to the
    system when freed.

    Each argon2 password check allocates 19 MiB (appliance.accounts.hashing) in an
    executor thread. With glibc's default dynamic threshold the first free raises the
    threshold above 19 MiB, and each thread's arena then keeps that block: +19 MiB of
    RSS per thread that ever checked a password (up to the executor's 6 threads,
    ~115 MiB), found by tests/protocol/smtp/test_smtp_fuzz.py. With a fixed threshold
    RSS stays flat across logins. No-op where glibc is absent.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def create_services(ctx: Context) -> list[Service]:
    services: list[Service] = []
    for name in SERVICE_MODULES:
        module = importlib.import_module(name)
        services.extend(module.create(ctx))
    return services


async def serve(ctx: Context, ready: Callable[[], None] | None = None) -> None:
    """Start all services, wait for SIGTERM/SIGINT, drain, stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    ctx.request_stop = stop.set

    pending: set[asyncio.Task[str | None]] = set()

    def on_hup() -> None:
        task = loop.create_task(ctx.reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)

    trim_asyncio_tls_buffers()
    fixed_mmap_threshold()
    ctx.services = create_services(ctx)
    started: list[Service] = []
    try:
        for svc in ctx.services:
            await svc.start()
            started.append(svc)
        log.info("daemon=ready version=%s services=%s", __version__, len(started))
        if ready:
            ready()
        await stop.wait()
        log.info("daemon=stopping")
    finally:
        for svc in reversed(started):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.stop(), DRAIN_SECONDS)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("daemon=stopped")


def run(config_path: Path) -> None:
    cfg = config.load(config_path)
    ctx = build_context(cfg)
    asyncio.run(serve(ctx))
