"""Helpers for SMTP protocol tests: the SMTP service running in a background event
loop on loopback port 0, real accounts (SQLite), a real MaildirStore, a real TLS
context (self-signed) and a small fake outbound queue that spools durably to a dir."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import ssl
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from appliance import config as config_mod
from appliance.accounts import Accounts, Authenticator, LoginThrottle
from appliance.delivery.notices import Notifier
from appliance.delivery.pipeline import PipelineDeps
from appliance.events import ChangeBus
from appliance.filters.base import Filter, FilterChain, RecipientFilter
from appliance.queue.spool import scratch_dir
from appliance.smtp.service import SmtpService
from appliance.smtp.state import SmtpDeps
from appliance.store.base import INBOX
from appliance.store.maildir import MaildirStore
from appliance.tls import TlsManager
from tests.harness import write_config

T = TypeVar("T")

PASSWORD = "correct horse battery"
DOMAIN = "example.org"


class FakeQueue:
    """OutboundQueue: copies the message durably into a directory and remembers it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.items: list[tuple[str, tuple[str, ...], Path]] = []
        self.fail = False
        self._lock = threading.Lock()

    def enqueue(
        self, sender: str, recipients: Sequence[str], message: Path, **meta: Any
    ) -> str:  # meta: origin, wire_sender, auth_results, forward_domain (not kept here)
        if self.fail:
            raise OSError(28, "No space left on device (test)")
        with self._lock:
            qid = f"Q{len(self.items) + 1:05d}"
            dest = self.directory / qid
            with message.open("rb") as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            self.items.append((sender, tuple(recipients), dest))
        return qid


class Parts:
    """The objects the SMTP service was built from, as a test reaches them.

    Assigning ``config`` gives new connections that config (a reload hands it in the
    same way; tests of reload's listener changes call ``service.reload(new)``);
    assigning ``store`` gives new connections that store."""

    def __init__(
        self,
        service: SmtpService,
        accounts: Accounts,
        bus: ChangeBus,
        tls: TlsManager,
        chain: FilterChain,
    ) -> None:
        self.service = service
        self.accounts = accounts
        self.bus = bus
        self.tls = tls
        self.chain = chain

    @property
    def config(self) -> config_mod.Config:
        return self.service.state.config

    @config.setter
    def config(self, new: config_mod.Config) -> None:
        self.service.state.config = new

    @property
    def store(self) -> Any:
        return self.service.state.deps.delivery.store

    @store.setter
    def store(self, store: Any) -> None:
        deps = self.service.state.deps
        self.service.state.deps = replace(deps, delivery=replace(deps.delivery, store=store))

    @property
    def auth(self) -> Authenticator:
        return self.service.state.deps.auth

    @property
    def filters(self) -> list[Filter]:
        return self.chain.filters

    @filters.setter
    def filters(self, filters: list[Filter]) -> None:
        self.chain.filters[:] = filters

    @property
    def recipient_filters(self) -> list[RecipientFilter]:
        return self.chain.recipient_filters


@dataclass
class SmtpEnv:
    ctx: Parts
    service: SmtpService
    loop: asyncio.AbstractEventLoop
    queue: FakeQueue
    store: MaildirStore
    accounts: Accounts
    tmp: Path
    ports: dict[str, int] = field(default_factory=dict)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def client_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ctx.tls.cert))
        return ctx

    def smtp(self, listener: str = "smtp", timeout: float = 10) -> smtplib.SMTP:
        port = self.ports[listener]
        if listener == "submissions":
            return smtplib.SMTP_SSL("127.0.0.1", port, timeout=timeout, context=self.client_tls())
        return smtplib.SMTP("127.0.0.1", port, timeout=timeout)

    def submit_client(self, user: str = f"alice@{DOMAIN}") -> smtplib.SMTP:
        s = self.smtp("submission")
        s.starttls(context=self.client_tls())
        s.login(user, PASSWORD)
        return s

    def messages(self, user: str, mailbox: str = INBOX) -> list[bytes]:
        try:
            snap = self.store.snapshot(user, mailbox)
        except Exception:
            return []
        out = []
        for info in snap.messages:
            with self.store.open_message(user, mailbox, info.uid) as fh:
                out.append(fh.read())
        return out

    def spool_files(self) -> list[Path]:
        d = self.ctx.config.data_dir / "incoming"
        return sorted(d.iterdir()) if d.exists() else []


def notifier(cfg: config_mod.Config, accounts: Accounts, store: Any, queue: Any) -> Notifier:
    """The box's one notifier, as appliance.daemon.create_services builds it."""
    return Notifier(
        accounts,
        store,
        queue,
        hostname=lambda: cfg.hostname,
        scratch=scratch_dir(cfg.queue_dir),
    )


def populate(accounts: Accounts) -> None:
    accounts.add_domain(DOMAIN)
    accounts.add_domain("catch.test")
    for user in ("alice", "bob", "carol"):
        accounts.add_user(f"{user}@{DOMAIN}", PASSWORD)
    accounts.add_alias(f"sales@{DOMAIN}", f"alice@{DOMAIN}")
    accounts.add_alias(f"sales@{DOMAIN}", f"bob@{DOMAIN}")
    accounts.add_alias(f"al@{DOMAIN}", f"alice@{DOMAIN}")
    accounts.add_alias(f"fwd@{DOMAIN}", "someone@remote.test")
    accounts.add_alias("@catch.test", f"carol@{DOMAIN}")


def make_template(directory: Path) -> Path:
    """Accounts DB and TLS key pair built once (argon2 hashing is the slow part)."""
    directory.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(directory / "accounts.sqlite")
    populate(accounts)
    accounts.close()
    TlsManager(
        directory / "tls" / "cert.pem", directory / "tls" / "key.pem", "mail.pillarbox.test", True
    )
    return directory


def _build(tmp: Path, limits: dict[str, Any], template: Path | None = None) -> SmtpEnv:
    listeners: dict[str, list[str]] = {name: [] for name in config_mod.DEV_PORTS}
    for name in ("smtp", "submission", "submissions"):
        listeners[name] = ["127.0.0.1:0"]
    cfg = config_mod.load(write_config(tmp, listeners=listeners, limits=limits))
    if template is not None:
        cfg.accounts_db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template / "accounts.sqlite", cfg.accounts_db)
        cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template / "tls" / "cert.pem", cfg.tls.cert)
        shutil.copyfile(template / "tls" / "key.pem", cfg.tls.key)
    accounts = Accounts(cfg.accounts_db)
    if template is None:
        populate(accounts)
    bus = ChangeBus()
    store = MaildirStore(cfg.mail_dir, notify=bus.publish, summarizer=lambda p: b"")
    queue = FakeQueue(tmp / "fakequeue")
    tls = TlsManager(cfg.tls.cert, cfg.tls.key, cfg.hostname, True)
    chain = FilterChain()
    deps = SmtpDeps(
        auth=Authenticator(accounts, LoginThrottle(free_failures=3, base=30.0)),
        tls=tls,
        delivery=PipelineDeps(accounts, store, queue, chain, notifier(cfg, accounts, store, queue)),
    )
    loop = asyncio.new_event_loop()
    service = SmtpService(cfg, deps)
    parts = Parts(service, accounts, bus, tls, chain)
    return SmtpEnv(parts, service, loop, queue, store, accounts, tmp)


def start(
    tmp: Path, limits: dict[str, Any], template: Path | None = None
) -> tuple[SmtpEnv, threading.Thread]:
    e = _build(tmp, limits, template)
    thread = threading.Thread(target=e.loop.run_forever, daemon=True)
    thread.start()
    e.call(e.service.start())
    for name, addrs in e.service.status()["listeners"].items():
        e.ports[name] = int(addrs[0].rsplit(":", 1)[1])
    return e, thread


def stop(e: SmtpEnv, thread: threading.Thread) -> None:
    try:
        e.call(e.service.stop(), timeout=30)
    finally:
        e.loop.call_soon_threadsafe(e.loop.stop)
        thread.join(10)
        e.loop.close()
        e.accounts.close()


def message(subject: str = "hello", body: str = "Hi there.\r\n", **headers: str) -> bytes:
    lines = [f"From: alice@{DOMAIN}", f"To: bob@{DOMAIN}", f"Subject: {subject}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
