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
    return head, rfc2231(params)


_SECTION = re.compile(r"^(.+?)\*(?:(\d{1,3})\*?)?$")
_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")
MAX_SECTIONS = 100
_ATTR_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~"
)  # RFC 2231 7 attribute-char: these need no %XX


def _unpercent(value: str) -> bytes:
    return _PCT.sub(lambda m: bytes([int(m.group(1), 16)]), to_bytes(value))


def rfc2231(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 2231 3/4: join ``name*0*=``, ``name*1=`` ... continuations and decode
    ``charset'language'%XX`` values (RFC 9051 7.5.2: BODYSTRUCTURE SHOULD return them
    decoded). A value that decodes to ASCII is returned under the plain name; a non-ASCII
    one keeps the RFC 2231 form, ``name*`` = ``charset'lang'%XX...`` with the sections
    joined (Dovecot's answer), since an IMAP4rev1 string cannot carry it decoded."""
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    order: list[str] = []
    plain: dict[str, str] = {}
    raw_pairs: dict[str, list[tuple[str, str]]] = {}
    for key, value in params:
        match = _SECTION.match(key)
        if match is not None:
            raw_pairs.setdefault(match.group(1), []).append((key, value))
        if match is None:
            if key not in plain:
                plain[key] = value
                order.append(key)
            continue
        name, number = match.group(1), match.group(2)
        index = int(number) if number is not None else 0
        encoded = key.endswith("*")
        if index >= MAX_SECTIONS or index in sections.get(name, {}):
            continue
        sections.setdefault(name, {})[index] = (value, encoded)
        if name not in order:
            order.append(name)
    out: list[tuple[str, str]] = []
    for name in order:
        parts = sections.get(name)
        if not parts or 0 not in parts:
            if name in plain:
                out.append((name, plain[name]))
            else:  # no section 0: not RFC 2231, keep the fields as they were written
                out += raw_pairs.get(name, [])
            continue
        charset, language = "", ""
        data: list[bytes] = []
        for index in range(len(parts)):
            if index not in parts:
                break  # RFC 2231 3: sections are numbered from 0 without gaps
            value, encoded = parts[index]
            if encoded and index == 0 and value.count("'") >= 2:
                charset, language, value = value.split("'", 2)
            data.append(_unpercent(value) if encoded else to_bytes(value))
        raw = b"".join(data)
        text = _decode_charset(raw, charset) if charset else to_text(raw)
        if text.isascii():
            out.append((name, text))
        else:
            quoted = "".join(chr(b) if b in _ATTR_CHARS else f"%{b:02X}" for b in raw)
            out.append((name + "*", f"{charset or 'utf-8'}'{language}'{quoted}"))
    return out


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
    return extract_subject(value)[0]


def extract_subject(value: str) -> tuple[str, bool]:
    """RFC 5256 2.1: (base subject case-folded, whether it was a reply or forward: a
    subj-refwd, a "(fwd)" trailer or a "[fwd: ...]" wrapper was removed; a [list] blob
    alone does not make one)."""
    text = _SPACES.sub(" ", value)  # RFC 5256 2.1 (1): whitespace runs -> one space
    reply = False
    while True:
        trimmed = _TRAILER.sub("", text)  # RFC 5256 2.1 (2): trailing "(fwd)"
        reply = reply or "(" in text[len(trimmed) :]
        text = trimmed
        while True:
            before = text
            leader = _LEADER.match(text)
            if leader is not None:
                reply = reply or bool(leader.group().strip())
                text = text[leader.end() :]  # RFC 5256 2.1 (3): subj-leader
            blob = _LEAD_BLOB.match(text)
            if blob and text[blob.end() :]:
                text = text[blob.end() :]  # RFC 5256 2.1 (4): leading blob
            if text == before:
                break
        wrapped = _FWD_WRAP.match(text)  # RFC 5256 2.1 (6): [fwd: ...]
        if not wrapped:
            break
        reply = True
        text = wrapped.group(1)
    return text.strip().casefold(), reply
