"""Folder names on disk and Maildir file names (table-driven and fuzzed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.store.base import InvalidFlag, InvalidMailboxName
from appliance.store.names import (
    canonical_mailbox,
    clean_flags,
    flags_of,
    folder_dirname,
    info_of,
    mailbox_of_dirname,
    parse_filename,
    validate_mailbox,
    with_uid,
)


@pytest.mark.parametrize(
    ("name", "dirname"),
    [
        ("Sent", ".Sent"),
        ("Archive/2024", ".Archive.2024"),
        ("a.b", ".a~2eb"),
        ("x~y", ".x~7ey"),
        ("Ünï", ".&ANw-n&AO8-"),
        ("amp & co", ".amp &- co"),
        ("日本語", ".&ZeVnLIqe-"),
    ],
)
def test_folder_dirnames(name: str, dirname: str) -> None:
    assert folder_dirname(name) == dirname
    assert mailbox_of_dirname(dirname) == name


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"),
            min_size=1,
            max_size=12,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_dirname_round_trip(parts: list[str]) -> None:
    name = canonical_mailbox("/".join(parts))
    dirname = folder_dirname(name)
    assert "/" not in dirname and dirname.count(".") == len(parts)
    assert mailbox_of_dirname(dirname) == name


@pytest.mark.parametrize("bad", ["", "a//b", "/a", "a/", "a\r\nb", "x\x00"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(InvalidMailboxName):
        validate_mailbox(bad)


def test_inbox_case_insensitive() -> None:
    assert validate_mailbox("inbox") == "INBOX"
    assert validate_mailbox("Inbox/Sub") == "INBOX/Sub"
    assert validate_mailbox("Inboxes") == "Inboxes"


def test_non_folders_ignored() -> None:
    for d in ("cur", "new", "tmp", ".", "..", "pillarbox-work", ".a..b", ".&bad"):
        assert mailbox_of_dirname(d) is None


def test_parse_filename() -> None:
    f = parse_filename("1700.M1P2Q3.host,S=123,W=130,U=42:2,FS")
    assert (f.base, f.info, f.size, f.uid) == ("1700.M1P2Q3.host,S=123,W=130,U=42", "FS", 123, 42)
    g = parse_filename("1700.foreign.host")
    assert (g.base, g.info, g.size, g.uid) == ("1700.foreign.host", "", None, None)
    assert with_uid("1700.foreign.host", 7, 99) == "1700.foreign.host,S=99,U=7"
    assert with_uid("1700.x,S=5,U=3", 9, 99) == "1700.x,S=5,U=9"


def test_flag_letters() -> None:
    letters = {"$Work": "a", "$Junk": "b"}
    flags = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forwarded", "$Work"}
    info = info_of(flags, letters)
    assert info == "DFPRSTa"  # ASCII order, as the Maildir spec asks
    assert flags_of(info, {v: k for k, v in letters.items()}) == flags
    assert info_of({"$Unmapped"}, letters) == ""


def test_clean_flags() -> None:
    assert clean_flags(["\\SEEN", "\\flagged", "$x"]) == {"\\Seen", "\\Flagged", "$x"}
    for bad in ("\\Recent", "\\Bogus", "a b", "(x", ""):
        with pytest.raises(InvalidFlag):
            clean_flags([bad])
