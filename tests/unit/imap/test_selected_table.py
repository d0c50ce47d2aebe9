"""MessageTable (the selected mailbox's UID -> MessageInfo view) behaves as a dict built
from the snapshot would, for any mix of updates, arrivals and removals, and shares the
snapshot instead of copying it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap.selected import MessageTable, SelectedMailbox
from appliance.store.base import MailboxStatus, MessageInfo, Snapshot


def info(uid: int, modseq: int = 1, flags: frozenset[str] = frozenset()) -> MessageInfo:
    return MessageInfo(uid, modseq, flags, 0.0, 100, f"k{uid}")


ops = st.lists(
    st.tuples(st.sampled_from(["set", "pop", "get"]), st.integers(min_value=1, max_value=40)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(base_uids=st.sets(st.integers(min_value=1, max_value=30), max_size=20), steps=ops)
def test_table_matches_a_dict(base_uids: set[int], steps: list[tuple[str, int]]) -> None:
    base = tuple(info(u) for u in sorted(base_uids))
    table = MessageTable(base)
    model = {m.uid: m for m in base}
    for n, (op, uid) in enumerate(steps):
        if op == "set":
            new = info(uid, modseq=n + 2, flags=frozenset({"\\Seen"}))
            table[uid] = new
            model[uid] = new
        elif op == "pop":
            assert table.pop(uid) == model.pop(uid, None)
        else:
            assert table.get(uid) == model.get(uid)
        assert (uid in table) == (uid in model)
    assert sorted(table.values(), key=lambda m: m.uid) == sorted(
        model.values(), key=lambda m: m.uid
    )
    for uid in range(0, 42):
        assert table.get(uid) == model.get(uid)
        if uid in model:
            assert table[uid] == model[uid]


def test_sessions_share_the_snapshot() -> None:
    base = tuple(info(u) for u in range(1, 1001))
    a, b = MessageTable(base), MessageTable(base)
    a[5] = info(5, modseq=9, flags=frozenset({"\\Flagged"}))
    assert a.pop(7) is not None
    assert a[1] is b[1] is base[0]  # not copied
    assert b[5] is base[4] and 7 in b  # one session's changes stay its own
    assert a[5].flags == frozenset({"\\Flagged"}) and 7 not in a


def selected(name: str, uids: range) -> SelectedMailbox:
    messages = tuple(info(u) for u in uids)
    status = MailboxStatus(name, 7, uids.stop, 1, len(messages), len(messages), 0)
    return SelectedMailbox(name, Snapshot(status, messages), False, None)  # type: ignore[arg-type]


def test_sessions_share_the_uid_array_until_one_changes_it() -> None:
    a, b = selected("INBOX", range(1, 501)), selected("INBOX", range(1, 501))
    assert a.uids is b.uids
    other = selected("Archive", range(1, 501))
    assert other.uids is not a.uids  # another mailbox never shares, whatever its UIDs
    assert selected("INBOX", range(2, 502)).uids is not a.uids  # other contents
    assert a.remove(10) == 10  # a's expunge copies first: b still sees 500 messages
    assert len(a) == 499 and len(b) == 500 and b.seq_of(10) == 10
    assert a.seq_of(11) == 10
    late = selected("INBOX", range(1, 501))
    assert late.uids is b.uids and len(late) == 500
