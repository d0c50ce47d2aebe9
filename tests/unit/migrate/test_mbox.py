"""mbox reading (mboxrd/mboxo unquoting, separators, broken 'From ' lines) and writing."""

from __future__ import annotations

import io

import pytest

from appliance.migrate import mbox


def read_all(text: bytes, variant: mbox.Variant = "mboxrd") -> list[bytes]:
    return [m.data for m in mbox.read(io.BytesIO(text), variant)]


SEP = b"From alice@example.org Mon Jan  1 10:00:00 2024\n"


@pytest.mark.parametrize(
    ("body", "variant", "want"),
    [
        (b">From the start\n", "mboxrd", b"From the start\r\n"),
        (b">>From quoted twice\n", "mboxrd", b">From quoted twice\r\n"),
        (b">>From quoted twice\n", "mboxo", b">>From quoted twice\r\n"),
        (b">From x\n", "mboxo", b"From x\r\n"),
        (b"> From not a quote\n", "mboxrd", b"> From not a quote\r\n"),
        (b"From inside a paragraph\n", "mboxrd", b"From inside a paragraph\r\n"),
        (b"crlf stays\r\n", "mboxrd", b"crlf stays\r\n"),
    ],
)
def test_unquoting(body: bytes, variant: mbox.Variant, want: bytes) -> None:
    text = SEP + b"Subject: x\n\nline\n" + body + b"\n"
    (msg,) = read_all(text, variant)
    assert msg == b"Subject: x\r\n\r\nline\r\n" + want


@pytest.mark.parametrize(
    "separator",
    [
        b"From - Sat Jan 03 12:00:00 2024",  # Thunderbird
        b"From 1781234567890123456@xxx Thu Jan 04 12:00:00 +0000 2024",  # Google Takeout
        b"From MAILER-DAEMON Fri Feb  2 01:02:03 2024",
        b"From bob@example.org  Wed Mar 06 08:09:10 2024",
    ],
)
def test_separators_of_common_writers(separator: bytes) -> None:
    text = separator + b"\nA: 1\n\none\n\n" + separator + b"\nA: 2\n\ntwo\n"
    assert read_all(text) == [b"A: 1\r\n\r\none\r\n", b"A: 2\r\n\r\ntwo\r\n"]


def test_broken_from_line_stops_after_handing_out_what_came_before() -> None:
    text = SEP + b"A: 1\n\none\n\n" + SEP + b"A: 2\n\ntwo\n\nFrom here on it is broken\nmore\n"
    got: list[bytes] = []
    with pytest.raises(mbox.MboxError) as err:
        for m in mbox.read(io.BytesIO(text)):
            got.append(m.data)
    assert got == [b"A: 1\r\n\r\none\r\n"]  # the second message is cut by the broken line
    assert err.value.line == 11
    assert "broken 'From ' line 'From here on it is broken'" in str(err.value)
    assert "quote it as '>From '" in str(err.value)


def test_a_file_that_is_no_mbox() -> None:
    with pytest.raises(mbox.MboxError, match="line 1: this is not an mbox file"):
        read_all(b"Subject: hello\n\nbody\n")
    assert read_all(b"") == []


def test_dates_and_flags() -> None:
    text = (
        b"From x Mon Jan  1 10:00:00 2024\n"
        b"Status: RO\nX-Status: AF\nX-Mozilla-Keys: $label1 work\n\nbody\n"
    )
    (msg,) = list(mbox.read(io.BytesIO(text)))
    assert msg.date() == 1704103200.0
    assert msg.flags() == {"\\Seen", "\\Answered", "\\Flagged", "$label1", "work"}
    moz = b"From - Mon Jan  1 10:00:00 2024\nX-Mozilla-Status: 0005\n\nb\n"
    assert next(mbox.read(io.BytesIO(moz))).flags() == {"\\Seen", "\\Flagged"}
    takeout = (
        b"From 1@xxx Mon Jan 01 10:00:00 +0100 2024\nX-Gmail-Labels: Inbox,Starred,\n Work\n\nb\n"
    )
    m = next(mbox.read(io.BytesIO(takeout)))
    assert m.gmail_labels() == ["Inbox", "Starred", "Work"]
    assert m.flags() == {"\\Seen", "\\Flagged"}
    assert m.date() == 1704099600.0


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: a\r\n\r\nFrom the top\r\n>From once\r\n>>From twice\r\n\r\nFrom last\r\n",
        b"Subject: b\r\n\r\n\r\n\r\n",
        b"Subject: c\r\n\r\nbody\r\n",
    ],
)
def test_write_then_read_gives_the_same_bytes(data: bytes) -> None:
    out = io.BytesIO()
    for _ in range(3):
        mbox.write(out, data, 1704103200.0)
    got = list(mbox.read(io.BytesIO(out.getvalue())))
    assert [m.data for m in got] == [data] * 3
    assert all(m.date() == 1704103200.0 for m in got)
    if b"From the top" in data:
        assert b"\n>From the top\n>>From once\n>>>From twice\n" in out.getvalue()
