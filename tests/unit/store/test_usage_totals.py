"""Usage from the index totals: exact after every kind of change, cheap to read, and the
quota decided inside the store's transaction (nothing stored when it does not fit)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.store import index
from appliance.store.base import INBOX, DeliveryTarget, NewMessage, QuotaExceeded
from appliance.store.maildir import MaildirStore
from tests.unit.store.conftest import OTHER, USER

Msg = Callable[..., Path]


def files_on_disk(store: MaildirStore, user: str = USER) -> tuple[int, int]:
    """(message files, their bytes) in cur/ and new/ of every folder of the user."""
    count = size = 0
    for info in store.list_mailboxes(user):
        if not info.selectable:
            continue
        folder = store.folder(user, info.name)
        for sub in ("cur", "new"):
            for entry in os.scandir(folder / sub):
                count += 1
                size += entry.stat().st_size
    return count, size


def tmp_files(store: MaildirStore, user: str = USER) -> int:
    return sum(
        len(os.listdir(store.folder(user, i.name) / "tmp"))
        for i in store.list_mailboxes(user)
        if i.selectable
    )


def assert_exact(store: MaildirStore, user: str = USER) -> None:
    """usage() equals the files on disk and the per-message rows of the index."""
    count, size = files_on_disk(store, user)
    usage = store.usage(user)
    assert (usage.messages, usage.bytes) == (count, size)
    conn = store.user_index(user).conn()
    row = conn.execute(
        "SELECT count(*), coalesce(sum(size), 0) FROM messages"
        " WHERE mailbox_id IN (SELECT id FROM mailboxes)"
    ).fetchone()
    assert (row[0], row[1]) == (count, size)


def test_usage_follows_every_change(store: MaildirStore, message: Msg) -> None:
    assert store.usage(USER).messages == 0
    a, b = message("a" * 1000), message("b" * 3000)
    store.deliver([DeliveryTarget(USER), DeliveryTarget(USER, "Archive")], a)
    store.append(USER, INBOX, b, ["\\Seen"])
    assert_exact(store)
    assert store.usage(USER).messages == 3
    uids = [m.uid for m in store.snapshot(USER, INBOX).messages]
    store.copy(USER, INBOX, uids, "Sent")
    assert_exact(store)
    before = store.usage(USER)
    store.move(USER, "Sent", [m.uid for m in store.snapshot(USER, "Sent").messages], "Trash")
    assert store.usage(USER) == before  # a move changes nothing
    store.store_flags(USER, INBOX, uids[:1], "add", ["\\Deleted"])
    store.expunge(USER, INBOX)
    assert_exact(store)
    store.delete_messages(
        USER, "Archive", [m.uid for m in store.snapshot(USER, "Archive").messages]
    )
    assert_exact(store)
    store.create_mailbox(USER, "Projects")
    store.copy(USER, "Trash", [m.uid for m in store.snapshot(USER, "Trash").messages], "Projects")
    store.rename_mailbox(USER, "Projects", "Work/Projects")
    assert_exact(store)
    store.delete_mailbox(USER, "Work/Projects")
    assert_exact(store)
    store.rename_mailbox(USER, INBOX, "Old")  # RENAME INBOX moves its messages
    assert_exact(store)
    assert store.usage(OTHER).messages == 0


def test_foreign_files_are_counted_and_uncounted(store: MaildirStore, message: Msg) -> None:
    store.deliver([DeliveryTarget(USER)], message("x" * 500))
    store.usage(USER)
    cur = store.folder(USER, "Junk") / "cur"
    dropped = cur / "1700000000.M1P1.otherhost:2,S"
    dropped.write_bytes(b"Subject: dropped by procmail\n\n" + b"z" * 4000 + b"\n")
    assert_exact(store)  # another program's file counts at once
    assert store.usage(USER).messages == 2
    os.unlink(next(cur.iterdir()))
    assert_exact(store)
    assert store.usage(USER).messages == 1
    # a folder another program created, and one it removed
    other = store.user_dir(USER) / ".Imported"
    for sub in ("cur", "new", "tmp"):
        (other / sub).mkdir(parents=True)
    (other / "new" / "1700000001.M2P2.otherhost").write_bytes(b"Subject: hi\n\nbody\n")
    assert_exact(store)
    assert store.usage(USER).messages == 2
    os.rename(other, store.user_dir(USER) / "gone-elsewhere")
    assert_exact(store)
    assert store.usage(USER).messages == 1


def test_totals_survive_an_index_rebuild(
    make_store: Callable[[], MaildirStore], message: Msg
) -> None:
    store = make_store()
    store.ensure_user(USER)
    for n in range(5):
        store.deliver([DeliveryTarget(USER, "Archive" if n % 2 else INBOX)], message("y" * n * 300))
    before = store.usage(USER)
    idx = store.user_dir(USER) / index.INDEX_FILE
    for suffix in ("", "-wal", "-shm"):
        Path(f"{idx}{suffix}").unlink(missing_ok=True)
    fresh = make_store()
    assert fresh.usage(USER) == before
    assert_exact(fresh)


def test_an_older_index_gets_its_totals(
    make_store: Callable[[], MaildirStore], message: Msg
) -> None:
    store = make_store()
    store.ensure_user(USER)
    for _ in range(4):
        store.deliver([DeliveryTarget(USER)], message("w" * 700))
    before = store.usage(USER)
    store.user_index(USER).close()
    # The index as the previous release wrote it: no totals, no triggers.
    conn = sqlite3.connect(store.user_dir(USER) / index.INDEX_FILE)
    for op in ("insert", "delete", "update"):
        conn.execute(f"DROP TRIGGER usage_{op}")
    conn.execute("ALTER TABLE mailboxes DROP COLUMN total_bytes")
    conn.execute("ALTER TABLE mailboxes DROP COLUMN total_messages")
    conn.commit()
    conn.close()
    reopened = make_store()
    assert reopened.usage(USER) == before
    reopened.deliver([DeliveryTarget(USER)], message("v"))
    assert_exact(reopened)


def test_append_over_quota_stores_nothing(store: MaildirStore, message: Msg) -> None:
    small, big = message("s" * 1000), message("b" * 200_000)
    limit = 100 * 1024
    store.append(USER, INBOX, small, quota_bytes=limit)  # fits
    with pytest.raises(QuotaExceeded) as info:
        store.append(USER, INBOX, big, quota_bytes=limit)
    assert info.value.user == USER
    assert store.usage(USER).messages == 1
    assert files_on_disk(store)[0] == 1
    assert tmp_files(store) == 0
    assert store.status(USER, INBOX).uidnext == 2  # no UID was used up


def test_append_many_is_all_or_none(store: MaildirStore, message: Msg) -> None:
    parts = [NewMessage(message("m" * 40_000)) for _ in range(3)]
    with pytest.raises(QuotaExceeded):
        store.append_many(USER, INBOX, parts, quota_bytes=100 * 1024)
    assert store.usage(USER).messages == 0
    assert tmp_files(store) == 0
    got = store.append_many(USER, INBOX, parts[:2], quota_bytes=100 * 1024)
    assert [a.uid for a in got] == [1, 2]
    assert_exact(store)


def test_copy_over_quota_copies_nothing_and_move_is_never_refused(
    store: MaildirStore, message: Msg
) -> None:
    for _ in range(3):
        store.append(USER, INBOX, message("c" * 30_000))
    uids = [m.uid for m in store.snapshot(USER, INBOX).messages]
    used = store.usage(USER).bytes
    with pytest.raises(QuotaExceeded):
        store.copy(USER, INBOX, uids, INBOX, quota_bytes=used + 1000)
    assert store.usage(USER).bytes == used
    assert files_on_disk(store)[0] == 3
    copied = store.copy(USER, INBOX, uids[:1], "Archive", quota_bytes=used * 2)
    assert len(copied.pairs) == 1
    # Over quota now (the limit was lowered): moving still works, it frees nothing and
    # takes nothing.
    before = store.usage(USER)
    store.move(USER, INBOX, uids, "Trash")
    assert store.usage(USER) == before
    assert_exact(store)


def test_racing_deliveries_cannot_both_take_the_last_bytes(
    store: MaildirStore, message: Msg
) -> None:
    src = message("r" * 30_000)
    size = src.stat().st_size
    limit = size * 3 + size // 2  # room for three, not four
    barrier = threading.Barrier(8)
    results: list[str] = []

    def one() -> None:
        barrier.wait()
        try:
            store.deliver([DeliveryTarget(USER, quota_bytes=limit)], src)
            results.append("ok")
        except QuotaExceeded:
            results.append("over")

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["ok"] * 3 + ["over"] * 5
    assert store.usage(USER).bytes == 3 * size <= limit
    assert_exact(store)


def test_delivery_to_two_users_is_refused_whole(store: MaildirStore, message: Msg) -> None:
    store.ensure_user(OTHER)
    src = message("d" * 5000)
    with pytest.raises(QuotaExceeded) as info:
        store.deliver([DeliveryTarget(USER), DeliveryTarget(OTHER, quota_bytes=1000)], src)
    assert info.value.user == OTHER
    assert store.usage(USER).messages == 0 and store.usage(OTHER).messages == 0
    assert files_on_disk(store)[0] == 0 and files_on_disk(store, OTHER)[0] == 0
