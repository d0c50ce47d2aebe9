"""RFC 2231 parameters (continuations, charsets) and RFC 2046 5.1.1 header ends.

Expected offsets are Dovecot 2.3.19's answers on the same messages; for RFC 2231
Pillarbox goes further than Dovecot 2.3 (which joins sections but leaves ``name*``
percent-encoded): RFC 9051 7.5.2 says servers SHOULD return the decoded value."""

from __future__ import annotations

import io

import pytest

from appliance.mime.headers import split_params
from appliance.mime.model import load_summary
from appliance.mime.summary import summarize_file


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "text/plain; charset=us-ascii; title*0*=us-ascii'en'This%20is%20;"
            " title*1*=%2A%2A%2Afun%2A%2A%2A",
            [("charset", "us-ascii"), ("title", "This is ***fun***")],
        ),
        ('multipart/mixed; boundary*0=b1; boundary*1="XY"', [("boundary", "b1XY")]),
        ("multipart/mixed; boundary*=utf-8''b1", [("boundary", "b1")]),
        ("x/y; title*1=two; title*0=one", [("title", "onetwo")]),  # any order (RFC 2231 3)
        ("x/y; name=\"a.txt\"; name*=utf-8''b.txt", [("name", "b.txt")]),
        # Non-ASCII stays in RFC 2231 form (an IMAP4rev1 string cannot hold it decoded).
        ("x/y; filename*=utf-8''caf%C3%A9.txt", [("filename*", "utf-8''caf%C3%A9.txt")]),
        (
            "x/y; filename*0*=iso-8859-1'fr'caf%E9; filename*1=.txt",
            [("filename*", "iso-8859-1'fr'caf%E9.txt")],
        ),
        ("x/y; a*1=x", [("a*1", "x")]),  # no section 0: not RFC 2231, left alone
        ("x/y; plain=1", [("plain", "1")]),
    ],
)
def test_parameters_are_joined_and_decoded(value: str, expected: list[tuple[str, str]]) -> None:
    assert split_params(value)[1] == expected


CONTINUED = (
    b"From: a@b\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed;\r\n boundary*0=b1;\r\n boundary*1="XY"\r\n\r\n'
    b"pre\r\n--b1XY\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    b"--b1XY\r\nContent-Type: text/plain\r\n\r\nworld\r\n--b1XY--\r\n"
)


def _summary(raw: bytes):  # type: ignore[no-untyped-def]
    import json

    return load_summary(json.dumps(summarize_file(io.BytesIO(raw))).encode())


def test_a_continued_boundary_keeps_the_structure() -> None:
    root = _summary(CONTINUED).root
    assert root.type == "multipart"
    assert root.param("boundary") == "b1XY"
    assert [CONTINUED[c.body_start : c.body_end] for c in root.children] == [b"hello", b"world"]


EMPTY_BODIES = (
    b"From: a@b\r\nSubject: t\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain\r\n"
    b"--b1\r\nContent-Type: text/plain\r\n\r\n\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n"
    b"--b1--\r\n"
)


def test_the_crlf_before_a_boundary_is_not_part_of_a_header() -> None:
    """RFC 2046 5.1.1: "the CRLF preceding the boundary delimiter line is conceptually
    attached to the boundary"; BODY[n.MIME] sizes as Dovecot 2.3.19: 26, 24, 28."""
    s = _summary(EMPTY_BODIES)
    mime = [EMPTY_BODIES[c.header_start : c.body_start] for c in s.root.children]
    assert mime[:3] == [
        b"Content-Type: text/plain\r\n",
        b"Content-Type: text/plain",
        b"Content-Type: text/plain\r\n\r\n",
    ]
    assert [c.body_size for c in s.root.children[:3]] == [0, 0, 0]
    inner = s.root.children[3].message
    assert inner is not None
    assert EMPTY_BODIES[inner.part.header_start : inner.part.body_start] == b"Subject: x\r\n"
