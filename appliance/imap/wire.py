"""Response serialisation: IMAP strings, lists, ENVELOPE, BODYSTRUCTURE, mailbox names."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from appliance import mutf7
from appliance.mime.model import Address, Envelope, Part

_SAFE_ATOM = re.compile(rb"^[!#$&'+-\[^-z|}~]+$")
_QUOTABLE = re.compile(rb'^[^\x00\r\n"\\\x80-\xff]*$')
_QUOTABLE_UTF8 = re.compile(rb'^[^\x00\r\n"\\]*$')
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def string(value: str | bytes | None, utf8: bool = False) -> bytes:
    """nstring: NIL, a quoted string, or a literal when quoting is not possible."""
    if value is None:
        return b"NIL"
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(raw) < 1024 and (_QUOTABLE_UTF8 if utf8 else _QUOTABLE).match(raw):
        return b'"' + raw + b'"'
    if len(raw) < 1024 and b"\x00" not in raw and b"\r" not in raw and b"\n" not in raw:
        escaped = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        if utf8 or not any(c >= 0x80 for c in escaped):
            return b'"' + escaped + b'"'
    return b"{%d}\r\n" % len(raw) + raw


def astring(value: str, utf8: bool = False) -> bytes:
    raw = value.encode("utf-8")
    if raw and _SAFE_ATOM.match(raw) and raw.upper() != b"NIL":
        return raw
    return string(raw, utf8)


def plist(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def flags(values: Iterable[str]) -> bytes:
    return plist(f.encode("utf-8") for f in sorted(values))


def internal_date(stamp: float) -> bytes:
    """RFC 9051 9: date-time as "dd-Mon-yyyy hh:mm:ss +0000" (UTC)."""
    t = time.gmtime(stamp)
    return (
        f'"{t.tm_mday:02d}-{MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} '
        f'{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"'
    ).encode()


# ------------------------------------------------------------------ mailbox names


mutf7_encode = mutf7.encode


def mutf7_decode(text: str) -> str:
    """A mailbox name from a client -> Unicode; ValueError when malformed."""
    return mutf7.decode(text, strict=True)


# ------------------------------------------------------------------ ENVELOPE, BODYSTRUCTURE


def _addresses(addrs: tuple[Address, ...] | None, utf8: bool) -> bytes:
    if not addrs:
        return b"NIL"
    # RFC 9051 9: env-from = "(" 1*address ")": no space between addresses
    return b"(" + b"".join(plist(string(v, utf8) for v in a) for a in addrs) + b")"


def envelope(env: Envelope, utf8: bool = False) -> bytes:
    """RFC 9051 7.5.2: ENVELOPE (date subject from sender reply-to to cc bcc
    in-reply-to message-id)."""
    return plist(
        [
            string(env.date, utf8),
            string(env.subject, utf8),
            _addresses(env.from_, utf8),
            _addresses(env.sender, utf8),
            _addresses(env.reply_to, utf8),
            _addresses(env.to, utf8),
            _addresses(env.cc, utf8),
            _addresses(env.bcc, utf8),
            string(env.in_reply_to, utf8),
            string(env.message_id, utf8),
        ]
    )


def _params(params: tuple[tuple[str, str], ...]) -> bytes:
    if not params:
        return b"NIL"
    return plist(b" ".join((string(k), string(v))) for k, v in params)


def _disposition(part: Part) -> bytes:
    if part.disposition is None:
        return b"NIL"
    return plist([string(part.disposition[0]), _params(part.disposition[1])])


def _language(part: Part) -> bytes:
    if not part.language:
        return b"NIL"
    if len(part.language) == 1:
        return string(part.language[0])
    return plist(string(x) for x in part.language)


def body_structure(part: Part, extended: bool, utf8: bool = False) -> bytes:
    """RFC 9051 7.5.2: BODY (``extended=False``) or BODYSTRUCTURE."""
    if part.children:
        items = [b"".join(body_structure(c, extended, utf8) for c in part.children)]
        items.append(string(part.subtype))
        if extended:  # RFC 9051 7.5.2: body-ext-mpart
            items += [_params(part.params), _disposition(part), _language(part)]
            items.append(string(part.location))
        return plist(items)
    items = [
        string(part.type),
        string(part.subtype),
        _params(part.params),
        string(part.id),
        string(part.description),
        string(part.encoding),
        str(part.body_size).encode(),
    ]
    if part.message is not None:  # RFC 9051 7.5.2: body-type-msg
        items.append(envelope(part.message.envelope, utf8))
        items.append(body_structure(part.message.part, extended, utf8))
        items.append(str(part.lines).encode())
    elif part.type == "text":  # RFC 9051 7.5.2: body-type-text
        items.append(str(part.lines).encode())
    if extended:  # RFC 9051 7.5.2: body-ext-1part
        items += [string(part.md5), _disposition(part), _language(part), string(part.location)]
    return plist(items)
