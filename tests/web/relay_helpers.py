"""A relay (smarthost) for the web tests: aiosmtpd on loopback with STARTTLS and AUTH
(user ``me``, password ``relay-secret``), a certificate for ``*.relay.example``, and the
:class:`webui.relaycheck.Probe` that routes ``*.relay.example`` to it (any other name is
unknown, ``closed.relay.example`` leads to a closed port)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness import free_port
from webui.relaycheck import Probe

USER, SECRET = "me", "relay-secret"
_lock = threading.Lock()
_relay: tuple[Controller, Controller, bytes] | None = None


def _pair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.relay.example")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        SECRET.encode(),
    )
    return AuthResult(success=ok, handled=False)


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "554 5.7.1 this test relay takes no mail"


def relay() -> tuple[int, int, bytes]:
    """(STARTTLS port, implicit TLS port, certificate PEM) of the shared test relay,
    started on first use."""
    global _relay
    with _lock:
        if _relay is None:
            cert, key = _pair()
            folder = Path(tempfile.mkdtemp(prefix="relay-"))
            (folder / "c.pem").write_bytes(cert)
            (folder / "k.pem").write_bytes(key)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(folder / "c.pem", folder / "k.pem")
            controller = Controller(
                _Sink(),
                hostname="127.0.0.1",
                port=free_port(),
                tls_context=ctx,
                authenticator=_auth,
                auth_require_tls=True,
            )
            controller.start()
            implicit = Controller(  # SSL/TLS from the first byte, as on port 465
                _Sink(),
                hostname="127.0.0.1",
                port=free_port(),
                ssl_context=ctx,
                authenticator=_auth,
                auth_require_tls=True,
            )
            implicit.start()
            _relay = (controller, implicit, cert)
        return int(_relay[0].port), int(_relay[1].port), _relay[2]


def probe() -> Probe:
    """Port 465 leads to the implicit-TLS listener, any other port to the STARTTLS one."""
    port, tls_port, cert = relay()
    closed = free_port()

    def connect(address: tuple[str, int], timeout: float) -> socket.socket:
        host = address[0]
        if host == "closed.relay.example":
            return socket.create_connection(("127.0.0.1", closed), timeout)
        if not host.endswith(".relay.example"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return socket.create_connection(
            ("127.0.0.1", tls_port if address[1] == 465 else port), timeout
        )

    return Probe(
        connect=connect,
        tls=lambda: ssl.create_default_context(cadata=cert.decode("ascii")),
        timeout=10,
    )
