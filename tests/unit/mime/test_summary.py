"""MIME summary: structure, offsets, envelopes, broken input, header helpers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap import wire
from appliance.mime.addresses import parse_addresses
from appliance.mime.headers import base_subject, decode_words
from appliance.mime.model import NoSuchPart, Summary, load_summary
from appliance.mime.summary import summarize, summarize_file

NESTED = (
    b"From: =?utf-8?b?SsO8cmdlbg==?= <j@example.org>\r\n"
    b'To: a@example.org, Team: b@example.org, "C, D" <c@example.org>;\r\n'
    b"Subject: =?iso-8859-1?q?R=E9sum=E9?=\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"In-Reply-To: <p@example.org>\r\n"
    b"References: <r@example.org> <p@example.org>\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: multipart/alternative; boundary=b2\r\n"
    b"\r\n"
    b"--b2\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"line one\r\n"
    b"line two\r\n"
    b"--b2\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Language: en, de\r\n"
    b"\r\n"
    b"<b>x</b>\r\n"
    b"--b2--\r\n"
    b"--b1\r\n"
    b"Content-Type: message/rfc822\r\n"
    b'Content-Disposition: attachment; filename="fwd.eml"\r\n'
    b"\r\n"
    b"From: inner@example.org\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--b1--\r\n"
)


def load(data: bytes) -> Summary:
    return load_summary(__import__("json").dumps(summarize_file(io.BytesIO(data))).encode())


def body(data: bytes, summary: Summary, numbers: tuple[int, ...]) -> bytes:
    part = summary.find(numbers)
    return data[part.body_start : part.body_end]


def test_nested_structure_and_offsets(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(NESTED)
    s = load_summary(summarize(path))
    assert s.size == len(NESTED)
    root = s.root
    assert (root.type, root.subtype, len(root.children)) == ("multipart", "mixed", 2)
    assert body(NESTED, s, (1, 1)) == b"line one\r\nline two"
    assert s.find((1, 1)).lines == 1  # newlines in the body, as Dovecot counts
    assert body(NESTED, s, (1, 2)) == b"<b>x</b>"
    assert s.find((1, 2)).language == ("en", "de")
    fwd = s.find((2,))
    assert fwd.message is not None and fwd.message.envelope.subject == "inner"
    assert fwd.disposition == ("attachment", (("filename", "fwd.eml"),))
    assert body(NESTED, s, (2, 1)) == b"inner body"  # the CRLF belongs to the boundary
    mime = s.find((1, 2))
    assert NESTED[mime.header_start : mime.body_start] == (
        b"Content-Type: text/html\r\nContent-Language: en, de\r\n\r\n"
    )
    with pytest.raises(NoSuchPart):
        s.find((3,))


def test_envelope_and_extras() -> None:
    s = load(NESTED)
    env = s.message.envelope
    assert env.subject == "=?iso-8859-1?q?R=E9sum=E9?="  # ENVELOPE keeps the raw text
    assert env.from_ == (("=?utf-8?b?SsO8cmdlbg==?=", None, "j", "example.org"),)
    assert env.sender == env.from_ and env.reply_to == env.from_
    assert env.to == (
        (None, None, "a", "example.org"),
        (None, None, "Team", None),
        (None, None, "b", "example.org"),
        ("C, D", None, "c", "example.org"),
        (None, None, None, None),
    )
    x = s.extras
    assert x.subject == "résumé"
    assert x.from_ == ("Jürgen", "j")
    assert x.message_id == "<m1@example.org>"
    assert x.references == ("<r@example.org>", "<p@example.org>")
    assert x.in_reply_to == "<p@example.org>"
    assert x.date == 1795510800.0


# Captured from Dovecot 2.3.19.1 (`/usr/lib/dovecot/imap`, FETCH 1 (BODYSTRUCTURE BODY)) on
# the NESTED message above; Pillarbox must answer byte for byte the same.
DOVECOT_BODYSTRUCTURE = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 18 1 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL ("en" "de") NIL)'
    b' "alternative" ("boundary" "b2") NIL NIL NIL)'
    b'("message" "rfc822" NIL NIL NIL "7bit" 53 (NIL "inner" ((NIL NIL "inner" "example.org"))'
    b' ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org"))'
    b' NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0'
    b' NIL NIL NIL NIL) 3 NIL ("attachment" ("filename" "fwd.eml")) NIL NIL)'
    b' "mixed" ("boundary" "b1") NIL NIL NIL)'
)
DOVECOT_BODY = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 18 1)'
    b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0) "alternative")'
    b'("message" "rfc822" NIL NIL NIL "7bit" 53 (NIL "inner" ((NIL NIL "inner" "example.org"))'
    b' ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org"))'
    b' NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0) 3)'
    b' "mixed")'
)
DOVECOT_ENVELOPE = (
    b'("Tue, 24 Nov 2026 10:00:00 +0100" "=?iso-8859-1?q?R=E9sum=E9?="'
    b' (("=?utf-8?b?SsO8cmdlbg==?=" NIL "j" "example.org"))'
    b' (("=?utf-8?b?SsO8cmdlbg==?=" NIL "j" "example.org"))'
    b' (("=?utf-8?b?SsO8cmdlbg==?=" NIL "j" "example.org"))'
    b' ((NIL NIL "a" "example.org")(NIL NIL "Team" NIL)(NIL NIL "b" "example.org")'
    b'("C, D" NIL "c" "example.org")(NIL NIL NIL NIL)) NIL NIL "<p@example.org>"'
    b' "<m1@example.org>")'
)


def test_rendering_matches_dovecot() -> None:
    s = load(NESTED)
    assert wire.body_structure(s.root, extended=True) == DOVECOT_BODYSTRUCTURE
    assert wire.body_structure(s.root, extended=False) == DOVECOT_BODY
    assert wire.envelope(s.message.envelope) == DOVECOT_ENVELOPE


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n", ("text", "plain")),
        (b"Content-Type: garbage\r\n\r\nbody\r\n", ("text", "plain")),
        (b'Content-Type: text/html; charset="unterminated\r\n\r\nx', ("text", "html")),
        (b"no header at all, just text", ("text", "plain")),
        (b"", ("text", "plain")),
    ],
)
def test_broken_mime_falls_back(raw: bytes, kind: tuple[str, str]) -> None:
    s = load(raw)
    assert (s.root.type, s.root.subtype) == kind
    assert 0 <= s.root.body_start <= s.root.body_end <= len(raw)


def test_unterminated_multipart_and_8bit_headers() -> None:
    raw = (
        "Subject: Grüße aus Köln\r\n"
        "From: Jörg <jörg@example.org>\r\n"
        "Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
        "--zz\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
        "--zz\r\n\r\nsecond without close"
    ).encode()
    s = load(raw)
    assert len(s.root.children) == 2
    assert body(raw, s, (2,)) == b"second without close"
    assert s.find((2,)).lines == 0
    assert s.message.envelope.subject == "Grüße aus Köln"
    assert s.extras.subject == "grüsse aus köln"  # case-folded: ß -> ss
    assert s.extras.from_ == ("Jörg", "jörg")


def test_digest_default_is_message_rfc822() -> None:
    raw = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n"
        b"--d\r\n\r\nSubject: one\r\n\r\nbody one\r\n--d--\r\n"
    )
    part = load(raw).find((1,))
    assert (part.type, part.subtype) == ("message", "rfc822")
    assert part.message is not None and part.message.envelope.subject == "one"


def test_long_lines_and_lf_only() -> None:
    long_line = b"x" * 200_000
    raw = b"Subject: big\n\n" + long_line + b"\nlast\n"
    s = load(raw)
    assert s.root.body_start == len(b"Subject: big\n\n")
    assert s.root.body_end == len(raw)
    assert s.root.lines == 2


@pytest.mark.parametrize("body_size", [0, 1, 65535, 65536, 65537, 300_001])
@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b""])
def test_single_part_body_counted_in_blocks(body_size: int, ending: bytes) -> None:
    """A body no boundary can end is read in blocks: the counts must equal a line scan,
    whatever falls on a block edge (a CRLF split across two blocks included)."""
    line = b"La de da de da 1234567890 abcdefghijklmnopqrstuvwxyz.\r\n"  # 56 octets
    text = (line * (body_size // len(line) + 1))[:body_size] + ending
    head = b"From: a@example.org\r\nSubject: blocks\r\n\r\n"
    raw = head + text
    s = load(raw)
    assert (s.root.body_start, s.root.body_end) == (len(head), len(raw))
    assert s.root.lines == text.count(b"\n")
    assert s.size == len(raw)
    inner = load(b"Content-Type: message/rfc822\r\n\r\n" + raw)
    assert inner.root.message is not None
    assert inner.root.message.part.lines == text.count(b"\n")


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("Re: hello", "hello"),
        ("RE: Fwd: [list] Re: hello (fwd)", "hello"),
        ("[fwd: Re: topic]", "topic"),
        ("Fw:  spaced   out  ", "spaced out"),
        ("[only blob]", "[only blob]"),
        ("", ""),
    ],
)
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"=?utf-8?q?caf=C3=A9?=", "café"),
        (b"=?utf-8?b?w6k=?= =?utf-8?b?w6k=?=", "éé"),  # RFC 2047 6.2: space between dropped
        (b"plain =?bogus-charset?q?x?= text", "plain x text"),
        (b"=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),
    ],
)
def test_decode_words(raw: bytes, text: str) -> None:
    assert decode_words(raw) == text


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("a@b.c", [None, None, "a", "b.c"]),
        ('"Smith, J" <j@x.org>', ["Smith, J", None, "j", "x.org"]),
        ("<@route.org:u@x.org>", [None, "@route.org", "u", "x.org"]),
        ("user (comment) @ x.org", ["comment", None, "user", "x.org"]),
        ("undisclosed-recipients:;", [None, None, "undisclosed-recipients", None]),
        ("nodomain", [None, None, "nodomain", "MISSING_DOMAIN"]),
    ],
)
def test_addresses(text: str, first: list[str | None]) -> None:
    assert parse_addresses(text)[0] == first


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=q\r\n",
                b"Content-Type: message/rfc822\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Subject: x\r\n",
                b"\r\n",
                b"--q\r\n",
                b"--q--\r\n",
                b"text line\r\n",
                b"\xff\xfe binary\n",
                b" folded\r\n",
            ]
        ),
        max_size=30,
    )
)
def test_fuzz_summary_is_total(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    s = load(raw)
    stack = [s.root]
    while stack:
        part = stack.pop()
        assert 0 <= part.header_start <= part.body_start <= part.body_end <= len(raw)
        stack.extend(part.children)
        if part.message is not None:
            stack.append(part.message.part)
    wire.body_structure(s.root, extended=True)
    wire.envelope(s.message.envelope)
