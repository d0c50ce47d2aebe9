"""Server TLS: one SSLContext for every listener, TLS 1.2 minimum, AEAD only.

A reload never changes a live context: :meth:`TlsManager.load` (in a worker thread)
builds a new one from the certificate files, :meth:`TlsManager.install` (on the event
loop) makes it current. STARTTLS reads :attr:`TlsManager.context` at each upgrade;
implicit-TLS listeners are rebound with the new context (appliance.listeners).
A self-signed certificate is generated on first start when none exists (dev, first boot).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

# Implicit-TLS listeners (465, 993, 995, 443): a connection is counted against the
# per-IP limits only after its handshake, so the handshake itself is bounded in time.
HANDSHAKE_SECONDS = 20.0


def generate_self_signed(cert: Path, key: Path, hostname: str, days: int = 825) -> None:
    """Write an EC P-256 self-signed certificate for ``hostname`` (and localhost)."""
    private = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key.parent.mkdir(parents=True, exist_ok=True)
    cert.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    log.info("tls=self-signed-generated cert=%s hostname=%s", cert, hostname)


TLS_READ_BUFFER = 32 * 1024  # bytes; two full TLS records


def trim_asyncio_tls_buffers() -> None:
    """Give each asyncio TLS connection a 32 KiB read buffer instead of 256 KiB.

    CPython's asyncio TLS layer (``asyncio.sslproto.SSLProtocol``, 3.11) allocates a
    zero-filled ``bytearray`` of ``max_size`` = 256 KiB per connection, so every idle
    IMAPS client cost a quarter megabyte of resident memory (CPython issue #109534):
    1,000 IDLE sessions took 370 MB. Reads are at most that size; a smaller buffer only
    means more, cheaper reads of a fast sender. Called once, before any listener starts.
    """
    from asyncio import sslproto

    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # RFC 9325 4.2: TLS 1.2 only with forward-secret AEAD suites (ECDHE with AES-GCM or
    # ChaCha20-Poly1305): no CBC, no static RSA, no finite-field DHE. TLS 1.3 suites are
    # all AEAD. The web UI's HTTPS uses this same context (webui/serve.py).
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    return ctx


def client_context(verify: bool = True) -> ssl.SSLContext:
    """For outbound SMTP: verified when asked, TLS 1.2 minimum."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class LoadedTls:
    context: ssl.SSLContext
    files: bytes  # SHA-256 of the certificate and key it was loaded from


class TlsManager:
    def __init__(self, cert: Path, key: Path, hostname: str, self_signed: bool) -> None:
        self.cert = cert
        self.key = key
        self.hostname = hostname
        self.self_signed = self_signed
        self._loaded = b""  # SHA-256 of the certificate and key the current context holds
        context = self.load()
        assert context is not None
        self.install(context)

    def _files(self) -> bytes:
        if not (self.cert.exists() and self.key.exists()):
            if not self.self_signed:
                raise FileNotFoundError(f"TLS certificate {self.cert} or key {self.key} missing")
            generate_self_signed(self.cert, self.key, self.hostname)
        # a digest: the key's bytes are not kept beside the context
        return hashlib.sha256(self.cert.read_bytes() + b"\0" + self.key.read_bytes()).digest()

    def load(self) -> LoadedTls | None:
        """Blocking: a new context from the certificate files, or None when they are the
        ones already loaded. Raises OSError/ValueError (ssl.SSLError) for bad files."""
        files = self._files()
        if files == self._loaded:
            return None
        context = server_context()
        context.load_cert_chain(self.cert, self.key)
        log.info("tls=loaded cert=%s", self.cert)
        return LoadedTls(context, files)

    def install(self, loaded: LoadedTls) -> None:
        """On the event loop: make the loaded context the one new handshakes use."""
        self.context = loaded.context
        self._loaded = loaded.files
