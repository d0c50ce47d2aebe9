"""An in-process IMAP service on loopback (real TLS, real MaildirStore, real accounts)."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.accounts import Accounts, Authenticator, LoginThrottle
from appliance.events import ChangeBus
from appliance.imap.service import ImapService
from appliance.imap.session import ImapDeps
from appliance.mime.summary import summarize
from appliance.store.base import DeliveryTarget
from appliance.store.maildir import MaildirStore
from appliance.tls import TlsManager, client_context
from tests.harness import write_config

PASSWORD = "correct horse battery staple 7"


class Parts:
    """The objects the IMAP service was built from, as a test reaches them. Assigning
    ``config`` gives new connections that config (as a reload hands it in)."""

    def __init__(self, service: ImapService, accounts: Accounts) -> None:
        self.service = service
        self.accounts = accounts
        self.store = service.deps.store
        self.auth = service.deps.auth
        self.bus = service.deps.bus
        self.tls = service.deps.tls

    @property
    def config(self) -> config.Config:
        return self.service.config

    @config.setter
    def config(self, new: config.Config) -> None:
        self.service.config = new


@dataclass
class ImapServer:
    ctx: Parts
    service: ImapService
    loop: asyncio.AbstractEventLoop
    host: str
    port: int
    tls_port: int
    user: str
    tmp: Path

    def client_tls(self) -> ssl.SSLContext:
        return client_context(verify=False)

    def imaps(self, login: bool = True, user: str | None = None) -> imaplib.IMAP4_SSL:
        conn = imaplib.IMAP4_SSL(
            self.host, self.tls_port, ssl_context=self.client_tls(), timeout=20
        )
        if login:
            conn.login(user or self.user, PASSWORD)
        return conn

    def imap_starttls(self, login: bool = True) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.port, timeout=20)
        conn.starttls(self.client_tls())
        if login:
            conn.login(self.user, PASSWORD)
        return conn

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a coroutine function on the server loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(30)

    def deliver(self, message: bytes, mailbox: str = "INBOX", user: str | None = None) -> int:
        path = self.tmp / "incoming.eml"
        path.write_bytes(message)
        result = self.ctx.store.deliver([DeliveryTarget(user or self.user, mailbox)], path)
        return result[0].uid

    def add_user(self, email: str) -> str:
        self.ctx.accounts.add_user(email, PASSWORD)
        return email


def make_message(subject: str = "Hello", body: str = "Body text\r\n", **headers: str) -> bytes:
    lines = [
        "From: Alice Example <alice@example.org>",
        "To: Bob <bob@example.org>",
        f"Subject: {subject}",
        "Date: Mon, 23 Nov 2026 09:00:00 +0000",
        f"Message-ID: <{abs(hash((subject, body))) % 10**12}@example.org>",
    ]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@pytest.fixture
def imap_server(tmp_path: Path) -> Iterator[ImapServer]:
    cfg = config.load(write_config(tmp_path, limits={"max_message_size": 8 * 1024 * 1024}))
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("example.org")
    user = "bob@example.org"
    accounts.add_user(user, PASSWORD, quota_bytes=10 * 1024 * 1024)
    bus = ChangeBus()
    cfg.mail_dir.mkdir(parents=True, exist_ok=True)
    store = MaildirStore(cfg.mail_dir, notify=bus.publish, summarizer=summarize)
    store.ensure_user(user)
    tls = TlsManager(cfg.tls.cert, cfg.tls.key, cfg.hostname, True)
    deps = ImapDeps(
        store=store,
        auth=Authenticator(accounts, LoginThrottle(free_failures=50)),
        bus=bus,
        tls=tls,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    service = ImapService(cfg, deps)
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(10)
    server = ImapServer(
        Parts(service, accounts),
        service,
        loop,
        "127.0.0.1",
        cfg.listeners.imap[0].port,
        cfg.listeners.imaps[0].port,
        user,
        tmp_path,
    )
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        accounts.close()
