"""Header field helpers: unfolding, encoded words, parameters, message-ids, base subject."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from email.utils import parsedate_to_datetime

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(rb"\?=[ \t\r\n]+=\?")
_MSGID = re.compile(r"<[^<>\s]+>")
_SPACES = re.compile(r"[ \t\r\n]+")


def unfold(raw: bytes) -> bytes:
    """RFC 5322 2.2.3: remove the CRLF of folded lines; strip the edges."""
    return re.sub(rb"\r?\n(?=[ \t])", b"", raw).strip(b" \t\r\n")


def to_text(raw: bytes) -> str:
    """Header bytes -> str; 8-bit octets that are not UTF-8 survive as surrogates."""
    return raw.decode("utf-8", "surrogateescape")


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode_charset(data: bytes, charset: str) -> str:
    charset = charset.split("*", 1)[0]  # RFC 2231 5: charset*language
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return data.decode(charset, "replace")


def _decode_word(match: re.Match[bytes]) -> bytes:
    charset = match.group(1).decode("ascii", "replace")
    kind = match.group(2).upper()
    payload = match.group(3)
    try:
        if kind == b"B":
            data = base64.b64decode(payload + b"=" * (-len(payload) % 4), validate=True)
        else:  # RFC 2047 4.2: "_" is a space in Q encoding
            data = binascii.a2b_qp(payload.replace(b"_", b" "), header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return _decode_charset(data, charset).encode("utf-8", "surrogateescape")


def decode_words(raw: bytes) -> str:
    """RFC 2047: decode encoded words (whitespace between two of them is dropped)."""
    raw = _BETWEEN_WORDS.sub(b"?==?", unfold(raw))
    return to_text(_ENCODED_WORD.sub(_decode_word, raw)).encode("utf-8", "replace").decode()


def split_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """'text/plain; charset="a;b"; x=1' -> ('text/plain', [('charset', 'a;b'), ('x', '1')])."""
    items: list[str] = []
    buf: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            buf.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            buf.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == ";" and not quoted:
            items.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    items.append("".join(buf))
    head = _strip_comments(items[0]).strip()
    params: list[tuple[str, str]] = []
    for item in items[1:]:
        key, sep, val = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        else:
            val = _strip_comments(val).strip()
        params.append((key, val))
    return head, params


def _strip_comments(text: str) -> str:
    return re.sub(r"\([^()]*\)", "", text)


def message_ids(value: str) -> list[str]:
    return _MSGID.findall(value)


def parse_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_BLOB = r"\[[^\[\]]*\][ \t]*"
_LEADER = re.compile(rf"^(?:(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:[ \t]*|[ \t]+)", re.I)
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])+$", re.I)
_LEAD_BLOB = re.compile(rf"^{_BLOB}")
_FWD_WRAP = re.compile(r"^\[fwd:(.*)\]$", re.I | re.S)


def base_subject(value: str) -> str:
    """RFC 5256 2.1: the subject without Re:/Fwd:/[list] decoration, case-folded."""
    text = _SPACES.sub(" ", value)  # RFC 5256 2.1 (1): whitespace runs -> one space
    while True:
        text = _TRAILER.sub("", text)  # RFC 5256 2.1 (2): trailing "(fwd)"
        while True:
            before = text
            text = _LEADER.sub("", text, count=1)  # RFC 5256 2.1 (3): subj-leader
            blob = _LEAD_BLOB.match(text)
            if blob and text[blob.end() :]:
                text = text[blob.end() :]  # RFC 5256 2.1 (4): leading blob
            if text == before:
                break
        wrapped = _FWD_WRAP.match(text)  # RFC 5256 2.1 (6): [fwd: ...]
        if not wrapped:
            break
        text = wrapped.group(1)
    return text.strip().casefold()
