"""Issue 17 item 9: LIST/LSUB per RFC 3501 6.3.9 and RFC 5258, on real sockets.

Every expected line below was first taken from a private Dovecot 2.3 (Debian) given the
same hierarchy and commands; differences that remain are noted where they occur (our
store creates the parents of a new mailbox, RFC 9051 6.3.4, so "Par" exists here).
"""

from __future__ import annotations

import time

import pytest

from tests.protocol.imap.conftest import ImapServer
from tests.protocol.imap.rawclient import RawClient
from tests.protocol.imap.test_updates import login


def untagged(lines: list[bytes]) -> list[bytes]:
    assert b" OK " in lines[-1], lines
    return lines[:-1]


@pytest.mark.parametrize(
    "command",
    [
        'LIST (FOO) "" "*"',
        'LIST (FOO) "" ""',  # the empty-pattern shortcut must not skip the checks
        'LIST (RECURSIVEMATCH) "" "%"',
        'LIST (RECURSIVEMATCH) "" ""',
        'LIST (REMOTE RECURSIVEMATCH) "" "%"',  # RFC 5258 3.1: "or only with REMOTE"
        'LIST (RECURSIVEMATCH RECURSIVEMATCH) "" "%"',
        'LIST "" "*" RETURN (FOO)',
        'LIST "" "" RETURN (FOO)',
        'LSUB (SUBSCRIBED) "" "*"',
    ],
)
def test_bad_list_options(imap_server: ImapServer, command: str) -> None:
    c = login(imap_server)
    lines = c.command(command)
    assert len(lines) == 1 and lines[0].split(b" ")[1] == b"BAD", lines
    c.ok("NOOP")
    c.close()


def test_valid_option_combinations(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok('LIST (SUBSCRIBED RECURSIVEMATCH REMOTE) "" "%"')
    c.ok('LIST (SPECIAL-USE RECURSIVEMATCH) "" "%"')
    c.ok('LIST (SUBSCRIBED SUBSCRIBED) "" "%" RETURN (CHILDREN CHILDREN)')
    c.close()


def test_subscription_to_deleted_mailbox_is_nonexistent(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok("CREATE Gone")
    c.ok("SUBSCRIBE Gone")
    c.ok("DELETE Gone")
    # RFC 5258 3 / example 2: subscribed but deleted -> \Subscribed \NonExistent
    assert untagged(c.command('LIST (SUBSCRIBED) "" "Gone"')) == [
        b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Gone\r\n'
    ]
    assert b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Gone\r\n' in c.ok(
        'LIST (SUBSCRIBED) "" "*"'
    )
    # RFC 3501 6.3.6: the name stays on the subscription list; Dovecot: LSUB () Gone
    assert untagged(c.command('LSUB "" "G*"')) == [b'* LSUB () "/" Gone\r\n']
    # a plain LIST and RETURN (SUBSCRIBED) list existing mailboxes only (RFC 5258 ex. 6)
    assert untagged(c.command('LIST "" "Gone"')) == []
    assert untagged(c.command('LIST "" "Gone" RETURN (SUBSCRIBED)')) == []
    c.ok("UNSUBSCRIBE Gone")
    assert untagged(c.command('LIST (SUBSCRIBED) "" "Gone"')) == []
    c.close()


def test_lsub_percent_returns_unsubscribed_parent_noselect(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok("CREATE Par/Child")
    c.ok("SUBSCRIBE Par/Child")
    # RFC 3501 6.3.9: "%" hides Par/Child, so Par is returned, flagged \Noselect
    assert untagged(c.command('LSUB "" "P%"')) == [b'* LSUB (\\Noselect) "/" Par\r\n']
    assert b'* LSUB (\\Noselect) "/" Par\r\n' in c.ok('LSUB "" "%"')
    # "*" matches the child itself: no parent line
    assert untagged(c.command('LSUB "" "Par*"')) == [b'* LSUB () "/" Par/Child\r\n']
    assert untagged(c.command('LSUB "Par/" "%"')) == [b'* LSUB () "/" Par/Child\r\n']
    # LIST (SUBSCRIBED) without RECURSIVEMATCH lists exactly the subscribed names
    assert untagged(c.command('LIST (SUBSCRIBED) "" "P%"')) == []
    c.ok("SUBSCRIBE Par")
    assert untagged(c.command('LSUB "" "P%"')) == [b'* LSUB () "/" Par\r\n']
    c.close()


def test_recursivematch_childinfo(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok("CREATE Par/Child")
    c.ok("SUBSCRIBE Par/Child")
    c.ok("SUBSCRIBE Ghost/Sub")  # neither Ghost nor Ghost/Sub exists
    lines = untagged(c.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"'))
    # RFC 5258 3.5 and example 8 A/A2 (Dovecot writes the tag as an atom)
    assert b'* LIST (\\NonExistent \\HasNoChildren) "/" Ghost (CHILDINFO ("SUBSCRIBED"))\r\n' in (
        lines
    )
    assert b'* LIST (\\HasChildren) "/" Par (CHILDINFO ("SUBSCRIBED"))\r\n' in lines
    assert not [x for x in lines if b"Ghost/Sub" in x or b"Par/Child" in x]
    # the children match "*" themselves: CHILDINFO would be redundant (RFC 5258 3.5 SHOULD)
    lines = untagged(c.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"'))
    assert not [x for x in lines if b"CHILDINFO" in x]
    assert b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Ghost/Sub\r\n' in lines
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Par/Child\r\n' in lines
    # a subscribed parent keeps \Subscribed and still gets CHILDINFO (example 8 A1)
    c.ok("SUBSCRIBE Par")
    assert untagged(c.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Par"')) == [
        b'* LIST (\\HasChildren \\Subscribed) "/" Par (CHILDINFO ("SUBSCRIBED"))\r\n'
    ]
    # no RECURSIVEMATCH: no CHILDINFO, no unsubscribed parents
    assert untagged(c.command('LIST (SUBSCRIBED) "" "%"')) == [
        b'* LIST (\\HasChildren \\Subscribed) "/" Par\r\n'
    ]
    c.close()


@pytest.mark.parametrize(
    "command", ['LIST "" "&Jjo"', 'LIST "" "&AGE-"', 'LIST "" "&"', 'LIST "&" "*"', 'LSUB "" "&"']
)
def test_invalid_modified_utf7_pattern_lists_nothing(imap_server: ImapServer, command: str) -> None:
    c = login(imap_server)
    c.ok("SUBSCRIBE INBOX")
    # Dovecot: "OK List completed" with no LIST response; before the fix: NO [CANNOT]
    lines = c.command(command)
    assert len(lines) == 1 and lines[0].split(b" ")[1] == b"OK", lines
    c.close()


def test_nonexistent_parent_in_extended_list(imap_server: ImapServer) -> None:
    userdir = imap_server.ctx.store.user_dir(imap_server.user)  # type: ignore[attr-defined]
    for sub in ("cur", "new", "tmp"):
        (userdir / ".Ext.Child" / sub).mkdir(parents=True)  # written by another tool
    c = login(imap_server)
    # Dovecot: plain LIST says \Noselect, extended LIST \NonExistent (RFC 5258 3)
    assert untagged(c.command('LIST "" "Ext"')) == [
        b'* LIST (\\Noselect \\HasChildren) "/" Ext\r\n'
    ]
    assert untagged(c.command('LIST () "" "Ext" RETURN (CHILDREN)')) == [
        b'* LIST (\\NonExistent \\HasChildren) "/" Ext\r\n'
    ]
    assert untagged(c.command('LIST "" ("Ext" "Ext/%")')) == [
        b'* LIST (\\NonExistent \\HasChildren) "/" Ext\r\n',
        b'* LIST (\\HasNoChildren) "/" Ext/Child\r\n',
    ]
    c.close()


def test_wildcard_pattern_takes_linear_time(imap_server: ImapServer) -> None:
    c = login(imap_server)
    c.ok("CREATE " + "a" * 30)
    c.ok("SUBSCRIBE " + "a" * 30)
    # A backtracking regex needs seconds to minutes for this (and blocked the event loop)
    started = time.monotonic()
    for command in ('LIST "" "' + "*a" * 12 + 'b"', 'LSUB "" "' + "%a" * 12 + '*b"'):
        assert untagged(c.command(command)) == []
    assert time.monotonic() - started < 2
    other = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    assert other.greeting.startswith(b"* OK")
    other.close()
    c.close()


def test_empty_pattern_forms_as_dovecot(imap_server: ImapServer) -> None:
    c = login(imap_server)
    # RFC 9051 6.3.9: the plain form asks for the hierarchy delimiter
    assert untagged(c.command('LIST "" ""')) == [b'* LIST (\\Noselect) "/" ""\r\n']
    # Dovecot: the extended forms and LSUB match no name with ""
    for command in ('LIST () "" ""', 'LIST "" ("")', 'LIST "" "" RETURN ()', 'LSUB "" ""'):
        assert untagged(c.command(command)) == [], command
    c.ok("SUBSCRIBE INBOX")
    assert untagged(c.command('LSUB "" "inbox"')) == [b'* LSUB () "/" INBOX\r\n']
    c.close()
