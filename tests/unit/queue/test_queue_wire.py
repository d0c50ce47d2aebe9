"""The wire form of queued messages: CRLF line ends, no line over 998 octets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.queue.wire import MAX_LINE
from appliance.queue.wire import wire_form as _crlf


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"A: b\nC: d\n\nbody\n", b"A: b\r\nC: d\r\n\r\nbody\r\n"),
        (b"A: b\r\n\r\nx\ry\r\n", b"A: b\r\n\r\nx\r\ny\r\n"),
        (b"A: b\r\n\r\nunchanged\r\n", b"A: b\r\n\r\nunchanged\r\n"),
    ],
)
def test_line_ends(raw: bytes, expected: bytes) -> None:
    assert _crlf(raw) == expected


def test_long_header_folded_long_body_broken() -> None:
    raw = b"Subject: " + b"s" * 2500 + b"\r\n\r\n" + b"b" * 2500 + b"\r\n"
    out = _crlf(raw)
    assert max(len(line) for line in out.split(b"\r\n")) <= MAX_LINE
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.replace(b"\r\n ", b"") == b"Subject: " + b"s" * 2500  # folding only
    assert body.replace(b"\r\n", b"") == b"b" * 2500


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_never_a_long_line_or_bare_lf(raw: bytes) -> None:
    out = _crlf(raw)
    assert all(len(line) <= MAX_LINE for line in out.split(b"\r\n"))
    assert b"\n" not in out.replace(b"\r\n", b"") and b"\r" not in out.replace(b"\r\n", b"")
    assert _crlf(out) == out  # idempotent: signing and sending see the same bytes
