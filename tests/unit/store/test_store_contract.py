"""The MailStore contract (appliance/store/base.py), run against every implementation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.store.base import (
    INBOX,
    DeliveryTarget,
    InvalidMailboxName,
    MailboxExists,
    MailboxNotFound,
    MessageNotFound,
    QuotaExceeded,
    StoreError,
)
from appliance.store.maildir import MaildirStore
from tests.unit.store.conftest import OTHER, USER, Recorder, StoreFactory

Msg = Callable[..., Path]


def test_ensure_user_creates_inbox_and_special_use(store: MaildirStore) -> None:
    boxes = {b.name: b for b in store.list_mailboxes(USER)}
    assert next(iter(boxes)) == INBOX
    assert {n: b.special_use for n, b in boxes.items() if n != INBOX} == {
        "Archive": "\\Archive",
        "Drafts": "\\Drafts",
        "Junk": "\\Junk",
        "Sent": "\\Sent",
        "Trash": "\\Trash",
    }
    store.ensure_user(USER)  # idempotent
    assert len(store.list_mailboxes(USER)) == 6
    userdir = store.root / "example.org" / "alice"
    for sub in ("cur", "new", "tmp", ".Sent/cur", ".Trash/new", ".Junk/tmp"):
        assert (userdir / sub).is_dir()
    assert (userdir / ".Sent" / "maildirfolder").exists()


def test_deliver_stores_prefix_and_bytes(store: MaildirStore, message: Msg) -> None:
    src = message("body text")
    prefix = b"Return-Path: <s@example.net>\r\nDelivered-To: alice@example.org\r\n"
    [appended] = store.deliver([DeliveryTarget(USER, header_prefix=prefix)], src)
    assert appended.uid == 1
    with store.open_message(USER, INBOX, 1) as fh:
        data = fh.read()
    assert data == prefix + src.read_bytes()
    snap = store.snapshot(USER, INBOX)
    [info] = snap.messages
    assert info.size == len(data)
    assert info.flags == frozenset()
    assert snap.status.uidvalidity == appended.uidvalidity
    assert snap.status.uidnext == 2
    assert store.message_path(USER, INBOX, 1).read_bytes() == data
    assert "/" not in info.key and ":" not in info.key


def test_deliver_many_targets_and_uids_ascend(store: MaildirStore, message: Msg) -> None:
    targets = [
        DeliveryTarget(USER),
        DeliveryTarget(USER, "Junk", frozenset({"$Junk"})),
        DeliveryTarget(OTHER),
    ]
    first = store.deliver(targets, message())
    second = store.deliver(targets, message())
    assert [a.uid for a in first] == [1, 1, 1]
    assert [a.uid for a in second] == [2, 2, 2]
    junk = store.snapshot(USER, "Junk")
    assert [m.flags for m in junk.messages] == [frozenset({"$Junk"})] * 2
    assert len(store.snapshot(OTHER, INBOX).messages) == 2


def test_deliver_all_or_none(store: MaildirStore, message: Msg) -> None:
    targets = [DeliveryTarget(USER), DeliveryTarget(OTHER), DeliveryTarget(USER, "Nope")]
    with pytest.raises(MailboxNotFound):
        store.deliver(targets, message())
    assert store.snapshot(USER, INBOX).messages == ()
    assert store.snapshot(OTHER, INBOX).messages == ()
    for user_dir in (store.root / "example.org" / "alice", store.root / "example.org" / "bob"):
        for sub in ("new", "cur", "tmp"):
            assert list((user_dir / sub).iterdir()) == []


def test_append_flags_and_internal_date(store: MaildirStore, message: Msg) -> None:
    a = store.append(USER, "Sent", message(), ["\\Seen", "\\draft", "$Label1"], 1_600_000_000.0)
    [info] = store.snapshot(USER, "Sent").messages
    assert info.uid == a.uid
    assert info.flags == frozenset({"\\Seen", "\\Draft", "$Label1"})
    assert info.internal_date == 1_600_000_000.0
    path = store.message_path(USER, "Sent", a.uid)
    assert path.parent.name == "cur" and path.name.endswith(":2,DSa")
    assert (path.parent.parent / "dovecot-keywords").read_text() == "0 $Label1\n"
    with pytest.raises(MailboxNotFound):
        store.append(USER, "Missing", message())
    with pytest.raises(StoreError):
        store.append(USER, INBOX, message(), ["\\Recent"])


def test_recent_claimed_exactly_once(make_store: StoreFactory, message: Msg) -> None:
    s1, s2 = make_store(), make_store()  # two instances = two daemons/processes
    s1.deliver([DeliveryTarget(USER)], message())
    s1.deliver([DeliveryTarget(USER)], message())
    # Not claiming (EXAMINE, RFC 3501 6.3.2): the unclaimed ones, left for the next claimer.
    assert s1.snapshot(USER, INBOX).recent == {1, 2}
    assert s1.status(USER, INBOX).recent == 2  # RFC 3501 6.3.10: STATUS RECENT
    assert s2.snapshot(USER, INBOX, claim_recent=True).recent == {1, 2}
    assert s1.snapshot(USER, INBOX, claim_recent=True).recent == frozenset()
    assert s1.snapshot(USER, INBOX).recent == frozenset()
    assert s1.status(USER, INBOX).recent == 0
    s1.deliver([DeliveryTarget(USER)], message())
    assert s2.claim_recent(USER, INBOX, [3], peek=True) == {3}  # a read-only look
    assert s1.status(USER, INBOX).recent == 1
    assert s1.snapshot(USER, INBOX, claim_recent=True).recent == {3}
    assert s2.snapshot(USER, INBOX, claim_recent=True).recent == frozenset()


def test_recent_claims_race(store: MaildirStore, message: Msg) -> None:
    for _ in range(5):
        store.deliver([DeliveryTarget(USER)], message())
    seen: list[frozenset[int]] = []
    lock = threading.Lock()

    def claim() -> None:
        r = store.snapshot(USER, INBOX, claim_recent=True).recent
        with lock:
            seen.append(r)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(len(r) for r in seen) == [0] * 7 + [5]


def test_store_flags_modes_and_modseq(store: MaildirStore, message: Msg) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    base = store.status(USER, INBOX).highest_modseq
    r = store.store_flags(USER, INBOX, [1, 2], "add", ["\\Seen", "$Work"])
    assert [m.uid for m in r.updated] == [1, 2]
    assert {m.modseq for m in r.updated} == {base + 1}
    assert store.status(USER, INBOX).highest_modseq == base + 1
    assert store.status(USER, INBOX).unseen == 1
    r = store.store_flags(USER, INBOX, [1, 2], "add", ["\\Seen"])  # no change
    assert r.updated == ()
    assert store.status(USER, INBOX).highest_modseq == base + 1
    r = store.store_flags(USER, INBOX, [2], "remove", ["$Work"])
    assert r.updated[0].flags == frozenset({"\\Seen"})
    r = store.store_flags(USER, INBOX, [1, 2, 3], "set", ["\\Flagged"])
    assert [m.flags for m in r.updated] == [frozenset({"\\Flagged"})] * 3
    flags = {m.uid: m.flags for m in store.snapshot(USER, INBOX).messages}
    assert flags == {1: {"\\Flagged"}, 2: {"\\Flagged"}, 3: {"\\Flagged"}}
    # Flags live in the file names (standard letters).
    assert store.message_path(USER, INBOX, 1).name.endswith(":2,F")


def test_unchanged_since(store: MaildirStore, message: Msg) -> None:
    store.deliver([DeliveryTarget(USER)], message())
    store.deliver([DeliveryTarget(USER)], message())
    r = store.store_flags(USER, INBOX, [2], "add", ["\\Seen"])
    m2 = r.updated[0].modseq
    m1 = next(m.modseq for m in store.snapshot(USER, INBOX).messages if m.uid == 1)
    assert m1 < m2
    r = store.store_flags(USER, INBOX, [1, 2], "add", ["\\Answered"], unchanged_since=m1)
    assert r.failed_modseq == (2,)
    assert [m.uid for m in r.updated] == [1]


def test_expunge_and_changes(store: MaildirStore, message: Msg) -> None:
    for _ in range(4):
        store.deliver([DeliveryTarget(USER)], message())
    start = store.status(USER, INBOX).highest_modseq
    store.store_flags(USER, INBOX, [1, 2, 3], "add", ["\\Deleted"])
    assert store.status(USER, INBOX).deleted == 3
    assert store.expunge(USER, INBOX, [2, 3, 4]) == [2, 3]
    assert store.expunge(USER, INBOX) == [1]
    snap = store.snapshot(USER, INBOX)
    assert [m.uid for m in snap.messages] == [4]
    ch = store.changes(USER, INBOX, start)
    assert ch.expunged == (1, 2, 3)
    assert ch.changed == ()
    assert ch.highest_modseq == snap.status.highest_modseq
    assert store.changes(USER, INBOX, ch.highest_modseq).expunged == ()
    assert store.changes(USER, INBOX, 0).changed[0].uid == 4
    with pytest.raises(MessageNotFound):
        store.open_message(USER, INBOX, 1)
    store.deliver([DeliveryTarget(USER)], message())
    assert store.snapshot(USER, INBOX).messages[-1].uid == 5  # never reused


def test_delete_messages_ignores_flags(store: MaildirStore, message: Msg) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    assert store.delete_messages(USER, INBOX, [1, 3, 99]) == [1, 3]
    assert [m.uid for m in store.snapshot(USER, INBOX).messages] == [2]


def test_copy_and_move(store: MaildirStore, message: Msg) -> None:
    srcs = [message(f"m{i}") for i in range(3)]
    for s in srcs:
        store.deliver([DeliveryTarget(USER)], s)
    store.store_flags(USER, INBOX, [2], "add", ["\\Seen", "$Important"])
    c = store.copy(USER, INBOX, [1, 2], "Archive")
    assert c.pairs == ((1, 1), (2, 2))
    assert c.uidvalidity == store.status(USER, "Archive").uidvalidity
    archive = store.snapshot(USER, "Archive").messages
    assert archive[1].flags == frozenset({"\\Seen", "$Important"})
    assert store.open_message(USER, "Archive", 2).read() == srcs[1].read_bytes()
    assert store.status(USER, INBOX).messages == 3
    m = store.move(USER, INBOX, [2, 3], "Archive")
    assert m.pairs == ((2, 3), (3, 4))
    assert [x.uid for x in store.snapshot(USER, INBOX).messages] == [1]
    assert store.open_message(USER, "Archive", 4).read() == srcs[2].read_bytes()
    assert store.changes(USER, INBOX, 0).expunged == (2, 3)
    with pytest.raises(MailboxNotFound):
        store.copy(USER, INBOX, [1], "Nope")


def test_mailbox_management(store: MaildirStore, message: Msg) -> None:
    store.create_mailbox(USER, "Projects/2024/Q1")
    names = {b.name: b for b in store.list_mailboxes(USER)}
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= set(names)
    assert names["Projects"].has_children and not names["Projects/2024/Q1"].has_children
    with pytest.raises(MailboxExists):
        store.create_mailbox(USER, "Projects")
    with pytest.raises(MailboxExists):
        store.create_mailbox(USER, "inbox")
    store.deliver([DeliveryTarget(USER, "Projects/2024")], message())
    store.rename_mailbox(USER, "Projects", "Work")
    renamed = {b.name for b in store.list_mailboxes(USER)}
    assert {"Work", "Work/2024", "Work/2024/Q1"} <= renamed
    assert not {n for n in renamed if n.startswith("Projects")}
    assert store.status(USER, "Work/2024").messages == 1
    store.delete_mailbox(USER, "Work")
    names2 = {b.name: b for b in store.list_mailboxes(USER)}
    assert not names2["Work"].selectable  # a \Noselect parent remains for its children
    with pytest.raises(MailboxNotFound):
        store.status(USER, "Work")
    with pytest.raises(InvalidMailboxName):
        store.delete_mailbox(USER, INBOX)
    with pytest.raises(MailboxNotFound):
        store.delete_mailbox(USER, "Nope")
    with pytest.raises(InvalidMailboxName):
        store.create_mailbox(USER, "a//b")


def test_recreated_mailbox_gets_new_uidvalidity(store: MaildirStore, message: Msg) -> None:
    store.create_mailbox(USER, "X")
    v1 = store.status(USER, "X").uidvalidity
    store.delete_mailbox(USER, "X")
    store.create_mailbox(USER, "X")
    assert store.status(USER, "X").uidvalidity > v1


@pytest.mark.parametrize(
    "name",
    ["a.b", "dots.in.name/and~tilde", "Ünïcødé/日本語", "amp & co", "x/.hidden", "INBOX/Sub"],
)
def test_names_round_trip(store: MaildirStore, message: Msg, name: str) -> None:
    store.create_mailbox(USER, name)
    assert name in {b.name for b in store.list_mailboxes(USER)}
    store.deliver([DeliveryTarget(USER, name)], message())
    assert store.status(USER, name).messages == 1
    folder = store.folder(USER, name)
    assert folder.parent == store.user_dir(USER)  # Maildir++: one level of dot dirs
    assert folder.name.count(".") == name.count("/") + 1


def test_rename_inbox_moves_messages(store: MaildirStore, message: Msg) -> None:
    store.deliver([DeliveryTarget(USER)], message())
    store.rename_mailbox(USER, INBOX, "Old")
    assert store.status(USER, INBOX).messages == 0
    assert store.status(USER, "Old").messages == 1


def test_subscriptions(store: MaildirStore) -> None:
    store.subscribe(USER, "Sent", True)
    store.subscribe(USER, "Gone", True)  # allowed for names that do not exist
    subs = {b.name for b in store.list_mailboxes(USER) if b.subscribed}
    assert subs == {"Sent"}
    store.subscribe(USER, "Sent", False)
    assert not any(b.subscribed for b in store.list_mailboxes(USER))


def test_quota(store: MaildirStore, message: Msg) -> None:
    src = message("x" * 1000)
    size = src.stat().st_size
    store.deliver([DeliveryTarget(USER, quota_bytes=size * 2)], src)
    store.deliver([DeliveryTarget(USER, quota_bytes=size * 2)], src)
    assert store.usage(USER).bytes == 2 * size
    assert store.usage(USER).messages == 2
    with pytest.raises(QuotaExceeded):
        store.deliver([DeliveryTarget(USER, quota_bytes=size * 2), DeliveryTarget(OTHER)], src)
    assert store.usage(USER).messages == 2
    assert store.usage(OTHER).messages == 0  # all or none
    store.deliver([DeliveryTarget(USER)], src)  # 0 = unlimited
    assert store.usage(USER).messages == 3


def test_notifications_after_commit(store: MaildirStore, recorder: Recorder, message: Msg) -> None:
    recorder.events.clear()
    store.deliver([DeliveryTarget(USER), DeliveryTarget(OTHER, "Junk")], message())
    assert [(e.user, e.mailbox) for e in recorder.events] == [(USER, INBOX), (OTHER, "Junk")]
    recorder.events.clear()
    store.store_flags(USER, INBOX, [1], "add", ["\\Seen"])
    store.create_mailbox(USER, "New")
    assert [(e.user, e.mailbox) for e in recorder.events] == [(USER, INBOX), (USER, "")]


def test_summary_cached(store: MaildirStore, recorder: Recorder, message: Msg) -> None:
    src = message()
    store.deliver([DeliveryTarget(USER)], src)
    first = store.summary(USER, INBOX, 1)
    assert first == b"summary:" + src.read_bytes()[:20]
    assert store.summary(USER, INBOX, 1) == first
    assert len(recorder.summarized) == 1
    with pytest.raises(MessageNotFound):
        store.summary(USER, INBOX, 7)


def test_concurrent_deliveries_threads(store: MaildirStore, message: Msg) -> None:
    srcs = [message(f"t{i}") for i in range(40)]
    got: list[int] = []
    lock = threading.Lock()

    def worker(chunk: list[Path]) -> None:
        for s in chunk:
            [a] = store.deliver([DeliveryTarget(USER)], s)
            with lock:
                got.append(a.uid)

    threads = [threading.Thread(target=worker, args=(srcs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got) == list(range(1, 41))
    assert [m.uid for m in store.snapshot(USER, INBOX).messages] == list(range(1, 41))


def test_status_counts(store: MaildirStore, message: Msg) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    store.store_flags(USER, INBOX, [1], "add", ["\\Seen"])
    st = store.status(USER, INBOX)
    assert (st.messages, st.unseen, st.deleted) == (3, 2, 0)
    assert st.size == sum(m.size for m in store.snapshot(USER, INBOX).messages)
    with pytest.raises(MailboxNotFound):
        store.status(USER, "Nope")


def test_keywords_beyond_26_letters_kept_in_index(store: MaildirStore, message: Msg) -> None:
    store.deliver([DeliveryTarget(USER)], message())
    keywords = [f"$K{i:02d}" for i in range(30)]
    store.store_flags(USER, INBOX, [1], "add", keywords)
    [info] = store.snapshot(USER, INBOX).messages
    assert info.flags == frozenset(keywords)
    name = store.message_path(USER, INBOX, 1).name
    assert name.endswith(":2,abcdefghijklmnopqrstuvwxyz")  # 26 letters on disk
    lines = (store.user_dir(USER) / "dovecot-keywords").read_text().splitlines()
    assert lines[0] == "0 $K00" and len(lines) == 26
    store.store_flags(USER, INBOX, [1], "remove", ["$K29", "$K00"])
    [info] = store.snapshot(USER, INBOX).messages
    assert info.flags == frozenset(keywords) - {"$K29", "$K00"}
    assert ":2,bcdefghij" in store.message_path(USER, INBOX, 1).name


def test_rename_keeps_uids_and_uidvalidity(store: MaildirStore, message: Msg) -> None:
    store.create_mailbox(USER, "A")
    store.deliver([DeliveryTarget(USER, "A")], message())
    before = store.status(USER, "A")
    store.rename_mailbox(USER, "A", "B/C")
    after = store.status(USER, "B/C")
    assert (after.uidvalidity, after.uidnext, after.messages) == (
        before.uidvalidity,
        before.uidnext,
        1,
    )
    assert {"B", "B/C"} <= {b.name for b in store.list_mailboxes(USER)}
    with pytest.raises(MailboxExists):
        store.rename_mailbox(USER, "Sent", "B/C")
    with pytest.raises(MailboxNotFound):
        store.rename_mailbox(USER, "Nope", "Z")
