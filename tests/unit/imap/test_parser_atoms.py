"""Issue 17 item 10: "~" is an ASTRING-CHAR; "~{n}" (literal8) only where the grammar has it.

RFC 9051 9: ATOM-CHAR is any CHAR except atom-specials, and "~" is not an atom-special, so
``SELECT ~foo`` names the mailbox "~foo". literal8 appears only in append-data (RFC 3516
4.2, RFC 9051 9) and CATENATE parts. Dovecot 2.3 answers the same: ``SELECT ~foo`` parses
(its file system then refuses the name) and ``SELECT ~{3}`` is
``BAD ... literal8 not allowed here``.
"""

from __future__ import annotations

import pytest

from appliance.imap.commands import (
    Append,
    Command,
    ListCommand,
    Literal,
    Login,
    MailboxCommand,
    Rename,
    Search,
    SearchKey,
    Select,
    Status,
)
from appliance.imap.cursor import Segment
from appliance.imap.parser import ParseError, parse_command


def parse(*segments: Segment) -> Command:
    return parse_command(list(segments))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a SELECT ~foo", Select("a", "SELECT", mailbox="~foo")),
        (b"a EXAMINE foo~", Select("a", "EXAMINE", mailbox="foo~")),
        (b"a SELECT ~", Select("a", "SELECT", mailbox="~")),
        (b"a CREATE a~b/~c", MailboxCommand("a", "CREATE", mailbox="a~b/~c")),
        (b"a DELETE ~x", MailboxCommand("a", "DELETE", mailbox="~x")),
        (b"a SUBSCRIBE ~x", MailboxCommand("a", "SUBSCRIBE", mailbox="~x")),
        (b"a RENAME ~x ~y", Rename("a", "RENAME", old="~x", new="~y")),
        (b"a STATUS ~x (MESSAGES)", Status("a", "STATUS", mailbox="~x", items=("MESSAGES",))),
        (b"a LOGIN ~user ~pw", Login("a", "LOGIN", user="~user", password="~pw")),
        (
            b'a LIST "" ~*',
            ListCommand("a", "LIST", reference="", patterns=("~*",)),
        ),
        (
            b"a SEARCH SUBJECT ~tilde",
            Search("a", "SEARCH", False, SearchKey("SUBJECT", text="~tilde")),
        ),
    ],
)
def test_tilde_is_an_astring_char(line: bytes, expected: Command) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize(
    "segments",
    [
        [b"a SELECT ~{3}", Literal(3, data=b"abc", binary=True), b""],
        [b"a CREATE ~{3+}", Literal(3, data=b"abc", binary=True), b""],
        [b"a LOGIN ~{3}", Literal(3, data=b"bob", binary=True), b" pw"],
        [b"a SEARCH BODY ~{1}", Literal(1, data=b"x", binary=True), b""],
        [b'a LIST "" ~{1}', Literal(1, data=b"*", binary=True), b""],
        [b"a SEARCH CHARSET ~{5}", Literal(5, data=b"UTF-8", binary=True), b" ALL"],
    ],
)
def test_literal8_refused_outside_append(segments: list[Segment]) -> None:
    with pytest.raises(ParseError) as err:
        parse(*segments)
    assert err.value.text == "literal8 not allowed here"
    assert err.value.tag == "a"


def test_literal8_allowed_in_append() -> None:
    data = b"Subject: x\r\n\r\n\x00bin"
    command = parse(b"a APPEND INBOX ~{%d}" % len(data), Literal(len(data), data=data), b"")
    assert isinstance(command, Append)
    assert command.messages[0].literal.data == data
    utf8 = parse(b"a APPEND INBOX UTF8 (~{%d}" % len(data), Literal(len(data), data=data), b")")
    assert isinstance(utf8, Append) and utf8.messages[0].literal.data == data


def test_append_mailbox_may_start_with_tilde() -> None:
    command = parse(b"a APPEND ~box {2}", Literal(2, data=b"hi"), b"")
    assert isinstance(command, Append) and command.mailbox == "~box"
