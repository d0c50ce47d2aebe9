"""LIST pattern matching and selection, as pure functions (issue 17 item 9).

``list_match`` is checked against a regex oracle (the matcher it replaced, which took
exponential time on some patterns); ``list_entries`` against RFC 5258 example 9.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap.listing import ListOptionError, ListRequest, check_options, list_entries
from appliance.store.base import MailboxInfo
from appliance.store.names import list_match


def oracle(pattern: str, name: str) -> bool:
    out = [".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern]
    text = "".join(out)
    if pattern[:5].upper() == "INBOX":
        text = "(?i:INBOX)" + "".join(out[5:])
    return re.compile(text + r"\Z", re.S).match(name) is not None


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(
    st.text(alphabet="ab/%*", max_size=8),
    st.text(alphabet="ab/", max_size=8),
    st.sampled_from(["", "INBOX", "inbox", "InBoX/"]),
    st.sampled_from(["", "INBOX", "INBOX/"]),
)
def test_list_match_agrees_with_regex(pattern: str, name: str, p0: str, n0: str) -> None:
    assert list_match(p0 + pattern, n0 + name) == oracle(p0 + pattern, n0 + name)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "a/b/c", True),
        ("%", "a/b", False),
        ("a/%", "a/b", True),
        ("a/%", "a/b/c", False),
        ("%/%/c", "a/b/c", True),
        ("inbox", "INBOX", True),
        ("Inbox/%", "INBOX/x", True),
        ("", "", True),
        ("", "a", False),
        ("Grüße*", "Grüße/x", True),
        ("*%*%", "a", True),
    ],
)
def test_list_match_table(pattern: str, name: str, expected: bool) -> None:
    assert list_match(pattern, name) is expected


def test_list_match_is_not_exponential() -> None:
    started = time.monotonic()
    for _ in range(50):
        assert not list_match("*a" * 40 + "b", "a" * 200)
        assert not list_match("%a" * 40 + "*b", "a" * 200)
    assert time.monotonic() - started < 2


def _boxes(*names: str, intermediate: tuple[str, ...] = ()) -> list[MailboxInfo]:
    every = set(names) | set(intermediate)
    return [
        MailboxInfo(
            name=n,
            has_children=any(m.startswith(n + "/") for m in every),
            selectable=n not in intermediate,
        )
        for n in sorted(every)
    ]


def test_rfc5258_example_9() -> None:
    boxes = _boxes(
        "INBOX",
        "foo2",
        "foo2/bar1",
        "foo2/bar2",
        "baz2",
        "baz2/bar2",
        "baz2/bar22",
        "baz2/bar222",
        "eps2",
        "eps2/mamba",
        "qux2/bar2",
        intermediate=("qux2",),
    )
    subscribed = {
        "foo2/bar1",
        "foo2/bar2",
        "baz2/bar2",
        "baz2/bar22",
        "baz2/bar222",
        "eps2",
        "eps2/mamba",
        "qux2/bar2",
    }
    req = ListRequest(
        patterns=("*2",),
        extended=True,
        selection=frozenset({"RECURSIVEMATCH", "SUBSCRIBED"}),
    )
    got = {
        e.name: ("\\Subscribed" in e.attributes, e.childinfo)
        for e in list_entries(boxes, subscribed, req)
    }
    # RFC 5258 example 9, without the two redundant CHILDINFO lines (3.5 SHOULD NOT)
    assert got == {
        "foo2": (False, ("SUBSCRIBED",)),
        "foo2/bar2": (True, ()),
        "baz2/bar2": (True, ()),
        "baz2/bar22": (True, ()),
        "baz2/bar222": (True, ()),
        "eps2": (True, ("SUBSCRIBED",)),
        "qux2/bar2": (True, ()),
    }


def test_rfc5258_example_10_childinfo_without_children() -> None:
    boxes = _boxes("INBOX", "foo")
    req = ListRequest(
        patterns=("foo",),
        extended=True,
        selection=frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
        returns=frozenset({"CHILDREN"}),
    )
    (entry,) = list_entries(boxes, {"foo/bar"}, req)
    assert entry.name == "foo" and entry.attributes == ("\\HasNoChildren",)
    assert entry.childinfo == ("SUBSCRIBED",)


@pytest.mark.parametrize(
    ("selection", "returns", "lsub"),
    [
        (("RECURSIVEMATCH",), (), False),
        (("RECURSIVEMATCH", "REMOTE"), (), False),
        (("X-FOO",), (), False),
        ((), ("X-FOO",), False),
        (("SUBSCRIBED",), (), True),
    ],
)
def test_check_options_refuses(
    selection: tuple[str, ...], returns: tuple[str, ...], lsub: bool
) -> None:
    with pytest.raises(ListOptionError):
        check_options(selection, returns, lsub)
