"""ENVELOPE addresses: a comment names a bare addr-spec; repeated address fields merge.

Expected values are Dovecot 2.3.19's answers on the same header fields (compared with a
private instance)."""

from __future__ import annotations

import io
import json

import pytest

from appliance.mime.addresses import parse_addresses, search_forms
from appliance.mime.summary import summarize_file


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("user@d (Real Name)", [["Real Name", None, "user", "d"]]),
        ("user(c1)@d(c2) (Real Name)", [["Real Name", None, "user", "d"]]),
        ("(Comment) user@d", [[None, None, "user", "d"]]),
        ("Name <x@y> (cmt)", [["Name", None, "x", "y"]]),
        ("<x@y> (cmt)", [[None, None, "x", "y"]]),
        ("p@q (a (b) c)", [["a (b) c", None, "p", "q"]]),
        ("t@u ()", [[None, None, "t", "u"]]),
        ("x@y (first) (second)", [["second", None, "x", "y"]]),
        ("m@n(  spaced   out  )", [["spaced out", None, "m", "n"]]),
        ("user@d (Real \\) Name)", [["Real ) Name", None, "user", "d"]]),
        ("r@s (=?utf-8?q?Caf=C3=A9?=)", [["=?utf-8?q?Caf=C3=A9?=", None, "r", "s"]]),
        (
            "grp: a@b (A), c@d;",
            [
                [None, None, "grp", None],
                ["A", None, "a", "b"],
                [None, None, "c", "d"],
                [None, None, None, None],
            ],
        ),
    ],
)
def test_comment_is_the_personal_name_of_a_bare_address(
    field: str, expected: list[list[str | None]]
) -> None:
    assert parse_addresses(field) == expected


def test_repeated_address_fields_merge_in_the_envelope() -> None:
    raw = (
        b"From: user@d (Real Name)\r\nTo: a@b\r\nTo: c@d\r\nCc: x@y\r\nCc: z@w\r\n"
        b"Bcc: b1@x\r\nBcc: b2@x\r\nSubject: hi\r\n\r\nbody\r\n"
    )
    env = json.loads(json.dumps(summarize_file(io.BytesIO(raw))))["env"]
    assert env["from"] == [["Real Name", None, "user", "d"]]
    assert env["sender"] == env["reply-to"] == env["from"]
    assert env["to"] == [[None, None, "a", "b"], [None, None, "c", "d"]]
    assert env["cc"] == [[None, None, "x", "y"], [None, None, "z", "w"]]
    assert env["bcc"] == [[None, None, "b1", "x"], [None, None, "b2", "x"]]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("user(c1)@d(c2) (Real Name)", ['"Real Name" <user@d>']),
        ('"Quoted, Guy" <q@g>', ['"Quoted, Guy" <q@g>']),
        ("Foo <c@d>, e@f", ["Foo <c@d>", "e@f"]),
        ("=?utf-8?q?Caf=C3=A9?= <cafe@x>", ["=?utf-8?q?Caf=C3=A9?= <cafe@x>"]),
        ("grp: a@b, c@d;", ["grp: ", "a@b", "c@d", ";"]),
        ("undisclosed-recipients:;", ["undisclosed-recipients:;"]),
    ],
)
def test_search_forms_are_the_parsed_addresses(field: str, expected: list[str]) -> None:
    assert search_forms(field) == expected
