"""CONDSTORE enabled after SELECT (issue 17 item 7, RFC 7162 3.1, 3.1.5; RFC 4731 3.2).

The first CONDSTORE-enabling command while a mailbox is selected gets ``* OK
[HIGHESTMODSEQ n]`` before its own responses; later ones do not. ESEARCH MODSEQ is the
highest modseq of the messages returned. Expected answers compared with Dovecot 2.3.
"""

from __future__ import annotations

import re

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient

ENABLING = [
    "FETCH 1 (FLAGS MODSEQ)",
    "FETCH 1 (FLAGS) (CHANGEDSINCE 1)",
    "SEARCH MODSEQ 1",
    "UID SEARCH RETURN (MIN) MODSEQ 1",
    "STORE 1 (UNCHANGEDSINCE 100000) +FLAGS (\\Seen)",
    "STATUS INBOX (HIGHESTMODSEQ)",
    "ENABLE CONDSTORE",
]


def login(server: ImapServer) -> RawClient:
    c = RawClient(server.host, server.tls_port, server.client_tls())
    c.ok(f'LOGIN {server.user} "{PASSWORD}"')
    return c


def highest(lines: list[bytes]) -> int:
    for line in lines:
        match = re.fullmatch(rb"\* OK \[HIGHESTMODSEQ (\d+)\].*\r\n", line)
        if match:
            return int(match.group(1))
    raise AssertionError(lines)


@pytest.mark.parametrize("command", ENABLING)
def test_first_enabling_command_sends_highestmodseq(imap_server: ImapServer, command: str) -> None:
    imap_server.deliver(make_message("one"))
    imap_server.deliver(make_message("two"))
    c = login(imap_server)
    top = highest(c.ok("SELECT INBOX"))
    lines = c.ok(command)
    assert lines[0] == b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % top, lines  # before the rest
    again = c.ok(command)
    assert not any(b"HIGHESTMODSEQ" in x and x.startswith(b"* OK") for x in again), again
    c.close()


def test_enabled_before_select_sends_it_only_with_select(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("one"))
    c = login(imap_server)
    c.ok("SELECT INBOX (CONDSTORE)")
    lines = c.ok("FETCH 1 (FLAGS MODSEQ)")
    assert not any(x.startswith(b"* OK [HIGHESTMODSEQ") for x in lines), lines
    c.close()


def test_not_selected_sends_nothing(imap_server: ImapServer) -> None:
    c = login(imap_server)
    lines = c.ok("STATUS INBOX (HIGHESTMODSEQ)")
    assert lines[0].startswith(b"* STATUS INBOX (HIGHESTMODSEQ "), lines
    c.close()


def test_esearch_modseq_is_that_of_the_returned_messages(imap_server: ImapServer) -> None:
    for n in range(4):
        imap_server.deliver(make_message(f"m{n}"))
    c = login(imap_server)
    c.ok("SELECT INBOX")
    for seq in (3, 2, 1, 4):  # modseqs: 3 < 2 < 1 < 4 (the order Dovecot was given too)
        c.ok(f"STORE {seq} +FLAGS (\\Answered)")
    mods = {}
    for line in c.ok("FETCH 1:4 (MODSEQ)"):
        match = re.match(rb"\* (\d+) FETCH \(.*MODSEQ \((\d+)\)", line)
        if match:
            mods[int(match.group(1))] = int(match.group(2))
    assert mods[3] < mods[2] < mods[1] < mods[4]

    def esearch(args: str) -> bytes:
        return c.ok(f"SEARCH RETURN ({args}) 1:3 MODSEQ 1")[0]

    assert esearch("MIN").endswith(b"MIN 1 MODSEQ %d\r\n" % mods[1])
    assert c.ok("SEARCH RETURN (MIN) 3:4 MODSEQ 1")[0].endswith(b"MIN 3 MODSEQ %d\r\n" % mods[3])
    assert esearch("MAX").endswith(b"MAX 3 MODSEQ %d\r\n" % mods[3])
    assert esearch("MIN MAX").endswith(b"MIN 1 MAX 3 MODSEQ %d\r\n" % mods[1])
    assert c.ok("SEARCH RETURN (MAX) 2:3 MODSEQ 1")[0].endswith(b"MAX 3 MODSEQ %d\r\n" % mods[3])
    assert esearch("COUNT").endswith(b"COUNT 3 MODSEQ %d\r\n" % mods[1])
    assert esearch("ALL").endswith(b"ALL 1:3 MODSEQ %d\r\n" % mods[1])
    assert c.ok("SEARCH 2:3 MODSEQ 1")[0] == b"* SEARCH 2 3 (MODSEQ %d)\r\n" % mods[2]
    assert c.ok("UID SEARCH RETURN (MAX) 2:3 MODSEQ 1")[0].endswith(
        b"UID MAX 3 MODSEQ %d\r\n" % mods[3]
    )
    c.close()
