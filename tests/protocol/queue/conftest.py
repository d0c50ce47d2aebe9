"""Fixtures for outbound delivery tests: a test CA, aiosmtpd sinks on loopback port 0,
a fake DNS resolver, a fake clock and a DeliveryEngine wired to them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import random
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance import config as config_mod
from appliance.queue.engine import DeliveryEngine, RetryPolicy
from appliance.queue.mtasts import MtaSts, PolicyFetcher
from appliance.queue.routes import Router
from appliance.queue.smtpclient import SmtpClient
from appliance.queue.spool import Spool
from tests.dnsfake import FakeResolver

# ------------------------------------------------------------------ PKI


@dataclass
class Pki:
    directory: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def leaf(self, *names: str, ca: Pki | None = None) -> tuple[Path, Path]:
        """A certificate for ``names`` signed by this CA; returns (cert, key) files."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        stem = self.directory / f"{names[0]}-{x509.random_serial_number()}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file

    def server_context(self, *names: str) -> ssl.SSLContext:
        cert, key = self.leaf(*names)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx

    def client_context(self, verify: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Pillarbox Test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pki = Pki(directory, key, cert)
    pki.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# ------------------------------------------------------------------ SMTP sink


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None
    tls: bool


@dataclass
class SinkHandler:
    """Records messages; ``rcpt_replies`` maps an address to a refusal ("451 4.7.1 x")."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = ""
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.decode() if session.authenticated else None
        tls = session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None
        with self.lock:
            self.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or envelope.content),
                    login,
                    tls,
                )
            )
        return "250 2.0.0 queued"


class LoopbackController(Controller):  # type: ignore[misc]
    """aiosmtpd Controller on 127.0.0.1 with an ephemeral port."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Authenticator:
    def __init__(self, login: str, password: str) -> None:
        self.login = login
        self.password = password
        self.attempts: list[str] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.attempts.append(auth_data.login.decode())
        ok = auth_data.login.decode() == self.login and auth_data.password.decode() == self.password
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@pytest.fixture
def sinks() -> Iterator[Callable[..., tuple[SinkHandler, LoopbackController]]]:
    """sinks(**smtp_kwargs) starts one more sink; all are stopped afterwards."""
    started: list[LoopbackController] = []

    def start(handler: SinkHandler | None = None, **kwargs: Any) -> tuple[SinkHandler, Any]:
        h = handler or SinkHandler()
        kwargs.setdefault("ident", "sink")
        c = LoopbackController(h, **kwargs)
        c.start()
        started.append(c)
        return h, c

    yield start
    for c in started:
        c.stop()


# ------------------------------------------------------------------ DNS, clock, bounces


@dataclass
class FakeClock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Bounces:
    sent: list[tuple[str, bytes]] = field(default_factory=list)

    async def send_dsn(self, recipient: str, message: bytes, log_id: str) -> None:
        self.sent.append((recipient, message))


@dataclass
class World:
    """An engine wired to fakes; tests tweak the fields then call ``engine()``."""

    tmp: Path
    pki: Pki
    resolver: FakeResolver = field(default_factory=FakeResolver)
    clock: FakeClock = field(default_factory=FakeClock)
    bounces: Bounces = field(default_factory=Bounces)
    ports: dict[str, int] = field(default_factory=dict)
    fetcher: PolicyFetcher | None = None
    signer: Callable[[str, bytes], bytes] | None = None
    cfg: config_mod.Config | None = None

    def config(self) -> config_mod.Config:
        if self.cfg is None:
            self.cfg = config_mod.loads(
                f'hostname = "mail.pillarbox.test"\ndata_dir = "{self.tmp / "data"}"\n',
                self.tmp,
            )
        return self.cfg

    def configure(self, **changes: Any) -> None:
        self.cfg = dataclasses.replace(self.config(), **changes)

    @property
    def spool(self) -> Spool:
        return Spool(self.tmp / "queue", clock=self.clock)

    def engine(self) -> DeliveryEngine:
        mtasts = MtaSts(self.resolver, self.fetcher, self.clock) if self.fetcher else None
        return DeliveryEngine(
            self.spool,
            config=self.config,
            router=Router(self.resolver, mtasts, random.Random(7), lambda h: self.ports[h]),
            client=SmtpClient("mail.pillarbox.test", self.pki.client_context, timeout=10),
            bounces=self.bounces,
            signer=self.signer,
            is_local_domain=lambda d: d == "pillarbox.test",
            clock=self.clock,
            rng=random.Random(7),
            retry=RetryPolicy(base=300, factor=2, cap=3600, jitter=0.2),
        )

    def add_mx(self, domain: str, host: str, port: int, preference: int = 10) -> None:
        self.resolver.add(domain, "MX", f"{preference} {host}")
        self.resolver.records[(host, "A")] = ["127.0.0.1"]
        self.ports[host] = port

    def message(self, sender: str = "alice@pillarbox.test", to: str = "bob@example.net") -> Path:
        p = self.tmp / "msg.eml"
        p.write_bytes(
            f"From: Alice <{sender}>\r\nTo: <{to}>\r\nSubject: test message\r\n"
            f"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <m1@pillarbox.test>\r\n"
            f"\r\nHello Bob,\r\n.leading dot line\r\n-- \r\nAlice\r\n".encode()
        )
        return p


@pytest.fixture
def world(tmp_path: Path, pki: Pki) -> World:
    return World(tmp_path, pki)
