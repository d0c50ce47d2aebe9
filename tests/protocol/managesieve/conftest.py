"""An in-process ManageSieve service on a loopback port, with real accounts, the real
Sieve store and TLS; and a small raw-socket client that reads RFC 5804 responses."""

from __future__ import annotations

import base64
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from appliance import config
from appliance.accounts import Accounts, Authenticator, LoginThrottle
from appliance.filters.sieve_store import store_for
from appliance.managesieve.service import ManageSieveDeps, ManageSieveService
from appliance.tls import TlsManager
from tests.harness import write_config
from tests.protocol.pop3.conftest import Loop, client_tls

USER = "alice@example.org"
PASSWORD = "correct-Horse-battery-42"
OTHER = "bob@example.org"
_LITERAL_END = re.compile(rb"\{(\d+)\}\r\n\Z")


def plain(user: str = USER, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Client:
    """One connection: ``send`` raw bytes, ``response`` reads up to OK/NO/BYE."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file: BinaryIO = self.sock.makefile("rb")
        self.greeting = self.response()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One response line, a literal's octets folded into it."""
        line = self.file.readline()
        while (m := _LITERAL_END.search(line)) is not None:
            line += self.file.read(int(m.group(1))) + self.file.readline()
        return line

    def response(self) -> tuple[list[bytes], bytes]:
        items: list[bytes] = []
        while True:
            line = self.line()
            if not line:
                raise ConnectionError("closed")
            if line.startswith((b"OK", b"NO", b"BYE")):
                return items, line
            items.append(line)

    def cmd(self, data: bytes | str) -> bytes:
        """Send one command (CRLF added) and return its final response line."""
        self.send((data.encode() if isinstance(data, str) else data) + b"\r\n")
        return self.response()[1]

    def starttls(self) -> list[bytes]:
        assert self.cmd("STARTTLS").startswith(b"OK")
        self.file.close()
        self.sock = client_tls().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        caps, ok = self.response()  # RFC 5804 2.2: capabilities again after TLS
        assert ok.startswith(b"OK")
        return caps

    def login(self, user: str = USER, password: str = PASSWORD) -> None:
        self.starttls()
        reply = self.cmd(f'AUTHENTICATE "PLAIN" "{plain(user, password)}"')
        assert reply.startswith(b"OK"), reply

    def closed(self) -> bool:
        try:
            return self.file.read(1) == b""
        except (ConnectionError, ssl.SSLError, TimeoutError):
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class Server:
    def __init__(self, service: ManageSieveService, loop: Loop, accounts: Accounts) -> None:
        self.service = service
        self.loop = loop
        self.accounts = accounts
        self.scripts = service.deps.scripts
        self.clients: list[Client] = []

    @property
    def port(self) -> int:
        address = self.service.listeners.addresses()["managesieve"][0]
        return int(address.rsplit(":", 1)[1])

    def connect(self) -> Client:
        client = Client(self.port)
        self.clients.append(client)
        return client

    def login(self, user: str = USER) -> Client:
        client = self.connect()
        client.login(user)
        return client


ServerFactory = Callable[..., Server]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    started: list[Server] = []

    def factory(limits: dict[str, Any] | None = None, **managesieve: Any) -> Server:
        d = tmp_path / f"srv{len(started)}"
        cfg_path = write_config(
            d,
            listeners={"managesieve": ["127.0.0.1:0"]},
            limits={"command_timeout": 30, **(limits or {})},
            managesieve=managesieve,
        )
        cfg = config.load(cfg_path)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        accounts = Accounts(cfg.accounts_db)
        accounts.add_domain("example.org")
        accounts.add_user(USER, PASSWORD)
        accounts.add_user(OTHER, PASSWORD)
        tls = TlsManager(cfg.tls.cert, cfg.tls.key, "localhost", True)
        auth = Authenticator(accounts, LoginThrottle.from_limits(cfg.limits))
        service = ManageSieveService(cfg, ManageSieveDeps(store_for(cfg.data_dir), auth, tls))
        loop = Loop()
        loop.run(service.start())
        server = Server(service, loop, accounts)
        started.append(server)
        return server

    yield factory
    for server in started:
        for client in server.clients:
            client.close()
        server.loop.run(server.service.stop())
        server.loop.close()


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    return make_server()
