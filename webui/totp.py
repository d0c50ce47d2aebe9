"""Every user's optional second factor for the web UI: TOTP (RFC 6238) and recovery codes.

RFC 6238 with the defaults every authenticator app uses: HMAC-SHA-1, 30 s steps,
6 digits (RFC 4226 5.3 truncation). A code is accepted for the current step and one step
either side (clock drift, RFC 6238 5.2), and never twice: the last step used is stored
and only later steps pass. Ten recovery codes are issued at enrolment, kept as SHA-256
hashes (each has 60 bits of randomness), and each works once.

State is in web.sqlite (tables ``totp`` and ``recovery_codes``); a secret is "pending"
from enrolment until a first code confirms it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import struct
from collections.abc import Callable
from urllib.parse import quote, urlencode

from webui.webdb import WebDb

STEP = 30  # seconds, RFC 6238 4.1 X
DIGITS = 6
WINDOW = 1  # steps accepted either side of now, RFC 6238 5.2
SECRET_BYTES = 20  # 160 bits, RFC 4226 4 R6
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_RECOVERY_LEN = 12  # 31**12 ~ 2**59
MAX_CODE_FAILURES = 10
CODE_LOCK_SECONDS = 300.0


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 5.3: HMAC-SHA-1 of the 8-byte counter, dynamic truncation."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(t: float) -> int:
    return int(t // STEP)  # RFC 6238 4.2: T = floor((now - T0) / X), T0 = 0


def decode_secret(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    label = quote(f"{issuer}:{account}")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP}
    )
    return f"otpauth://totp/{label}?{query}"


def _clean(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def _code_hash(code: str) -> str:
    return hashlib.sha256(_clean(code).encode()).hexdigest()


class TotpStore:
    def __init__(self, db: WebDb, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock

    def enabled(self, email: str) -> bool:
        row = (
            self.db.conn()
            .execute("SELECT confirmed FROM totp WHERE email=?", (email.lower(),))
            .fetchone()
        )
        return bool(row and row[0])

    def pending_secret(self, email: str) -> str | None:
        row = (
            self.db.conn()
            .execute("SELECT secret FROM totp WHERE email=? AND confirmed=0", (email.lower(),))
            .fetchone()
        )
        return str(row[0]) if row else None

    def begin(self, email: str) -> str:
        """A new pending secret for ``email`` (replacing an unconfirmed one)."""
        secret = new_secret()
        with self.db.tx() as db:
            row = db.execute(
                "SELECT confirmed FROM totp WHERE email=?", (email.lower(),)
            ).fetchone()
            if row and row[0]:
                raise ValueError("two-step sign-in is already on")
            db.execute(
                "INSERT OR REPLACE INTO totp(email, secret, confirmed, last_step, created)"
                " VALUES (?, ?, 0, -1, ?)",
                (email.lower(), secret, self.clock()),
            )
        return secret

    def _match(self, db: sqlite3.Connection, email: str, code: str, confirmed: int) -> bool:
        """A TOTP code in the window, later than the last one used; records its step."""
        row = db.execute(
            "SELECT secret, last_step FROM totp WHERE email=? AND confirmed=?",
            (email.lower(), confirmed),
        ).fetchone()
        digits = "".join(c for c in code if c.isdigit())
        if row is None or len(digits) != DIGITS:
            return False
        key, last = decode_secret(row[0]), int(row[1])
        now = step_at(self.clock())
        for step in range(now - WINDOW, now + WINDOW + 1):
            # RFC 6238 5.2: a code already used is refused, also within its window.
            if step > last and hmac.compare_digest(hotp(key, step), digits):
                db.execute(
                    "UPDATE totp SET last_step=?, confirmed=1 WHERE email=?", (step, email.lower())
                )
                return True
        return False

    def confirm(self, email: str, code: str) -> list[str] | None:
        """Turn the pending secret on with a first code; the recovery codes (shown once)."""
        with self.db.tx() as db:
            if not self._match(db, email, code, confirmed=0):
                return None
            return self._new_recovery_codes(db, email)

    def regenerate_recovery(self, email: str) -> list[str] | None:
        """Ten new recovery codes (shown once) in place of every old one; None when
        two-step sign-in is off."""
        with self.db.tx() as db:
            row = db.execute(
                "SELECT confirmed FROM totp WHERE email=?", (email.lower(),)
            ).fetchone()
            if not (row and row[0]):
                return None
            return self._new_recovery_codes(db, email)

    @staticmethod
    def _new_recovery_codes(db: sqlite3.Connection, email: str) -> list[str]:
        codes = [
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LEN))
            for _ in range(RECOVERY_CODES)
        ]
        db.execute("DELETE FROM recovery_codes WHERE email=?", (email.lower(),))
        db.executemany(
            "INSERT INTO recovery_codes(email, code_hash) VALUES (?, ?)",
            [(email.lower(), _code_hash(c)) for c in codes],
        )
        return [f"{c[:4]}-{c[4:8]}-{c[8:]}" for c in codes]

    def locked_for(self, email: str) -> float:
        """Seconds until codes for ``email`` are checked again (0: now). Only someone who
        knows the password reaches the code step, so this per-account lock cannot be set
        off by password guessing."""
        row = (
            self.db.conn()
            .execute("SELECT fails, fail_at FROM totp WHERE email=?", (email.lower(),))
            .fetchone()
        )
        if row is None or row[0] < MAX_CODE_FAILURES:
            return 0.0
        return max(0.0, float(row[1]) + CODE_LOCK_SECONDS - self.clock())

    def verify(self, email: str, code: str) -> bool:
        """A current TOTP code (once) or an unused recovery code (then spent).

        Every ``MAX_CODE_FAILURES`` wrong codes in a row lock the account's code step for
        ``CODE_LOCK_SECONDS`` (callers check :meth:`locked_for` first): 10 guesses per
        5 minutes at 3 valid codes in 10**6 leave a guesser ~1% per week."""
        with self.db.tx() as db:
            if self._match(db, email, code, confirmed=1) or self._recovery(db, email, code):
                db.execute("UPDATE totp SET fails=0 WHERE email=?", (email.lower(),))
                return True
            db.execute(
                "UPDATE totp SET fails=fails+1, fail_at=? WHERE email=?",
                (self.clock(), email.lower()),
            )
            return False

    def _recovery(self, db: sqlite3.Connection, email: str, code: str) -> bool:
        if len(_clean(code)) != _RECOVERY_LEN or not self.enabled(email):
            return False
        cur = db.execute(
            "DELETE FROM recovery_codes WHERE email=? AND code_hash=?",
            (email.lower(), _code_hash(code)),
        )
        return cur.rowcount == 1

    def recovery_left(self, email: str) -> int:
        (n,) = (
            self.db.conn()
            .execute("SELECT COUNT(*) FROM recovery_codes WHERE email=?", (email.lower(),))
            .fetchone()
        )
        return int(n)

    def disable(self, email: str) -> None:
        with self.db.tx() as db:
            db.execute("DELETE FROM totp WHERE email=?", (email.lower(),))
            db.execute("DELETE FROM recovery_codes WHERE email=?", (email.lower(),))
