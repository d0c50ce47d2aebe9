"""Strict parsing of the reverse-path and forward-path in MAIL FROM and RCPT TO.

RFC 5321 4.1.2 grammar, with RFC 6531 UTF-8 in local parts and domains when the client
asked for SMTPUTF8. The parser never interprets relay syntaxes: ``%`` and ``!`` are plain
characters of a local part, a quoted local part stays quoted, a source route is parsed
and dropped, and a domain with a trailing dot is a syntax error. Whether an address is
ours is decided later, from the domain alone (appliance.delivery.recipients).
"""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass

MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2
MAX_PATH = 256  # RFC 5321 4.5.3.1.3

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset(string.ascii_letters + string.digits + "-")


class AddressError(ValueError):
    """A path that does not follow RFC 5321 4.1.2."""


@dataclass(frozen=True)
class Mailbox:
    local: str  # as sent: a dot-string, or a quoted-string including the quotes
    domain: str  # as sent: a domain, or an address literal "[...]"

    @property
    def quoted(self) -> bool:
        return self.local.startswith('"')

    @property
    def literal(self) -> bool:
        return self.domain.startswith("[")

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True)
class Path:
    mailbox: Mailbox | None  # None: the null reverse-path "<>"
    params: str  # everything after the path: ESMTP parameters

    @property
    def null(self) -> bool:
        return self.mailbox is None


def _atext(c: str, utf8: bool) -> bool:
    return c in _ATEXT or (utf8 and ord(c) > 127)


def _dot_string(text: str, utf8: bool) -> bool:
    # RFC 5321 4.1.2: Dot-string = Atom *("." Atom); Atom = 1*atext
    atoms = text.split(".")
    return all(atom and all(_atext(c, utf8) for c in atom) for atom in atoms)


def _quoted_string(text: str, utf8: bool) -> bool:
    # RFC 5321 4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return False
    i, inner = 0, text[1:-1]
    while i < len(inner):
        c = inner[i]
        if c == "\\":  # quoted-pairSMTP = %d92 %d32-126
            if i + 1 >= len(inner) or not 32 <= ord(inner[i + 1]) <= 126:
                return False
            i += 2
            continue
        if c == '"' or not (32 <= ord(c) <= 126 or (utf8 and ord(c) > 127)):
            return False
        i += 1
    return True


def _domain(text: str, utf8: bool) -> bool:
    # RFC 5321 4.1.2: Domain = sub-domain *("." sub-domain); no empty label, so no
    # trailing dot. RFC 6531 3.3: U-labels allowed with SMTPUTF8.
    if not text or len(text) > MAX_DOMAIN:
        return False
    for label in text.split("."):
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c in _LDH or (utf8 and ord(c) > 127) for c in label):
            return False
    return True


def _address_literal(text: str) -> bool:
    # RFC 5321 4.1.3: "[" IPv4 / "IPv6:" IPv6 / General-address-literal "]"
    if len(text) < 3 or text[0] != "[" or text[-1] != "]":
        return False
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return True


def parse_mailbox(text: str, utf8: bool = False) -> Mailbox:
    if text.startswith('"'):
        end = 1
        while end < len(text):
            if text[end] == "\\":
                end += 2
                continue
            if text[end] == '"':
                break
            end += 1
        local, rest = text[: end + 1], text[end + 1 :]
        if not rest.startswith("@") or not _quoted_string(local, utf8):
            raise AddressError("bad quoted local part")
        domain = rest[1:]
    else:
        local, at, domain = text.rpartition("@")
        if not at or not _dot_string(local, utf8):
            raise AddressError("bad local part")
    if len(local.encode()) > MAX_LOCAL:
        raise AddressError("local part too long")
    if domain.startswith("["):
        if not _address_literal(domain):
            raise AddressError("bad address literal")
    elif not _domain(domain, utf8):
        raise AddressError("bad domain")
    return Mailbox(local, domain)


def parse_path(arg: str, utf8: bool = False, allow_null: bool = False) -> Path:
    """Parse ``<...> [params]`` (the text after "FROM:" or "TO:")."""
    text = arg.strip()
    if not text.startswith("<"):
        # Lenient: a bare mailbox without angle brackets, as many clients send.
        raw, _, params = text.partition(" ")
        if not raw:
            raise AddressError("empty path")
        return Path(parse_mailbox(raw, utf8), params.strip())
    end = text.find(">")
    # A quoted local part may contain ">": find the closing bracket after the quotes.
    quote = text.find('"')
    if 0 <= quote < end:
        close = quote + 1
        while close < len(text) and text[close] != '"':
            close += 2 if text[close] == "\\" else 1
        end = text.find(">", close)
    if end < 0:
        raise AddressError("missing '>'")
    inner, params = text[1:end], text[end + 1 :]
    if params and not params.startswith(" "):
        raise AddressError("junk after path")
    if len(inner.encode()) + 2 > MAX_PATH:
        raise AddressError("path too long")
    if not inner:
        if not allow_null:
            raise AddressError("null path not allowed here")
        return Path(None, params.strip())
    if inner.startswith("@"):
        # RFC 5321 4.1.2 / C: source route A-d-l ":" Mailbox; accepted, then ignored.
        route, colon, inner = inner.partition(":")
        if not colon or not all(
            hop.startswith("@") and _domain(hop[1:], utf8) for hop in route.split(",")
        ):
            raise AddressError("bad source route")
    return Path(parse_mailbox(inner, utf8), params.strip())
