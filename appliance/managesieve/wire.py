"""RFC 5804 4 wire syntax, both directions: a command line's atoms, quoted strings and
literal announcements; responses, strings and response codes. Pure (no I/O).

A client sends ``command-name *(SP argument) CRLF``; an argument is a number, a quoted
string or a literal ``{n+}`` CRLF followed by n octets (RFC 5804 4 ``literal-c2s``; the
synchronizing form ``{n}`` is accepted the same way, without a continuation, as other
servers do). :func:`parse_segment` reads one line up to an announced literal; the
session reads the literal's octets itself and then the rest of the line, so it can
refuse a literal by its size before reading it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_NUMBER",
    "Atom",
    "Segment",
    "Str",
    "WireError",
    "announces_literal",
    "parse_segment",
    "response",
    "string",
]

MAX_NUMBER = 4294967295  # RFC 5804 4: number = 1*DIGIT, a 32-bit unsigned value
MAX_QUOTED = 1024  # RFC 5804 4: longer strings (and any with CR or LF) go as literals
_ATOM = re.compile(rb"[A-Za-z0-9_-]+")
_LITERAL = re.compile(rb"\{([0-9]{1,10})(\+?)\}\r?\n\Z")


class WireError(ValueError):
    """A command line that does not follow RFC 5804 4."""


@dataclass(frozen=True)
class Atom:
    """A bare word: the command name, or a number (``value`` is its digits)."""

    value: str

    @property
    def number(self) -> int | None:
        if self.value.isdigit() and int(self.value) <= MAX_NUMBER:
            return int(self.value)
        return None


@dataclass(frozen=True)
class Str:
    """A quoted string or a literal, as octets (decoded where the command needs text)."""

    data: bytes

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")  # RFC 5804 4: strings are UTF-8
        except UnicodeDecodeError:
            raise WireError("string is not UTF-8") from None


@dataclass(frozen=True)
class Segment:
    tokens: list[Atom | Str]
    literal: int | None = None  # the size of a literal announced at the end of the line


def _quoted(line: bytes, i: int) -> tuple[Str, int]:
    """The quoted string starting at ``line[i] == '"'``; returns it and the next index."""
    out = bytearray()
    i += 1
    while i < len(line):
        c = line[i]
        if c == 0x22:  # closing DQUOTE
            return Str(bytes(out)), i + 1
        if c == 0x5C:  # RFC 5804 4: QUOTED-CHAR = SAFE-UTF8-CHAR / "\" QUOTED-SPECIALS
            if i + 1 >= len(line) or line[i + 1] not in b'"\\':
                raise WireError("bad escape in quoted string")
            out.append(line[i + 1])
            i += 2
            continue
        if c in (0x00, 0x0A, 0x0D):  # SAFE-CHAR excludes NUL, CR and LF
            raise WireError("control character in quoted string")
        out.append(c)
        i += 1
    raise WireError("unterminated quoted string")


def announces_literal(line: bytes) -> bool:
    """Whether a line ends in a literal's size, whatever comes before it."""
    return _LITERAL.search(line) is not None


def parse_segment(line: bytes, first: bool) -> Segment:
    """One line of a command (``first``: the line that starts it, else the rest after a
    literal). Raises WireError."""
    literal: int | None = None
    m = _LITERAL.search(line)
    if m is not None:
        literal = int(m.group(1))
        body = line[: m.start()]
    else:
        if not line.endswith(b"\n"):
            raise WireError("line without CRLF")
        body = line.rstrip(b"\r\n")
    tokens: list[Atom | Str] = []
    i = 0
    if first:
        m_name = _ATOM.match(body)
        if m_name is None:
            raise WireError("missing command name")
        tokens.append(Atom(m_name.group().decode("ascii")))
        i = m_name.end()
    while i < len(body):
        if body[i] != 0x20:
            raise WireError("arguments are separated by one space")
        i += 1
        if i == len(body):
            if literal is not None:
                break  # "... {n+}": the space before the literal
            raise WireError("trailing space")
        if body[i] == 0x22:
            token, i = _quoted(body, i)
            tokens.append(token)
            continue
        m_atom = _ATOM.match(body, i)
        if m_atom is None:
            raise WireError("bad argument")
        tokens.append(Atom(m_atom.group().decode("ascii")))
        i = m_atom.end()
    if literal is not None and not body.endswith(b" "):
        raise WireError("a literal follows a space")
    if literal is not None and literal > MAX_NUMBER:
        raise WireError("literal size out of range")
    return Segment(tokens, literal)


def string(value: str | bytes) -> bytes:
    """A server string: quoted when it can be, else a literal (RFC 5804 4 literal-s2c)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= MAX_QUOTED and not any(c in data for c in b"\r\n\x00"):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, code: str = "", text: str = "") -> bytes:
    """``OK``/``NO``/``BYE`` [SP "(" code ")"] [SP string] CRLF (RFC 5804 4)."""
    out = kind.encode("ascii")
    if code:
        out += b" (" + code.encode("utf-8") + b")"
    if text:
        out += b" " + string(text)
    return out + b"\r\n"
