"""The IMAP command parser: table-driven cases and hypothesis fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap import wire
from appliance.imap.commands import (
    Append,
    Authenticate,
    Command,
    CopyMove,
    Enable,
    Expunge,
    Fetch,
    FetchAtt,
    Id,
    ListCommand,
    Literal,
    Login,
    MailboxCommand,
    Search,
    SearchKey,
    Section,
    Select,
    Simple,
    Sort,
    Status,
    Store,
    Thread,
)
from appliance.imap.parser import ParseError, literal_suffix, parse_command


def parse(line: bytes) -> Command:
    return parse_command([line])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a1 NOOP", Simple("a1", "NOOP")),
        (b"a1 noop", Simple("a1", "NOOP")),
        (b"x.y CAPABILITY", Simple("x.y", "CAPABILITY")),
        (b'a LOGIN bob "p w\\"d"', Login("a", "LOGIN", user="bob", password='p w"d')),
        (b"a AUTHENTICATE PLAIN", Authenticate("a", "AUTHENTICATE", mechanism="PLAIN")),
        (
            b"a AUTHENTICATE plain AGJvYgBwdw==",
            Authenticate("a", "AUTHENTICATE", mechanism="PLAIN", initial="AGJvYgBwdw=="),
        ),
        (b"a ENABLE condstore", Enable("a", "ENABLE", capabilities=("CONDSTORE",))),
        (b"a ID NIL", Id("a", "ID")),
        (b'a ID ("name" "x" "os" NIL)', Id("a", "ID", params=(("name", "x"), ("os", None)))),
        (b"a SELECT inbox", Select("a", "SELECT", mailbox="inbox")),
        (b'a EXAMINE "Sent Items"', Select("a", "EXAMINE", mailbox="Sent Items")),
        (b"a SELECT INBOX (CONDSTORE)", Select("a", "SELECT", mailbox="INBOX", condstore=True)),
        (
            b"a CREATE Arch (USE (\\Archive))",
            MailboxCommand("a", "CREATE", mailbox="Arch", use=("\\Archive",)),
        ),
        (
            b'a LIST "" *',
            ListCommand("a", "LIST", reference="", patterns=("*",)),
        ),
        (
            b'a LIST (SUBSCRIBED) "" ("a%" b*) RETURN (CHILDREN STATUS (MESSAGES))',
            ListCommand(
                "a",
                "LIST",
                reference="",
                patterns=("a%", "b*"),
                selection=("SUBSCRIBED",),
                returns=("CHILDREN", "STATUS"),
                status_items=("MESSAGES",),
                extended=True,
            ),
        ),
        (
            b"a STATUS INBOX (messages UIDNEXT)",
            Status("a", "STATUS", mailbox="INBOX", items=("MESSAGES", "UIDNEXT")),
        ),
        (b"a EXPUNGE", Expunge("a", "EXPUNGE")),
        (b"a UID EXPUNGE 1:3,7", Expunge("a", "EXPUNGE", True, ((1, 3), (7, 7)))),
        (
            b"a FETCH 1:* FAST",
            Fetch(
                "a",
                "FETCH",
                seqset=((1, None),),
                atts=(FetchAtt("FLAGS"), FetchAtt("INTERNALDATE"), FetchAtt("RFC822.SIZE")),
            ),
        ),
        (
            b"a UID FETCH 5 (UID BODY.PEEK[1.2.MIME] BODY[]<0.100> BINARY.SIZE[1])",
            Fetch(
                "a",
                "FETCH",
                True,
                ((5, 5),),
                (
                    FetchAtt("UID"),
                    FetchAtt("BODY", Section((1, 2), "MIME"), None, True),
                    FetchAtt("BODY", Section(), (0, 100)),
                    FetchAtt("BINARY.SIZE", Section((1,))),
                ),
            ),
        ),
        (
            b"a FETCH 2 BODY[HEADER.FIELDS (From to)]",
            Fetch(
                "a",
                "FETCH",
                seqset=((2, 2),),
                atts=(FetchAtt("BODY", Section((), "HEADER.FIELDS", ("FROM", "TO"))),),
            ),
        ),
        (
            b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12 VANISHED)",
            Fetch("a", "FETCH", True, ((1, None),), (FetchAtt("FLAGS"),), 12, True),
        ),
        (
            b"a STORE 1,3 +FLAGS.SILENT (\\Seen $Work)",
            Store("a", "STORE", False, ((1, 1), (3, 3)), "add", True, ("\\Seen", "$Work")),
        ),
        (
            b"a UID STORE 4 (UNCHANGEDSINCE 9) -FLAGS \\Deleted",
            Store("a", "STORE", True, ((4, 4),), "remove", False, ("\\Deleted",), 9),
        ),
        (b"a MOVE 1:2 Trash", CopyMove("a", "MOVE", False, ((1, 2),), "Trash")),
        (b"a SEARCH ALL", Search("a", "SEARCH")),
        (
            b'a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR SEEN (FROM "x y") 1:5',
            Search(
                "a",
                "SEARCH",
                True,
                SearchKey(
                    "AND",
                    (
                        SearchKey(
                            "OR",
                            (
                                SearchKey("FLAG", text="\\Seen"),
                                SearchKey("AND", (SearchKey("FROM", text="x y"),)),
                            ),
                        ),
                        SearchKey("SEQ", seqset=((1, 5),)),
                    ),
                ),
                "UTF-8",
                ("MIN", "COUNT"),
            ),
        ),
        (
            b"a SEARCH SINCE 1-Feb-2024 NOT LARGER 100",
            Search(
                "a",
                "SEARCH",
                key=SearchKey(
                    "AND",
                    (
                        SearchKey("SINCE", number=738917),
                        SearchKey("NOT", (SearchKey("LARGER", number=100),)),
                    ),
                ),
            ),
        ),
        (
            b"a SORT (REVERSE DATE SUBJECT) UTF-8 ALL",
            Sort("a", "SORT", criteria=(("DATE", True), ("SUBJECT", False))),
        ),
        (b"a THREAD REFERENCES utf-8 ALL", Thread("a", "THREAD")),
    ],
)
def test_parse_valid(line: bytes, expected: Command) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        (b"", "*"),
        (b"nocommand", "*"),
        (b"+tag NOOP", "*"),
        (b"a FROB", "a"),
        (b"a NOOP extra", "a"),
        (b'a LOGIN "unterminated', "a"),
        (b"a LOGIN onlyuser", "a"),
        (b"a FETCH 0 FLAGS", "a"),
        (b"a FETCH 1 (FLAGS", "a"),
        (b"a FETCH 1 BODY[1.MIME.X]", "a"),
        (b"a FETCH 1 BODY[MIME]", "a"),
        (b"a FETCH 1 BINARY[HEADER]", "a"),
        (b"a FETCH 1 (FLAGS) (VANISHED)", "a"),
        (b"a STORE 1 FROB (\\Seen)", "a"),
        (b"a SEARCH FROB", "a"),
        (b"a SEARCH SINCE 31-Feb-2024", "a"),
        (b"a SEARCH " + b"(" * 100 + b"ALL" + b")" * 100, "a"),
        (b"a UID NOOP", "a"),
        (b"a SORT (REVERSE) UTF-8 ALL", "a"),
        (b"a THREAD FANCY UTF-8 ALL", "a"),
        (b'a SELECT "caf\xc3\xa9"', "a"),  # 8-bit quoted without UTF8=ACCEPT
    ],
)
def test_parse_invalid_keeps_tag(line: bytes, tag: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(line)
    assert info.value.tag == tag


def test_utf8_quoted_allowed_after_enable() -> None:
    command = parse_command([b'a SELECT "caf\xc3\xa9"'], utf8=True)
    assert isinstance(command, Select) and command.mailbox == "café"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a LOGIN {3}", (3, False, False)),
        (b"a APPEND INBOX {12+}", (12, True, False)),
        (b"a APPEND INBOX ~{5}", (5, False, True)),
        (b"a LOGIN x", None),
        (b"a LOGIN {x}", None),
    ],
)
def test_literal_suffix(line: bytes, expected: tuple[int, bool, bool] | None) -> None:
    assert literal_suffix(line) == expected


def test_literals_across_segments() -> None:
    segments: list[bytes | Literal] = [
        b"a LOGIN {3}",
        Literal(3, data=b"bob"),
        b" {4+}",
        Literal(4, data=b"p w)"),
        b"",
    ]
    assert parse_command(segments) == Login("a", "LOGIN", user="bob", password="p w)")


def test_append_multi_with_flags_date_and_file_literal(tmp_path: object) -> None:
    from pathlib import Path

    spooled = Literal(10, path=Path("/nonexistent/spool"))
    segments: list[bytes | Literal] = [
        b'a APPEND Sent (\\Seen) "05-Jan-2024 10:00:00 +0100" {3}',
        Literal(3, data=b"abc"),
        b" {10}",
        spooled,
        b"",
    ]
    command = parse_command(segments)
    assert isinstance(command, Append)
    first, second = command.messages
    assert first.flags == ("\\Seen",) and first.literal.data == b"abc"
    assert first.date == 1704445200.0
    assert second.literal is spooled and second.date is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_never_crashes(data: bytes) -> None:
    line = data.replace(b"\r", b"").replace(b"\n", b"")
    with contextlib.suppress(ParseError):
        parse_command([line])


_atoms = st.sampled_from(
    [
        b"FETCH",
        b"1:*",
        b"(",
        b")",
        b"BODY[",
        b"]",
        b"<0.5>",
        b"\\Seen",
        b'"q"',
        b"UID",
        b"SEARCH",
        b"OR",
        b"NOT",
        b"STORE",
        b"+FLAGS",
        b"HEADER",
        b"{3}",
        b"*",
        b"%",
        b"NIL",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_atoms, max_size=12))
def test_fuzz_token_soup(tokens: list[bytes]) -> None:
    try:
        parse_command([b"t " + b" ".join(tokens)])
    except ParseError as exc:
        assert exc.tag == "t"


@given(st.text(max_size=40))
def test_mutf7_roundtrip(name: str) -> None:
    encoded = wire.mutf7_encode(name)
    assert encoded.isascii()
    assert wire.mutf7_decode(encoded) == name


@pytest.mark.parametrize(
    ("text", "encoded"),
    [("INBOX", "INBOX"), ("Entwürfe", "Entw&APw-rfe"), ("a&b", "a&-b"), ("日本", "&ZeVnLA-")],
)
def test_mutf7_known(text: str, encoded: str) -> None:
    assert wire.mutf7_encode(text) == encoded
    assert wire.mutf7_decode(encoded) == text


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&AGE-", "caf\u00e9"])
def test_mutf7_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        wire.mutf7_decode(bad)
