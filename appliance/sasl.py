"""SASL responses for SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH: one decoder, one rule.

Each protocol reads the client's response its own way (initial response, continuation
line, "*" to cancel) and renders failures in its own words; what the response means is
decided here, once:

- :func:`decode_response`: base64, strictly, with "=" meaning an empty response
  (RFC 4954 4, RFC 9051 6.2.2, RFC 5034 4);
- :func:`parse_plain`: RFC 4616 2, ``[authzid] NUL authcid NUL passwd``, UTF-8;
- :func:`acts_as_self`: the authorization identity, when given, must name the login
  itself (no proxy logins). Identities are mail addresses, which Pillarbox compares
  without regard to case everywhere else (appliance.accounts stores them lower-cased),
  so ``ALICE@example.org`` acting for ``alice@example.org`` is the same user.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

Problem = Literal["base64", "split", "utf8"]


class SaslError(ValueError):
    """A response that cannot be decoded; ``problem`` says which step failed."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        self.problem: Problem = problem


@dataclass(frozen=True)
class PlainCredentials:
    authzid: str  # "" when the client acts as itself
    authcid: str
    password: str = ""


def decode_response(text: str) -> bytes:
    """A client's base64 response; "=" is an empty one. Raises SaslError("base64")."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("base64") from None


def utf8(blob: bytes) -> str:
    """One decoded field (a LOGIN user name or password). Raises SaslError("utf8")."""
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("utf8") from None


def parse_plain(blob: bytes) -> PlainCredentials:
    """RFC 4616 2: exactly three NUL-separated UTF-8 fields."""
    parts = blob.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("split")
    authzid, authcid, password = (utf8(p) for p in parts)
    return PlainCredentials(authzid, authcid, password)


def acts_as_self(creds: PlainCredentials) -> bool:
    """RFC 4616 2: an authzid other than the login itself is refused (not supported)."""
    return not creds.authzid or creds.authzid.lower() == creds.authcid.lower()
