"""Strict parsing of the reverse-path and forward-path in MAIL FROM and RCPT TO.

RFC 5321 4.1.2 grammar, with RFC 6531 UTF-8 in local parts and domains when the client
asked for SMTPUTF8. The parser never interprets relay syntaxes: ``%`` and ``!`` are plain
characters of a local part, a quoted local part stays quoted, a source route is parsed
and dropped, and a domain with a trailing dot is a syntax error. Whether an address is
ours is decided later, from the domain alone (appliance.delivery.recipients). The mailbox
grammar itself lives in appliance.address, shared with account creation.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.address import AddressError, Mailbox, parse_mailbox
from appliance.address import domain as _domain

__all__ = ["MAX_PATH", "AddressError", "Mailbox", "Path", "parse_mailbox", "parse_path"]

MAX_PATH = 256  # RFC 5321 4.5.3.1.3


@dataclass(frozen=True)
class Path:
    mailbox: Mailbox | None  # None: the null reverse-path "<>"
    params: str  # everything after the path: ESMTP parameters

    @property
    def null(self) -> bool:
        return self.mailbox is None


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
