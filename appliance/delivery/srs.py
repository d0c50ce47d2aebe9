"""Sender Rewriting Scheme (SRS0) for forwarded mail.

A message this box forwards to another domain (remote alias target, Sieve redirect) leaves
with its envelope sender rewritten to an address at the forwarding domain, so the next
hop's SPF check (RFC 7208) sees this box's domain instead of the original sender's::

    SRS0=<hash>=<tt>=<original domain>=<original local part>@<forwarding domain>

- ``tt``: the day number (days since 1970-01-01 UTC) modulo 1024, two base32 characters;
- ``hash``: the first :data:`HASH_CHARS` base32 characters (lower case) of
  HMAC-SHA256(secret, lower("<tt>=<domain>=<local>")). Lower-cased on both sides, so a
  relay that folds the case of the local part does not break the bounce path.

A bounce to such an address is accepted only when the hash matches and the stamp is at
most :data:`MAX_AGE_DAYS` old; it is then delivered to the original sender. The secret is
per box, 32 random bytes (hex) in ``<data_dir>/srs.secret`` created with mode 0600 on
first use. The null reverse-path is never rewritten (it stays null).

Blocking (the secret file): call from worker threads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance import atomicfile

log = logging.getLogger(__name__)

SECRET_FILE = "srs.secret"  # noqa: S105 - a file name, not a secret
SECRET_BYTES = 32
MAX_AGE_DAYS = 21  # a bounce this much later than the forward is refused (libsrs2's default)
HASH_CHARS = 8  # 40 bits of HMAC-SHA256
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_DAY = 86400
_STAMP_MOD = 1024  # two base32 characters


class SrsError(Exception):
    """Not an SRS0 address, or one this box did not make (bad hash) or made too long ago."""


def is_srs(local_part: str) -> bool:
    return local_part[:5].upper() == "SRS0="


class Srs:
    """The SRS0 codec; with ``data_dir`` the secret is read (or created) on first use, in
    the calling (worker) thread, so making one costs no I/O."""

    def __init__(
        self,
        secret: bytes = b"",
        *,
        data_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret and data_dir is None:
            raise ValueError("an SRS codec needs a secret or a data dir")
        self._secret = secret
        self.data_dir = data_dir
        self.clock = clock
        self._lock = threading.Lock()

    @property
    def secret(self) -> bytes:
        if not self._secret:
            with self._lock:
                if not self._secret and self.data_dir is not None:
                    self._secret = load_secret(self.data_dir)
        return self._secret

    def _today(self) -> int:
        return int(self.clock() // _DAY) % _STAMP_MOD

    def _hash(self, stamp: str, domain: str, local: str) -> str:
        text = f"{stamp}={domain}={local}".lower().encode("utf-8")
        mac = hmac.new(self.secret, text, hashlib.sha256).digest()
        return base64.b32encode(mac).decode("ascii")[:HASH_CHARS].lower()

    def forward(self, sender: str, domain: str) -> str:
        """The envelope sender for a copy of mail from ``sender`` forwarded by ``domain``."""
        if not sender:
            return ""  # RFC 5321 4.5.5: the null reverse-path stays null
        local, at, orig_domain = sender.rpartition("@")
        if not at or not local or not orig_domain or local.startswith('"'):
            raise SrsError(f"cannot rewrite {sender!r}")
        day = self._today()
        stamp = _B32[day >> 5] + _B32[day & 31]
        digest = self._hash(stamp, orig_domain, local)
        return f"SRS0={digest}={stamp}={orig_domain}={local}@{domain}"

    def reverse(self, local_part: str) -> str:
        """The original sender for the local part of an SRS0 address; raises SrsError."""
        parts = local_part.split("=", 4)
        if len(parts) != 5 or parts[0].upper() != "SRS0":
            raise SrsError("not an SRS0 address")
        _, digest, stamp, domain, local = parts
        if not domain or not local or len(stamp) != 2:
            raise SrsError("malformed SRS0 address")
        expected = self._hash(stamp, domain, local)
        if not hmac.compare_digest(digest.lower().encode(), expected.encode()):
            raise SrsError("bad SRS hash")
        try:
            day = _B32.index(stamp[0].lower()) * 32 + _B32.index(stamp[1].lower())
        except ValueError:
            raise SrsError("bad SRS timestamp") from None
        age = (self._today() - day) % _STAMP_MOD
        if age > MAX_AGE_DAYS:
            raise SrsError(f"SRS address expired ({age} days old)")
        return f"{local}@{domain}"


def _create_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = (secrets.token_hex(SECRET_BYTES) + "\n").encode("ascii")
    if atomicfile.create(path, secret, mode=0o600):  # False: another process made it first
        log.info("srs=secret-created file=%s", path)


def load_secret(data_dir: Path) -> bytes:
    """The box's SRS secret, created (0600) on first use."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(secret) < 16:
        raise ValueError(f"{path}: SRS secret too short")
    return secret


_cache: dict[Path, Srs] = {}


def srs_for(data_dir: Path) -> Srs:
    """The codec for the box whose data lives in ``data_dir`` (secret read once, lazily)."""
    codec = _cache.get(data_dir)
    if codec is None:
        codec = _cache.setdefault(data_dir, Srs(data_dir=data_dir))
    return codec
