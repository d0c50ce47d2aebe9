"""An in-process POP3 service on loopback ports, with a real store, accounts and TLS."""

from __future__ import annotations

import asyncio
import poplib
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from appliance import config
from appliance.accounts import Accounts, Authenticator
from appliance.events import ChangeBus
from appliance.pop3.service import Pop3Deps, Pop3Service
from appliance.store.base import DeliveryTarget
from appliance.store.maildir import MaildirStore
from appliance.tls import TlsManager
from tests.harness import write_config

USER = "alice@example.org"
PASSWORD = "correct-Horse-battery-42"
OTHER = "bob@example.org"

T = TypeVar("T")


class Parts:
    """The objects a POP3 service is built from, as a test reaches them. Once the
    service runs, assigning ``config`` gives new connections that config (as a reload
    hands it in; tests of reload's listener changes call ``service.reload(new)``)."""

    def __init__(self, cfg: config.Config, accounts: Accounts, deps: Pop3Deps) -> None:
        self._config = cfg
        self.accounts = accounts
        self.deps = deps
        self.store = deps.store
        self.service: Pop3Service | None = None

    @property
    def config(self) -> config.Config:
        return self.service.config if self.service is not None else self._config

    @config.setter
    def config(self, new: config.Config) -> None:
        assert self.service is not None
        self.service.config = new


class Loop:
    """An event loop in a background thread, so blocking clients can run in the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Pop3Server:
    def __init__(self, ctx: Parts, service: Pop3Service, loop: Loop, root: Path) -> None:
        self.ctx = ctx
        self.service = service
        self.loop = loop
        self.root = root
        self._sources = iter(range(1_000_000))

    def port(self, kind: str) -> int:
        address = self.service.listeners.addresses()[kind][0]
        return int(address.rsplit(":", 1)[1])

    def deliver(self, data: bytes, user: str = USER) -> int:
        src = self.root / f"src-{next(self._sources)}.eml"
        src.write_bytes(data)
        [a] = self.ctx.store.deliver([DeliveryTarget(user)], src)
        return a.uid

    def plain(self, timeout: float = 10) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", self.port("pop3"), timeout=timeout)

    def tls(self, timeout: float = 10) -> poplib.POP3_SSL:
        return poplib.POP3_SSL(
            "127.0.0.1", self.port("pop3s"), timeout=timeout, context=client_tls()
        )

    def raw(self, kind: str = "pop3") -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port(kind)), timeout=10)
        return sock

    def login(self, user: str = USER, password: str = PASSWORD) -> poplib.POP3:
        client = self.plain()
        client.user(user)
        client.pass_(password)
        return client


def cmd(client: poplib.POP3, line: str) -> bytes:
    """Send one command and return its single-line reply (raises error_proto on -ERR)."""
    reply: bytes = client._shortcmd(line)  # type: ignore[attr-defined]
    return reply


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_context(tmp_path: Path, **limits: int) -> Parts:
    cfg_path = write_config(
        tmp_path,
        listeners={"pop3": ["127.0.0.1:0"], "pop3s": ["127.0.0.1:0"]},
        limits={"command_timeout": 30, **limits},
    )
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("example.org")
    accounts.add_user(USER, PASSWORD)
    accounts.add_user(OTHER, PASSWORD)
    bus = ChangeBus()
    store = MaildirStore(cfg.mail_dir, notify=bus.publish, summarizer=lambda p: b"")
    tls = TlsManager(cfg.tls.cert, cfg.tls.key, "localhost", True)
    return Parts(cfg, accounts, Pop3Deps(store=store, auth=Authenticator(accounts), tls=tls))


ServerFactory = Callable[..., Pop3Server]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    started: list[Pop3Server] = []

    def factory(**limits: int) -> Pop3Server:
        d = tmp_path / f"srv{len(started)}"
        ctx = make_context(d, **limits)
        loop = Loop()
        service = Pop3Service(ctx.config, ctx.deps)
        ctx.service = service
        # These tests exercise commands, not TLS: allow USER/PASS on loopback here only
        # (the product refuses plaintext logins before TLS from every address).
        service.loopback_plaintext = True
        loop.run(service.start())
        server = Pop3Server(ctx, service, loop, d)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.loop.run(server.service.stop())
        server.loop.close()


@pytest.fixture
def server(make_server: ServerFactory) -> Pop3Server:
    return make_server()
