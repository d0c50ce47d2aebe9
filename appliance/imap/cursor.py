"""IMAP lexical layer: a cursor over command segments (lines and literals).

A command arrives as *segments*: the text lines (without CRLF) and, between them, the
literals the connection read (RFC 9051 4.3). :func:`literal_suffix` tells the reader
whether a line announces a literal; :class:`Cursor` reads atoms, strings, lists,
sequence sets and dates across them. Malformed input raises :class:`ParseError`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from appliance.imap.commands import Literal, SeqSet
from appliance.imap.searchres import SAVED

T = TypeVar("T")
Segment = bytes | Literal

MAX_DEPTH = 32  # nesting of parenthesised lists and search keys
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,19})(\+?)\}$")
# RFC 9051 9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials
# / resp-specials
_ATOM_STOP = frozenset(b'(){ %*"\\]') | frozenset(range(0x20)) | {0x7F}
_ASTRING_STOP = _ATOM_STOP - {ord("]")}
_LIST_STOP = _ATOM_STOP - {ord("]"), ord("%"), ord("*")}
_TAG_STOP = _ASTRING_STOP | {ord("+")}


class ParseError(ValueError):
    """Malformed command: the session answers ``tag BAD text``."""

    def __init__(self, text: str, tag: str = "*") -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag


def literal_suffix(line: bytes) -> tuple[int, bool, bool] | None:
    """RFC 9051 4.3 / RFC 7888: ``{n}``, ``{n+}`` or ``~{n}`` at the end of a line ->
    (size, non_synchronizing, binary)."""
    match = _LITERAL_AT_END.search(line)
    if match is None:
        return None
    return int(match.group(2)), bool(match.group(3)), bool(match.group(1))


class Cursor:
    """Reads IMAP syntax across line segments and literals."""

    def __init__(self, segments: Sequence[Segment], utf8: bool = False) -> None:
        self.segments = segments
        self.index = 0
        self.pos = 0
        self.utf8 = utf8
        self.depth = 0
        line = segments[0] if segments else b""
        self.line: bytes = line if isinstance(line, bytes) else b""

    # ---- low level
    def peek(self) -> int | None:
        return self.line[self.pos] if self.pos < len(self.line) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.index >= len(self.segments) - 1

    def expect(self, text: bytes) -> None:
        if self.line[self.pos : self.pos + len(text)].upper() != text.upper():
            raise ParseError(f"expected {text.decode()!r}")
        self.pos += len(text)

    def accept(self, text: bytes) -> bool:
        if self.line[self.pos : self.pos + len(text)].upper() == text.upper():
            self.pos += len(text)
            return True
        return False

    def sp(self) -> None:
        self.expect(b" ")

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("unexpected characters at end of command")

    def _run(self, stop: frozenset[int]) -> bytes:
        start = self.pos
        line = self.line
        while self.pos < len(line) and (line[self.pos] not in stop or line[self.pos] >= 0x80):
            if line[self.pos] >= 0x80 and not self.utf8:
                break
            self.pos += 1
        return line[start : self.pos]

    # ---- values
    def atom(self) -> str:
        raw = self._run(_ATOM_STOP)
        if not raw:
            raise ParseError("expected an atom")
        return raw.decode("utf-8", "replace")

    def number(self) -> int:
        match = re.match(rb"\d{1,19}", self.line[self.pos :])
        if not match:
            raise ParseError("expected a number")
        self.pos += match.end()
        return int(match.group())

    def nz_number(self) -> int:
        value = self.number()
        if value == 0:
            raise ParseError("expected a non-zero number")
        return value

    def _literal(self) -> Literal:
        match = _LITERAL_AT_END.match(self.line[self.pos :])
        if match is None or self.index + 1 >= len(self.segments):
            raise ParseError("bad literal")
        literal = self.segments[self.index + 1]
        following = self.segments[self.index + 2] if self.index + 2 < len(self.segments) else b""
        if not isinstance(literal, Literal) or not isinstance(following, bytes):
            raise ParseError("bad literal")
        self.index += 2
        self.line = following
        self.pos = 0
        return literal

    def string_bytes(self, allow_file: bool = False, literal8: bool = False) -> bytes | Literal:
        """A quoted string or literal; ``~{n}`` (literal8) only where the caller allows it
        (RFC 3516 4.2 / RFC 9051 9: APPEND data and CATENATE parts)."""
        ch = self.peek()
        if ch == ord('"'):
            return self._quoted()
        if ch == ord("{") or (ch == ord("~") and literal8):
            literal = self._literal()
            if literal.data is None:
                if allow_file:
                    return literal
                raise ParseError("literal too large")
            return literal.data
        self._refuse_literal8()
        raise ParseError("expected a string")

    def _refuse_literal8(self) -> None:
        if self.line[self.pos : self.pos + 2] == b"~{":
            raise ParseError("literal8 not allowed here")

    def _quoted(self) -> bytes:
        self.pos += 1
        out = bytearray()
        line = self.line
        while self.pos < len(line):
            ch = line[self.pos]
            if ch == ord('"'):
                self.pos += 1
                return bytes(out)
            if ch == ord("\\"):
                self.pos += 1
                if self.pos >= len(line) or line[self.pos] not in b'"\\':
                    raise ParseError("bad escape in quoted string")
                ch = line[self.pos]
            elif ch >= 0x80 and not self.utf8:
                raise ParseError("8-bit character in quoted string")
            out.append(ch)
            self.pos += 1
        raise ParseError("unterminated quoted string")

    def string(self) -> str:
        value = self.string_bytes()
        assert isinstance(value, bytes)
        return _text(value)

    def astring(self) -> str:
        if self.peek() in (ord('"'), ord("{")):
            return self.string()
        # RFC 9051 9: "~" is an ASTRING-CHAR (not an atom-special): "~foo" is an atom;
        # "~{n}" is a literal8, which astring does not allow.
        self._refuse_literal8()
        raw = self._run(_ASTRING_STOP)
        if not raw:
            raise ParseError("expected an astring")
        return _text(raw)

    def mailbox(self) -> str:
        return self.astring()

    def list_mailbox(self) -> str:
        if self.peek() in (ord('"'), ord("{")):
            return self.string()
        self._refuse_literal8()
        raw = self._run(_LIST_STOP)
        if not raw:
            raise ParseError("expected a mailbox pattern")
        return _text(raw)

    def nstring(self) -> str | None:
        if self.accept(b"NIL"):
            return None
        return self.string()

    def paren_list(self, item: Callable[[], T], allow_empty: bool = True) -> list[T]:
        self.expect(b"(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("too deeply nested")
        out: list[T] = []
        if not self.accept(b")"):
            out.append(item())
            while not self.accept(b")"):
                self.sp()
                out.append(item())
        elif not allow_empty:
            raise ParseError("empty list")
        self.depth -= 1
        return out

    def flag(self) -> str:
        if self.accept(b"\\"):
            if self.accept(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> list[str]:
        return self.paren_list(self.flag)

    def seqset(self) -> SeqSet:
        if self.accept(b"$"):  # RFC 5182 3: "$" alone, the saved search result
            return SAVED
        ranges: list[tuple[int | None, int | None]] = []
        while True:
            low = self._seq_number()
            high = self._seq_number() if self.accept(b":") else low
            ranges.append((low, high))
            if not self.accept(b","):
                return tuple(ranges)

    def _seq_number(self) -> int | None:
        if self.accept(b"*"):
            return None
        return self.nz_number()

    def date(self) -> dt.date:
        """RFC 9051 9: date = date-text / DQUOTE date-text DQUOTE (d-Mon-yyyy)."""
        quoted = self.accept(b'"')
        match = re.match(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})", self.line[self.pos :])
        if not match:
            raise ParseError("bad date")
        self.pos += match.end()
        if quoted:
            self.expect(b'"')
        try:
            month = MONTHS.index(match.group(2).decode().upper()) + 1
            return dt.date(int(match.group(3)), month, int(match.group(1)))
        except ValueError:
            raise ParseError("bad date") from None

    def date_time(self) -> float:
        """RFC 9051 9: date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP
        time SP zone DQUOTE -> seconds since the epoch."""
        match = re.match(
            rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"',
            self.line[self.pos :],
        )
        if not match:
            raise ParseError("bad date-time")
        self.pos += match.end()
        g = [x.decode() for x in match.groups()]
        try:
            month = MONTHS.index(g[1].upper()) + 1
            stamp = calendar.timegm(
                dt.datetime(
                    int(g[2]), month, int(g[0]), int(g[3]), int(g[4]), int(g[5])
                ).timetuple()
            )
        except ValueError:
            raise ParseError("bad date-time") from None
        offset = (int(g[7]) * 60 + int(g[8])) * 60
        return float(stamp - offset if g[6] == "+" else stamp + offset)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("invalid UTF-8") from None
