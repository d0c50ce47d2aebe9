"""The mail daemon: builds the shared objects, starts every service, handles signals.

Nothing below this module imports it. Each service module has a ``create(...)`` that
receives only the few objects it uses (:func:`create_services` wires them); a service
starts its listeners in ``start``, stops accepting and drains in ``stop``, and receives
the new config in ``reload(new)`` (appliance.runtime.Service).

Signals: SIGTERM/SIGINT drain and exit; SIGHUP (and ctl ``reload``) re-reads
pillarbox.toml (an invalid file keeps the old config and logs why) and the certificate
(appliance.runtime.Supervisor.reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import __version__, config
from appliance.accounts import Accounts, Authenticator, LoginThrottle
from appliance.backup import service as backup_service
from appliance.ctl import alertmail
from appliance.ctl import service as ctl_service
from appliance.delivery.notices import Notifier
from appliance.delivery.pipeline import PipelineDeps
from appliance.dns import DnsCache, DnsResolver
from appliance.events import ChangeBus
from appliance.filters import service as filters_service
from appliance.filters.base import FilterChain
from appliance.filters.sieve_store import store_for
from appliance.imap import service as imap_service
from appliance.imap.session import ImapDeps
from appliance.managesieve import service as managesieve_service
from appliance.migrate import service as migrate_service
from appliance.pop3 import service as pop3_service
from appliance.queue import service as queue_service
from appliance.queue.base import OutboundQueue
from appliance.queue.spool import scratch_dir
from appliance.runtime import CtlHandlers, Service, Supervisor
from appliance.smtp import service as smtp_service
from appliance.smtp.state import SmtpDeps
from appliance.store.base import MailStore
from appliance.tls import TlsManager, trim_asyncio_tls_buffers

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1")

DRAIN_SECONDS = 10.0

# The service modules in start order (create_services wires each; the image build lists
# them for its boot test: image/customize.sh).
SERVICE_MODULES: tuple[str, ...] = tuple(
    m.__name__
    for m in (
        ctl_service,
        filters_service,
        queue_service,
        alertmail,
        backup_service,
        migrate_service,
        smtp_service,
        imap_service,
        pop3_service,
        managesieve_service,
    )
)


@dataclass
class Daemon:
    """The objects the daemon builds once and hands, a few at a time, to the services."""

    supervisor: Supervisor
    accounts: Accounts
    auth: Authenticator
    store: MailStore
    bus: ChangeBus
    tls: TlsManager
    queue: OutboundQueue
    # One resolver and cache for queue and filters (filters use it with their own timeout).
    dns: DnsResolver = field(default_factory=lambda: DnsResolver(cache=DnsCache()))
    chain: FilterChain = field(default_factory=FilterChain)
    ctl_handlers: CtlHandlers = field(default_factory=dict)

    @property
    def config(self) -> config.Config:
        return self.supervisor.config


def open_accounts(cfg: config.Config) -> Accounts:
    # The daemon only reads accounts; on the appliance the file belongs to the web UI's
    # user, so a daemon compromise cannot make itself an admin. Dev mode (one user runs
    # everything, devrun adds the dev domain) opens it read-write.
    return Accounts(cfg.accounts_db, readonly=not cfg.dev)


def build(cfg: config.Config) -> Daemon:
    """Construct the shared objects (blocking: call before the loop starts serving)."""
    from appliance.mime.summary import is_current as summary_is_current
    from appliance.mime.summary import summarize
    from appliance.queue.spool import Spool
    from appliance.store.maildir import MaildirStore

    for d in (cfg.data_dir, cfg.mail_dir, cfg.queue_dir, cfg.ctl_socket.parent):
        d.mkdir(parents=True, exist_ok=True)
    accounts = open_accounts(cfg)
    bus = ChangeBus()
    store = MaildirStore(
        cfg.mail_dir, notify=bus.publish, summarizer=summarize, summary_current=summary_is_current
    )
    tls = TlsManager(cfg.tls.cert, cfg.tls.key, cfg.hostname, cfg.tls.self_signed)
    # The filter chain ([filters]: mailauth, DNSBL/greylisting, ClamAV, rspamd; per-user
    # Sieve) is built by the filters service when it starts.
    return Daemon(
        supervisor=Supervisor(cfg, tls),
        accounts=accounts,
        # [limits] login_*: read once at start (a reload keeps the running throttle; its
        # shared sources follow [webmail] enabled: LoginSources below).
        auth=Authenticator(
            accounts, LoginThrottle.from_limits(cfg.limits, shared_sources=shared_sources(cfg))
        ),
        store=store,
        bus=bus,
        tls=tls,
        queue=Spool(cfg.queue_dir),
    )


def shared_sources(cfg: config.Config) -> tuple[str, ...]:
    """With webmail on, loopback carries every webmail user's logins: the daemon throttles
    it per account only, the web front per browser address (webui.webmail)."""
    return LOOPBACK if cfg.webmail.enabled else ()


@dataclass
class LoginSources:
    """Not a listener: keeps the login throttle's shared sources in step with the config,
    so switching webmail on or off in the dashboard applies at the reload that follows."""

    throttle: LoginThrottle
    name: str = "login-sources"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def reload(self, new: config.Config) -> None:
        self.throttle.share(shared_sources(new))

    def status(self) -> dict[str, Any]:
        return {"shared": sorted(self.throttle.shared)}


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


def create_services(d: Daemon) -> list[Service]:
    """Every service, in start order, each given only what it uses."""
    cfg, handlers = d.config, d.ctl_handlers
    # The one notifier for all box-generated mail (DSNs, over-quota notices, Sieve
    # replies, admin notices); the hostname is read per message, so a reload applies.
    notices = Notifier(
        d.accounts,
        d.store,
        d.queue,
        hostname=lambda: d.config.hostname,
        scratch=scratch_dir(cfg.queue_dir),
    )
    delivery = PipelineDeps(d.accounts, d.store, d.queue, d.chain, notices)
    return [
        LoginSources(d.auth.throttle),
        *ctl_service.create(
            cfg, handlers, d.supervisor, ctl_service.MailboxDeps(d.accounts, d.store)
        ),
        *filters_service.create(cfg, d.dns, d.chain, handlers, replies=notices),
        *queue_service.create(
            cfg, queue_service.QueueDeps(d.accounts, notices, d.queue, d.dns), handlers
        ),
        *alertmail.create(alertmail.AlertDeps(notices), handlers),
        *backup_service.create(cfg, backup_service.BackupDeps(d.accounts, d.store), handlers),
        *migrate_service.create(cfg, migrate_service.MigrateDeps(d.accounts, d.store), handlers),
        *smtp_service.create(cfg, SmtpDeps(d.auth, d.tls, delivery)),
        *imap_service.create(cfg, ImapDeps(d.store, d.auth, d.bus, d.tls)),
        *pop3_service.create(cfg, pop3_service.Pop3Deps(d.store, d.auth, d.tls)),
        *managesieve_service.create(
            cfg,
            managesieve_service.ManageSieveDeps(store_for(cfg.data_dir), d.auth, d.tls),
        ),
    ]


async def serve(d: Daemon, ready: Callable[[], None] | None = None) -> None:
    """Start all services, wait for SIGTERM/SIGINT, drain, stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    supervisor = d.supervisor
    supervisor.request_stop = stop.set

    pending: set[asyncio.Task[str | None]] = set()

    def on_hup() -> None:
        task = loop.create_task(supervisor.reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)

    trim_asyncio_tls_buffers()
    fixed_mmap_threshold()
    supervisor.services = create_services(d)
    started: list[Service] = []
    try:
        for svc in supervisor.services:
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
    asyncio.run(serve(build(cfg)))
