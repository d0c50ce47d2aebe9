"""DKIM keys and signing for outbound mail (RFC 6376, ed25519 RFC 8463).

Keys are generated per domain on first need and kept under
``<dkim_dir>/<domain>/<selector>.rsa.key`` (RSA 2048, PKCS#1 PEM) and
``<selector>.ed25519.key`` (base64 of the 32-byte seed, the form dkimpy reads), mode 0600.
The RSA key is published at ``<selector>._domainkey.<domain>``, the ed25519 key at
``<selector>-ed._domainkey.<domain>`` (one key per DNS name).
:func:`dns_records` gives the TXT records to publish; the web UI and ``pillarbox dns``
show them. Everything here is blocking (disk, key generation): use ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from appliance import atomicfile
from appliance import config as config_mod
from appliance.mailauth import arc_seal as arc_seal_mod

log = logging.getLogger(__name__)

KeyAlgorithm = Literal["rsa", "ed25519"]
RSA_BITS = 2048
SIGNED_HEADERS = (
    b"from",
    b"sender",
    b"reply-to",
    b"subject",
    b"date",
    b"message-id",
    b"to",
    b"cc",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"in-reply-to",
    b"references",
)


class DkimError(Exception):
    """A key that cannot be created or read, or a message that cannot be signed."""


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: KeyAlgorithm
    private: bytes = field(repr=False)  # what dkimpy.sign takes
    public_b64: str  # the p= tag

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record_value(self) -> str:
        return f"v=DKIM1; k={self.algorithm}; p={self.public_b64}"


def _algorithms(cfg: config_mod.Config) -> tuple[KeyAlgorithm, ...]:
    if cfg.dkim.algorithm == "both":
        return ("rsa", "ed25519")
    return (cfg.dkim.algorithm,)


def _domain_dir(cfg: config_mod.Config, domain: str) -> Path:
    name = domain.strip().rstrip(".").lower()
    if not name or "/" in name or name.startswith(".") or not name.isascii():
        raise DkimError(f"{domain!r} is not a domain name")
    return cfg.dkim_dir / name


def key_path(cfg: config_mod.Config, domain: str, algorithm: KeyAlgorithm) -> Path:
    return _domain_dir(cfg, domain) / f"{cfg.dkim.selector}.{algorithm}.key"


def _generate(algorithm: KeyAlgorithm) -> bytes:
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed) + b"\n"


def _public_b64(algorithm: KeyAlgorithm, private: bytes) -> str:
    if algorithm == "rsa":
        key = serialization.load_pem_private_key(private, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DkimError("not an RSA key")
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()
    seed = base64.b64decode(private.strip(), validate=True)
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()  # RFC 8463 4.2: p= is the raw 32-byte key


def _create(path: Path, algorithm: KeyAlgorithm) -> None:
    # The directory stays listable so the web UI can read the public .txt files; the
    # private keys themselves are 0600.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    # False when another process made the key first: theirs is kept.
    if atomicfile.create(path, _generate(algorithm), mode=0o600):
        log.info("queue_id=- event=dkim-key-created key=%s", path)


def selector_for(cfg: config_mod.Config, algorithm: KeyAlgorithm) -> str:
    """RSA uses the configured selector, ed25519 ``<selector>-ed``: one name holds one key,
    so verifiers that read a single TXT record find the right one (RFC 8463 3)."""
    return cfg.dkim.selector if algorithm == "rsa" else f"{cfg.dkim.selector}-ed"


def public_path(cfg: config_mod.Config, domain: str, algorithm: KeyAlgorithm) -> Path:
    """The published TXT value, readable without access to the private key."""
    return key_path(cfg, domain, algorithm).with_suffix(".txt")


def _write_public(path: Path, value: str) -> None:
    try:
        atomicfile.write_text(path, value + "\n", encoding="ascii", mode=0o644)
    except OSError as exc:  # only a convenience copy: the key itself is fine
        log.warning("queue_id=- event=dkim-public-not-written file=%s error=%s", path, exc)


def load_key(cfg: config_mod.Config, domain: str, algorithm: KeyAlgorithm) -> DkimKey:
    """The key for ``domain``, generated on first use."""
    path = key_path(cfg, domain, algorithm)
    try:
        if not path.exists():
            _create(path, algorithm)
        private = path.read_bytes()
        public = _public_b64(algorithm, private)
    except (OSError, ValueError) as exc:
        raise DkimError(f"DKIM key {path}: {exc}") from exc
    selector = selector_for(cfg, algorithm)
    key = DkimKey(domain.lower().rstrip("."), selector, algorithm, private, public)
    pub = public_path(cfg, domain, algorithm)
    if not pub.exists():
        _write_public(pub, key.record_value)
    return key


def keys(cfg: config_mod.Config, domain: str) -> list[DkimKey]:
    return [load_key(cfg, domain, a) for a in _algorithms(cfg)]


def dns_records(cfg: config_mod.Config, domain: str) -> list[tuple[str, str]]:
    """(name, TXT value) for each key of ``domain``, e.g.
    ``("pb1._domainkey.example.org", "v=DKIM1; k=rsa; p=MIIB...")``.

    Reads the public ``.txt`` copies when present (no private-key access needed, e.g. from
    the web UI); otherwise loads, or on first need generates, the keys."""
    records: list[tuple[str, str]] = []
    name = domain.strip().rstrip(".").lower()
    for algorithm in _algorithms(cfg):
        rname = f"{selector_for(cfg, algorithm)}._domainkey.{name}"
        try:
            value = public_path(cfg, domain, algorithm).read_text(encoding="ascii").strip()
        except OSError:
            value = ""
        if not value.startswith("v=DKIM1;"):
            value = load_key(cfg, domain, algorithm).record_value
        records.append((rname, value))
    return records


def ensure_keys(cfg: config_mod.Config, domains: Iterable[str]) -> int:
    """Create missing keys for ``domains`` (daemon start, so the web UI finds them);
    returns how many domains failed (logged)."""
    failed = 0
    for domain in domains:
        try:
            keys(cfg, domain)
        except DkimError as exc:
            failed += 1
            log.error("queue_id=- event=dkim-key-failed domain=%s error=%s", domain, exc)
    return failed


def sign(cfg: config_mod.Config, domain: str, message: bytes) -> bytes:
    """DKIM-Signature header fields (one per key, CRLF-terminated) to prepend."""
    headers = b""
    for key in keys(cfg, domain):
        algo = b"rsa-sha256" if key.algorithm == "rsa" else b"ed25519-sha256"
        try:
            headers += dkimpy.sign(
                message,
                key.selector.encode(),
                key.domain.encode(),
                key.private,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=algo,
                include_headers=list(SIGNED_HEADERS),
            )
        except dkimpy.DKIMException as exc:
            raise DkimError(f"signing for {domain} with {key.algorithm}: {exc}") from exc
    return headers


def arc_seal(cfg: config_mod.Config, domain: str, auth_results: str, message: bytes) -> bytes:
    """The ARC set (RFC 8617) this box prepends to a message it forwards for ``domain``,
    sealed with the domain's RSA key (dkimpy seals with rsa-sha256 only)."""
    if "rsa" not in _algorithms(cfg):
        raise DkimError("ARC sealing needs an RSA key (dkim.algorithm is ed25519 only)")
    key = load_key(cfg, domain, "rsa")
    try:
        return arc_seal_mod.seal(
            message,
            domain=key.domain,
            selector=key.selector,
            private_key=key.private,
            authserv_id=cfg.hostname,
            auth_results=auth_results,
        )
    except arc_seal_mod.ArcSealError as exc:
        raise DkimError(str(exc)) from exc
