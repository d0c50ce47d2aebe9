"""The NOTIFY grammar (RFC 5465 8), table-driven: what parses into which filters, and
what is BAD."""

from __future__ import annotations

import pytest

from appliance.imap.commands import FetchAtt
from appliance.imap.notify import Filter, Notify
from appliance.imap.parser import ParseError, parse_command

NEW_EXP = frozenset({"MessageNew", "MessageExpunge"})


@pytest.mark.parametrize(
    ("text", "status", "filters", "unsupported"),
    [
        ("NOTIFY NONE", False, None, ()),
        ("notify none", False, None, ()),
        (
            "NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge))",
            False,
            (Filter("SELECTED", (), NEW_EXP, (FetchAtt("UID"), FetchAtt("FLAGS"))),),
            (),
        ),
        (
            "NOTIFY SET STATUS (PERSONAL (MailboxName SubscriptionChange))",
            True,
            (Filter("PERSONAL", (), frozenset({"MailboxName", "SubscriptionChange"})),),
            (),
        ),
        (
            'NOTIFY SET (SUBTREE "A B" (MessageNew MessageExpunge FlagChange)) (INBOXES NONE)',
            False,
            (
                Filter("SUBTREE", ("A B",), NEW_EXP | {"FlagChange"}),
                Filter("INBOXES", (), frozenset()),
            ),
            (),
        ),
        (
            "NOTIFY SET (MAILBOXES (INBOX Sent) (messagenew messageexpunge))",
            False,
            (Filter("MAILBOXES", ("INBOX", "Sent"), NEW_EXP),),
            (),
        ),
        (
            "NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge AnnotationChange Foo))",
            False,
            (Filter("SUBSCRIBED", (), NEW_EXP),),
            ("AnnotationChange", "Foo"),
        ),
    ],
)
def test_notify_parses(
    text: str, status: bool, filters: tuple[Filter, ...] | None, unsupported: tuple[str, ...]
) -> None:
    command = parse_command([b"t " + text.encode()])
    assert isinstance(command, Notify)
    assert (command.status, command.filters, command.unsupported) == (
        status,
        filters,
        unsupported,
    )


@pytest.mark.parametrize(
    "text",
    [
        "NOTIFY",
        "NOTIFY SET",
        "NOTIFY SET STATUS",
        "NOTIFY OFF",
        "NOTIFY SET (PERSONAL (MessageNew))",  # RFC 5465 5.2: needs MessageExpunge
        "NOTIFY SET (PERSONAL (MessageExpunge))",
        "NOTIFY SET (PERSONAL (FlagChange))",  # RFC 5465 5.1: needs both
        "NOTIFY SET (ELSEWHERE (MessageNew MessageExpunge))",
        "NOTIFY SET (SUBTREE (MessageNew MessageExpunge))",
        "NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)",
        "NOTIFY SET (PERSONAL (MessageNew (BOGUS) MessageExpunge))",
        "NOTIFY SET (PERSONAL (MailboxName)",
        "NOTIFY SET (PERSONAL ALL)",
        "NOTIFY SET (MAILBOXES (" + " ".join(f"m{i}" for i in range(101)) + ") NONE)",
    ],
)
def test_notify_bad(text: str) -> None:
    with pytest.raises(ParseError):
        parse_command([b"t " + text.encode()])
