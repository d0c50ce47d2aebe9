"""No UID is handed out twice, even across a crash (issue 17 item 3).

A UID is reserved in the index (UIDNEXT committed) before a file carrying it appears,
so a crash between link and index commit wastes the UID instead of giving it to the
next message; a rebuild facing two files with one ``U=`` keeps it for the earlier
arrival and gives the later a fresh UID, renumbering nobody (RFC 9051 2.3.1.1).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from appliance.store import index
from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore

USER = "alice@example.org"
_UID = re.compile(r",U=(\d+)")
_MSGID = re.compile(rb"^Message-ID: <([^>]+)>\r$", re.M)


def _store(root: Path) -> MaildirStore:
    return MaildirStore(root, lambda e: None, lambda p: b"s")


def _body(msgid: str) -> bytes:
    return f"Subject: {msgid}\r\nMessage-ID: <{msgid}>\r\n\r\nbody\r\n".encode()


def _files(store: MaildirStore) -> list[Path]:
    return [p for sub in ("new", "cur") for p in (store.user_dir(USER) / sub).iterdir()]


def _drop_index(store: MaildirStore) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{store.user_dir(USER) / index.INDEX_FILE}{suffix}")


def _by_uid(store: MaildirStore) -> dict[int, str]:
    found = {}
    for m in store.snapshot(USER, INBOX).messages:
        match = _MSGID.search(store.open_message(USER, INBOX, m.uid).read())
        assert match
        found[m.uid] = match.group(1).decode()
    return found


def _deliver_killed_before_commit(root: Path, msgid: str) -> None:
    """A child process links a delivery and is SIGKILLed before its index rows."""
    pid = os.fork()
    if pid == 0:
        try:
            real = index.insert_message

            def die(*args: object, **kwargs: object) -> None:
                os.kill(os.getpid(), signal.SIGKILL)

            index.insert_message = die
            src = root.parent / "killed.eml"
            src.write_bytes(_body(msgid))
            _store(root).deliver([DeliveryTarget(USER)], src)
            index.insert_message = real
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.parametrize("rescan_first", [False, True])
def test_crash_between_link_and_commit_never_reuses_the_uid(
    tmp_path: Path, rescan_first: bool
) -> None:
    root = tmp_path / "mail"
    store = _store(root)
    src = tmp_path / "m.eml"
    src.write_bytes(_body("first@x"))
    [first] = store.deliver([DeliveryTarget(USER)], src)
    assert first.uid == 1
    _deliver_killed_before_commit(root, "lost@x")
    fresh = _store(root)
    if rescan_first:
        fresh.snapshot(USER, INBOX)
    # RFC 9051 2.3.1.1: UIDNEXT changes only when messages are added; the wasted
    # reservation is not shown.
    assert fresh.status(USER, INBOX).uidnext == 2
    src.write_bytes(_body("next@x"))
    [after] = fresh.deliver([DeliveryTarget(USER)], src)
    assert after.uid > 1
    uids = Counter(int(m.group(1)) for p in _files(fresh) if (m := _UID.search(p.name)))
    assert [u for u, n in uids.items() if n > 1] == [], f"two files share a UID: {uids}"
    known = _by_uid(_store(root))
    assert known[1] == "first@x" and known[after.uid] == "next@x"
    # A rebuilt index keeps every UID a client has seen.
    _drop_index(fresh)
    rebuilt = _by_uid(_store(root))
    assert rebuilt[1] == "first@x" and rebuilt[after.uid] == "next@x"


def test_two_files_with_one_uid_at_rebuild(tmp_path: Path) -> None:
    """The later arrival (by its Maildir unique name's time, not its spelling) gets a
    fresh UID; the earlier keeps its UID; nobody else is renumbered."""
    root = tmp_path / "mail"
    store = _store(root)
    src = tmp_path / "m.eml"
    for n in range(5):
        src.write_bytes(_body(f"dup{n}@x"))
        store.deliver([DeliveryTarget(USER)], src)
    cur = store.user_dir(USER) / "new"
    third = next(p for p in cur.iterdir() if p.name.endswith(",U=3"))
    size = third.stat().st_size
    # Same second; usec 99999 (earlier) vs 100000 (later, but "M1" sorts before "M9").
    third.rename(cur / f"1700000000.M99999P7Q1.host,S={size},U=3")
    (cur / "1700000000.M100000P7Q2.host,S=20,U=3").write_bytes(_body("twin@x"))
    _drop_index(store)
    assert _by_uid(_store(root)) == {
        1: "dup0@x",
        2: "dup1@x",
        3: "dup2@x",
        4: "dup3@x",
        5: "dup4@x",
        6: "twin@x",
    }
