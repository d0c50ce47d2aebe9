"""NOTIFY (RFC 5465) side by side with a private Dovecot 2.3: one scripted two-session
scenario on both servers; what the watching session receives unsolicited after each step
is compared line by line.

Normalized: the hierarchy delimiter ("." there, "/" here) and UIDVALIDITY values; the
lines of one step compare as a multiset (Dovecot sends a RENAME's inferiors first).
Known differences (asserted as such, not hidden): see TIMING.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.dovecot_ref import DovecotRef, private_dovecot
from tests.protocol.imap.rawclient import RawClient

MESSAGE = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
APPEND = f"APPEND BOX {{{len(MESSAGE)}+}}\r\n" + MESSAGE.decode()
EVENTS = "(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"
SELECTED = "(SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
NOTIFY = f"NOTIFY SET {SELECTED} (PERSONAL {EVENTS})"

# (name, commands of session B ({sep} is the hierarchy delimiter), lines expected at A)
SCRIPT: list[tuple[str, list[str], int]] = [
    ("create", ["CREATE N1"], 1),
    ("append elsewhere", [APPEND.replace("BOX", "N1")], 1),
    ("flag elsewhere", ["SELECT N1", "STORE 1 +FLAGS.SILENT (\\Seen)"], 1),
    ("flag deleted elsewhere", ["STORE 1 +FLAGS.SILENT (\\Deleted)"], 1),
    ("expunge elsewhere", ["EXPUNGE", "UNSELECT"], 1),
    ("append to selected", [APPEND.replace("BOX", "INBOX")], 3),
    ("flag in selected", ["SELECT INBOX", "STORE 1 +FLAGS.SILENT (\\Flagged)"], 1),
    ("deleted in selected", ["STORE 1 +FLAGS.SILENT (\\Deleted)"], 1),
    ("expunge in selected", ["EXPUNGE", "UNSELECT"], 1),
    ("subscribe", ["SUBSCRIBE N1"], 1),
    ("unsubscribe", ["UNSUBSCRIBE N1"], 1),
    ("create inferior", ["CREATE N1{sep}C"], 1),
    ("rename", ["RENAME N1 N2"], 2),
    ("delete inferior", ["DELETE N2{sep}C"], 1),
    ("delete", ["DELETE N2"], 1),
]

# The selected mailbox's flag changes and expunges: Dovecot 2.3 sends them when its
# mailbox watcher fires, which is often later than the step (a flag change then arrives
# merged with the next one, an EXPUNGE only after another command), and it follows
# EXPUNGE with "* 0 RECENT"; we add UID to every unsolicited FETCH (RFC 9051 7.4.2 lets
# a server send more items). These steps are compared as "every line Dovecot sent
# within the step, normalized, is one we sent in these steps".
TIMING: tuple[str, ...] = ("flag in selected", "deleted in selected", "expunge in selected")


def fetch_flags(line: bytes) -> bytes:
    """* n FETCH (FLAGS (...) [UID n]) with the flags sorted and without UID."""
    match = re.fullmatch(rb"\* (\d+) FETCH \(FLAGS \(([^)]*)\)(?: UID \d+)?\)\r\n", line)
    if not match:
        return line
    flags = b" ".join(sorted(match.group(2).split()))
    return b"* %s FETCH (FLAGS (%s))\r\n" % (match.group(1), flags)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotRef]:
    with private_dovecot() as ref:
        yield ref


def collect(client: RawClient, want: int, timeout: float = 3.0) -> list[bytes]:
    """Unsolicited lines: wait up to ``timeout`` for ``want`` of them, then 0.3 s more."""
    lines: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            client.sock.settimeout(left if len(lines) < want else min(left, 0.3))
            lines.append(client.line())
    except TimeoutError:
        pass
    finally:
        client.sock.settimeout(15)
    return lines


def normalize(line: bytes, sep: str) -> bytes:
    line = line.replace(b' "%s" ' % sep.encode(), b' "/" ')
    if sep != "/":
        line = re.sub(rb"N(\d)\.C", rb"N\1/C", line)
    return re.sub(rb"UIDVALIDITY \d+", b"UIDVALIDITY v", line)


def run(connect: Callable[[], RawClient], sep: str) -> dict[str, list[bytes]]:
    a, b = connect(), connect()
    a.ok("SELECT INBOX")
    a.ok(NOTIFY)
    out: dict[str, list[bytes]] = {}
    for name, commands, want in SCRIPT:
        for command in commands:
            b.ok(command.replace("{sep}", sep))
        out[name] = sorted(normalize(x, sep) for x in collect(a, want))
    a.ok("NOTIFY NONE")
    b.ok("CREATE After")
    out["after NOTIFY NONE"] = collect(a, 0, 0.7)
    a.close()
    b.close()
    return out


def test_notify_scenario_same_as_dovecot(imap_server: ImapServer, dovecot: DovecotRef) -> None:
    def ours_connect() -> RawClient:
        client = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
        client.ok(f'LOGIN "{imap_server.user}" "{PASSWORD}"')
        return client

    caps = dovecot.connect().ok("CAPABILITY")[0]
    assert b" NOTIFY" in caps
    ours = run(ours_connect, "/")
    theirs = run(dovecot.connect, ".")
    for name in [s[0] for s in SCRIPT] + ["after NOTIFY NONE"]:
        if name in TIMING:
            continue
        assert ours[name] == theirs[name], f"{name}\nours:    {ours[name]}\ndovecot: {theirs[name]}"
    assert ours["flag in selected"] == [b"* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)\r\n"]
    assert ours["deleted in selected"] == [
        b"* 1 FETCH (FLAGS (\\Deleted \\Flagged \\Recent) UID 1)\r\n"
    ]
    assert ours["expunge in selected"] == [b"* 1 EXPUNGE\r\n"]
    sent = {fetch_flags(x) for name in TIMING for x in ours[name]}
    for name in TIMING:
        for line in theirs[name]:
            if line != b"* 0 RECENT\r\n":
                assert fetch_flags(line) in sent, (name, line, ours[name])
