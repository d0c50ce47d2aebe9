"""Pure parts of the SMTP layer, table-driven: paths, enhanced codes, header helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.delivery.pipeline import header_lines
from appliance.smtp.address import AddressError, Mailbox, parse_path
from appliance.smtp.received import protocol_name, received_header
from appliance.smtp.reply import with_enhanced
from appliance.smtp.spool import header_names


@pytest.mark.parametrize(
    ("arg", "local", "domain", "params"),
    [
        ("<bob@example.org>", "bob", "example.org", ""),
        ("<bob@example.org> SIZE=10 BODY=8BITMIME", "bob", "example.org", "SIZE=10 BODY=8BITMIME"),
        ("bob@example.org", "bob", "example.org", ""),
        ("<@a.test,@b.test:bob@example.org>", "bob", "example.org", ""),
        ('<"john doe"@example.org>', '"john doe"', "example.org", ""),
        ('<"a>b"@example.org>', '"a>b"', "example.org", ""),
        ("<user%other.test@example.org>", "user%other.test", "example.org", ""),
        ("<a!b@example.org>", "a!b", "example.org", ""),
        ("<bob@[192.0.2.1]>", "bob", "[192.0.2.1]", ""),
        ("<bob@[IPv6:2001:db8::1]>", "bob", "[IPv6:2001:db8::1]", ""),
        ("<jürgen@bücher.example>", "jürgen", "bücher.example", ""),
    ],
)
def test_parse_ok(arg: str, local: str, domain: str, params: str) -> None:
    path = parse_path(arg, utf8=True)
    assert path.mailbox == Mailbox(local, domain)
    assert path.params == params


@pytest.mark.parametrize(
    "arg",
    [
        "<bob@example.org.>",  # trailing dot
        "<bob@example..org>",
        "<bob@-example.org>",
        "<bob.@example.org>",
        "<.bob@example.org>",
        "<bob..x@example.org>",
        "<bob@>",
        "<@example.org>",
        "<bob>",
        "<bob@example.org",
        "<bob@example.org>junk",
        "<bob@[999.1.1.1]>",
        "<bob@[example.org]>",
        "<@a.test:>",
        "<@:bob@example.org>",
        "<a b@example.org>",
        '<"unterminated@example.org>',
        '<"a"b@example.org>',
        "<bob@exa_mple.org>",
        "<" + "a" * 65 + "@example.org>",
        "<" + "a" * 60 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".org>",
        "<jürgen@example.org>",  # UTF-8 without SMTPUTF8 parsing
        "<>",
    ],
)
def test_parse_refused(arg: str) -> None:
    with pytest.raises(AddressError):
        parse_path(arg, utf8=False)


def test_null_path_only_where_allowed() -> None:
    assert parse_path("<>", allow_null=True).null
    assert parse_path("<> BODY=7BIT", allow_null=True).params == "BODY=7BIT"


@given(st.text(max_size=80))
def test_parse_never_crashes(arg: str) -> None:
    try:
        path = parse_path(arg, utf8=True, allow_null=True)
    except AddressError:
        return
    if path.mailbox is not None:
        text = str(path.mailbox)
        assert "\r" not in text and "\n" not in text
        assert not path.mailbox.domain.endswith(".")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("503 Error: need RCPT command", "503 5.5.1 Error: need RCPT command"),
        ("550 5.1.1 No such user", "550 5.1.1 No such user"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
        ("250-PIPELINING", "250-PIPELINING"),
        ("221 Bye", "221 2.0.0 Bye"),
        (
            "530 Must issue a STARTTLS command first",
            "530 5.7.0 Must issue a STARTTLS command first",
        ),
        ("599 odd", "599 5.0.0 odd"),
    ],
)
def test_with_enhanced(line: str, expected: str) -> None:
    assert with_enhanced(line) == expected


def test_protocol_names() -> None:
    assert protocol_name(False, False, False, False) == "SMTP"
    assert protocol_name(True, True, True, False) == "ESMTPSA"
    assert protocol_name(True, True, False, True) == "UTF8SMTPS"


def test_received_header_is_clean_and_folded() -> None:
    hdr = received_header(
        helo="evil\r\nX-Injected: 1 (x)",
        client_ip="192.0.2.7",
        hostname="mx.example.org",
        protocol="ESMTP",
        queue_id="ABC",
        tls=None,
        recipients=("a@example.org", "b@example.org"),
        now=0,
    )
    lines = hdr.split(b"\r\n")
    assert lines[0].startswith(b"Received: from evil??X-Injected: 1 ?x? ([192.0.2.7])")
    assert all(ln.startswith(b"\t") for ln in lines[1:-1])
    assert b" for " not in hdr  # several recipients: no "for" clause
    assert hdr.endswith(b"\r\n")


def test_header_helpers() -> None:
    assert header_names(b"Date: x\r\nMESSAGE-ID: <a>\r\n folded: no\r\n\r\n") == {
        "date",
        "message-id",
    }
    assert header_lines([("X-A", "1"), ("X-B", "l1\nl2")]) == b"X-A: 1\r\nX-B: l1\r\n\tl2\r\n"
