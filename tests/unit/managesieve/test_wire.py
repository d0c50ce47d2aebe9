"""appliance.managesieve.wire: RFC 5804 4 command lines and server strings, table-driven,
and a round trip fuzzed with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.managesieve.wire import (
    Atom,
    Segment,
    Str,
    WireError,
    parse_segment,
    response,
    string,
)


@pytest.mark.parametrize(
    ("line", "first", "expected"),
    [
        (b"LOGOUT\r\n", True, Segment([Atom("LOGOUT")])),
        (b"logout\n", True, Segment([Atom("logout")])),
        (b'GETSCRIPT "a b"\r\n', True, Segment([Atom("GETSCRIPT"), Str(b"a b")])),
        (b'NOOP "q\\"\\\\"\r\n', True, Segment([Atom("NOOP"), Str(b'q"\\')])),
        (b'HAVESPACE "s" 1024\r\n', True, Segment([Atom("HAVESPACE"), Str(b"s"), Atom("1024")])),
        (b'PUTSCRIPT "s" {12+}\r\n', True, Segment([Atom("PUTSCRIPT"), Str(b"s")], 12)),
        (b"CHECKSCRIPT {3}\r\n", True, Segment([Atom("CHECKSCRIPT")], 3)),
        (b"\r\n", False, Segment([])),
        (b' "x"\r\n', False, Segment([Str(b"x")])),
        (b" {0+}\r\n", False, Segment([], 0)),
        (b'NOOP "\xc3\xa9"\r\n', True, Segment([Atom("NOOP"), Str("é".encode())])),
    ],
)
def test_segments(line: bytes, first: bool, expected: Segment) -> None:
    assert parse_segment(line, first) == expected


@pytest.mark.parametrize(
    ("line", "first"),
    [
        (b'"NOOP"\r\n', True),  # no command name
        (b"NOOP", True),  # no line end
        (b'NOOP "open\r\n', True),
        (b'NOOP "bad \\n escape"\r\n', True),
        (b'NOOP  "two spaces"\r\n', True),
        (b"NOOP \r\n", True),
        (b'NOOP "a""b"\r\n', True),
        (b'NOOP "a"{3+}\r\n', True),  # a literal needs the space before it
        (b"NOOP {99999999999+}\r\n", True),  # 11 digits: no 32-bit number
        (b"NOOP {4294967296+}\r\n", True),
        (b"NOOP (x)\r\n", True),
        (b'"x"\r\n', False),  # after a literal, the next argument needs its space
        (b"{3+}\r\n", False),
    ],
)
def test_malformed(line: bytes, first: bool) -> None:
    with pytest.raises(WireError):
        parse_segment(line, first)


def test_numbers_and_text() -> None:
    assert Atom("4294967295").number == 4294967295
    assert Atom("4294967296").number is None
    assert Atom("12a").number is None
    with pytest.raises(WireError):
        Str(b"\xff").text()


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("plain", b'"plain"'),
        ('q"\\', b'"q\\"\\\\"'),
        ("two\r\nlines", b"{10}\r\ntwo\r\nlines"),
        ("x" * 1025, b"{1025}\r\n" + b"x" * 1025),
        ("", b'""'),
    ],
)
def test_server_strings(value: str, wire: bytes) -> None:
    assert string(value) == wire


def test_responses() -> None:
    assert response("OK") == b"OK\r\n"
    assert response("NO", "QUOTA/MAXSIZE", "Too big") == b'NO (QUOTA/MAXSIZE) "Too big"\r\n'
    assert response("BYE", "", "bye") == b'BYE "bye"\r\n'


# Text the server sends is decoded UTF-8: no lone surrogates (category Cs).
TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")


@given(st.text(alphabet=TEXT, max_size=200))
def test_quoted_round_trip(text: str) -> None:
    """What the server quotes, the command parser reads back unchanged."""
    segment = parse_segment(b"NOOP " + string(text) + b"\r\n", True)
    assert segment.tokens == [Atom("NOOP"), Str(text.encode("utf-8"))]


@given(st.binary(max_size=300))
def test_any_line_parses_or_raises_wire_error(data: bytes) -> None:
    try:
        segment = parse_segment(data + b"\r\n", True)
    except WireError:
        return
    assert isinstance(segment.tokens[0], Atom)
