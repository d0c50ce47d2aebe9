"""The index is a cache: lost, corrupt or stale, it is rebuilt from the Maildir."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.store import scan
from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.index import INDEX_FILE
from appliance.store.maildir import MaildirStore
from tests.unit.store.conftest import USER, StoreFactory

Msg = Callable[..., Path]


def _fill(store: MaildirStore, message: Msg, n: int = 5) -> None:
    for i in range(n):
        store.deliver([DeliveryTarget(USER)], message(f"m{i}"))
    store.store_flags(USER, INBOX, [2], "add", ["\\Seen", "$Label"])
    store.store_flags(USER, INBOX, [3], "add", ["\\Flagged"])
    store.copy(USER, INBOX, [1, 2], "Archive")


def _state(store: MaildirStore, mailbox: str) -> tuple[int, list[tuple[int, frozenset[str], int]]]:
    snap = store.snapshot(USER, mailbox)
    return snap.status.uidvalidity, [(m.uid, m.flags, m.size) for m in snap.messages]


def _age_dirs(store: MaildirStore) -> None:
    """Make directory mtimes old so the freshness shortcut applies."""
    old = time.time() - 60
    for d in store.user_dir(USER).rglob("*"):
        if d.is_dir() and d.name in ("cur", "new"):
            os.utime(d, (old, old))


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate"])
def test_index_rebuilt_with_same_uids(make_store: StoreFactory, message: Msg, damage: str) -> None:
    store = make_store()
    store.ensure_user(USER)
    _fill(store, message)
    store.store_flags(USER, INBOX, [5], "add", ["\\Deleted"])
    store.expunge(USER, INBOX)  # the highest UID is gone: UIDNEXT must not fall back
    before_inbox, before_archive = _state(store, INBOX), _state(store, "Archive")
    modseq_before = store.status(USER, INBOX).highest_modseq
    db = store.user_dir(USER) / INDEX_FILE
    store.user_index(USER).close()
    if damage == "delete":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    elif damage == "garbage":
        db.write_bytes(os.urandom(8192))
    else:
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    fresh = make_store()
    assert _state(fresh, INBOX) == before_inbox
    assert _state(fresh, "Archive") == before_archive
    st = fresh.status(USER, INBOX)
    assert st.uidnext == 6
    assert st.highest_modseq > modseq_before
    fresh.deliver([DeliveryTarget(USER)], message())
    assert fresh.snapshot(USER, INBOX).messages[-1].uid == 6
    # Nothing is \Recent after a rebuild; a later delivery is.
    assert fresh.snapshot(USER, INBOX, claim_recent=True).recent == {6}


def test_index_deleted_while_running(store: MaildirStore, message: Msg) -> None:
    _fill(store, message)
    before = _state(store, INBOX)
    db = store.user_dir(USER) / INDEX_FILE
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    assert _state(store, INBOX) == before


def test_changes_after_rebuild_reports_missing_uids(make_store: StoreFactory, message: Msg) -> None:
    store = make_store()
    store.ensure_user(USER)
    for _ in range(4):
        store.deliver([DeliveryTarget(USER)], message())
    old_modseq = store.status(USER, INBOX).highest_modseq
    store.delete_messages(USER, INBOX, [2])
    store.user_index(USER).close()
    (store.user_dir(USER) / INDEX_FILE).unlink()
    fresh = make_store()
    ch = fresh.changes(USER, INBOX, old_modseq)
    assert ch.expunged == (2,)
    assert [m.uid for m in ch.changed] == [1, 3, 4]


def test_external_drop_into_new(store: MaildirStore, message: Msg) -> None:
    store.deliver([DeliveryTarget(USER)], message())
    store.snapshot(USER, INBOX, claim_recent=True)
    userdir = store.user_dir(USER)
    (userdir / "tmp" / "1700000000.foreign.host").write_bytes(
        b"Subject: x\r\n\r\nfrom procmail\r\n"
    )
    os.rename(
        userdir / "tmp" / "1700000000.foreign.host", userdir / "new" / "1700000000.foreign.host"
    )
    st = store.status(USER, INBOX)
    assert st.messages == 2 and st.uidnext == 3
    snap = store.snapshot(USER, INBOX, claim_recent=True)
    assert snap.recent == {2}
    assert store.open_message(USER, INBOX, 2).read() == b"Subject: x\r\n\r\nfrom procmail\r\n"
    # The file now carries its UID (so a rebuild keeps it) and, once claimed by a
    # session, has moved to cur/ like a Maildir reader moves it.
    path = store.message_path(USER, INBOX, 2)
    assert path.parent.name == "cur"
    assert path.name == "1700000000.foreign.host,S=29,U=2:2,"
    assert list((store.user_dir(USER) / "new").iterdir()) == []


def test_external_drop_with_flags_into_cur(store: MaildirStore) -> None:
    cur = store.user_dir(USER) / "cur"
    (cur / "1700000001.other.host:2,FS").write_bytes(b"Subject: y\r\n\r\nz\r\n")
    ch = store.changes(USER, INBOX, 0)
    assert [(m.uid, m.flags) for m in ch.changed] == [(1, frozenset({"\\Flagged", "\\Seen"}))]


def test_external_flag_rename_and_delete(store: MaildirStore, message: Msg) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    store.store_flags(USER, INBOX, [1, 2], "add", ["\\Seen"])
    _age_dirs(store)
    store.snapshot(USER, INBOX)
    modseq = store.status(USER, INBOX).highest_modseq
    # mutt marks 1 as replied, another program deletes 2.
    p1 = store.message_path(USER, INBOX, 1)
    os.rename(p1, p1.with_name(p1.name.replace(":2,S", ":2,RS")))
    store.message_path(USER, INBOX, 2).unlink()
    ch = store.changes(USER, INBOX, modseq)
    assert [(m.uid, m.flags) for m in ch.changed] == [(1, frozenset({"\\Seen", "\\Answered"}))]
    assert ch.expunged == (2,)


def test_crash_leftover_adopted_with_its_uid(store: MaildirStore, message: Msg) -> None:
    store.deliver([DeliveryTarget(USER)], message())
    # A delivery that linked its file but died before the index commit.
    leftover = store.user_dir(USER) / "new" / "1700000002.M1P1Q1Rab.host,S=9,U=2"
    leftover.write_bytes(b"\r\nabcdefg")
    snap = store.snapshot(USER, INBOX)
    assert [m.uid for m in snap.messages] == [1, 2]
    assert store.message_path(USER, INBOX, 2) == leftover


def test_foreign_uid_below_uidnext_gets_fresh_uid(store: MaildirStore, message: Msg) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    store.delete_messages(USER, INBOX, [2])
    # A file copied from elsewhere claiming an old UID must not resurrect UID 2.
    (store.user_dir(USER) / "new" / "1700000003.x.host,S=4,U=2").write_bytes(b"\r\nab")
    assert [m.uid for m in store.snapshot(USER, INBOX).messages] == [1, 3, 4]


def test_fresh_index_does_not_list_directories(
    store: MaildirStore, message: Msg, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    _age_dirs(store)
    store.snapshot(USER, INBOX)  # records the (old) mtimes

    def no_listdir(*args: object) -> list[str]:
        raise AssertionError("listdir on a fresh index")

    monkeypatch.setattr(os, "listdir", no_listdir)
    assert len(store.snapshot(USER, INBOX).messages) == 3
    assert store.status(USER, INBOX).messages == 3


def test_stale_tmp_files_cleaned(store: MaildirStore) -> None:
    tmp = store.user_dir(USER) / "tmp"
    old, young = tmp / "old-file", tmp / "young-file"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    past = time.time() - 37 * 3600
    os.utime(old, (past, past))
    assert store.cleanup(USER) == 1
    assert not old.exists() and young.exists()


def test_own_changes_do_not_force_a_listing(
    store: MaildirStore, message: Msg, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    _age_dirs(store)
    store.snapshot(USER, INBOX, claim_recent=True)  # listed once, files moved to cur/
    _age_dirs(store)
    store.snapshot(USER, INBOX)

    def no_listdir(*args: object) -> list[str]:
        raise AssertionError("listdir after our own change")

    monkeypatch.setattr(os, "listdir", no_listdir)
    store.store_flags(USER, INBOX, [1], "add", ["\\Seen"])
    store.deliver([DeliveryTarget(USER)], message())
    store.store_flags(USER, INBOX, [2], "add", ["\\Deleted"])
    store.expunge(USER, INBOX)
    snap = store.snapshot(USER, INBOX)
    assert [(m.uid, m.flags) for m in snap.messages] == [
        (1, frozenset({"\\Seen"})),
        (3, frozenset()),
        (4, frozenset()),
    ]


def test_foreign_change_in_the_same_tick_found_on_verification(
    store: MaildirStore, message: Msg
) -> None:
    store.deliver([DeliveryTarget(USER)], message())
    _age_dirs(store)
    store.snapshot(USER, INBOX)
    store.store_flags(USER, INBOX, [1], "add", ["\\Seen"])  # our change: trusted mtimes
    cur = store.user_dir(USER) / "cur"
    st = os.stat(cur)
    (cur / "1700000009.sametick.host:2,").write_bytes(b"Subject: t\r\n\r\nx\r\n")
    os.utime(cur, ns=(st.st_atime_ns, st.st_mtime_ns))  # as if written in the same tick
    assert store.status(USER, INBOX).messages == 1  # not seen yet: mtime unchanged
    time.sleep(scan.MTIME_SLACK + 0.2)
    assert store.status(USER, INBOX).messages == 2  # the delayed verification lists it
