"""The TLS certificate: what is installed, checking an upload, installing it, renewing
the self-signed one. The daemon picks a new certificate up on ``ctl reload``."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from appliance import atomicfile

log = logging.getLogger(__name__)


class CertProblem(ValueError):
    """An upload that cannot be used; the text is shown next to the form."""


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    self_signed: bool
    fingerprint: str

    def days_left(self, now: dt.datetime) -> int:
        return (self.not_after - now).days

    def covers(self, hostname: str) -> bool:
        return any(_matches(pattern, hostname) for pattern in self.names)


def _matches(pattern: str, hostname: str) -> bool:
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        # RFC 6125 6.4.3: the wildcard stands for exactly one left-most label.
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()


def describe(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]  # type: ignore[attr-defined]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        names = [_cn(cert.subject)]
    return CertInfo(
        subject=_cn(cert.subject),
        issuer=_cn(cert.issuer),
        names=tuple(names),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        self_signed=cert.issuer == cert.subject,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


def read_installed(path: Path) -> CertInfo | None:
    try:
        data = path.read_bytes()
        return describe(x509.load_pem_x509_certificates(data)[0])
    except (OSError, ValueError, IndexError):
        return None


def validate_upload(cert_pem: bytes, key_pem: bytes, hostname: str, now: dt.datetime) -> CertInfo:
    """Check a certificate chain and key before installing; raise CertProblem."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertProblem("The certificate file is not a PEM certificate.") from None
    if not chain:
        raise CertProblem("The certificate file holds no certificate.")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertProblem("The key is protected by a passphrase; upload it without one.") from None
    except ValueError:
        raise CertProblem("The key file is not a PEM private key.") from None
    leaf = chain[0]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if leaf.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise CertProblem("The key does not belong to this certificate.")
    info = describe(leaf)
    if now >= info.not_after:
        raise CertProblem(f"The certificate expired on {info.not_after:%Y-%m-%d}.")
    if now < info.not_before:
        raise CertProblem(f"The certificate is only valid from {info.not_before:%Y-%m-%d}.")
    if not info.covers(hostname):
        raise CertProblem(
            f"The certificate is for {', '.join(info.names)}, not for this box ({hostname})."
        )
    return info


def install_files(cert_path: Path, key_path: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Write key (0600) then certificate, each atomically (appliance.atomicfile)."""
    for path, data, mode in ((key_path, key_pem, 0o600), (cert_path, cert_pem, 0o644)):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_bytes(path, data, mode=mode)
    log.info("tls=installed cert=%s", cert_path)
