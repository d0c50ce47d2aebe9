"""Disk errors become typed StoreErrors and never leave a partial message."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.store.base import (
    INBOX,
    DeliveryTarget,
    StorageFull,
    StorageUnavailable,
    StoreError,
)
from appliance.store.maildir import MaildirStore
from tests.unit.store.conftest import OTHER, USER

Msg = Callable[..., Path]


def _files(store: MaildirStore, user: str) -> list[Path]:
    return [p for sub in ("new", "cur", "tmp") for p in (store.user_dir(user) / sub).iterdir()]


def _fail_nth(
    monkeypatch: pytest.MonkeyPatch, name: str, err: int, nth: int = 1
) -> Callable[[], int]:
    real = getattr(os, name)
    calls = 0

    def fake(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == nth:
            raise OSError(err, os.strerror(err))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, fake)
    return lambda: calls


@pytest.mark.parametrize(
    ("call", "err", "expected"),
    [
        ("write", errno.ENOSPC, StorageFull),
        ("write", errno.EDQUOT, StorageFull),
        ("fsync", errno.ENOSPC, StorageFull),
        ("fsync", errno.EIO, StorageUnavailable),
        ("write", errno.EROFS, StorageUnavailable),
        ("link", errno.ENOSPC, StorageFull),
        ("link", errno.EIO, StorageUnavailable),
    ],
)
def test_disk_errors_typed_and_clean(
    store: MaildirStore,
    message: Msg,
    monkeypatch: pytest.MonkeyPatch,
    call: str,
    err: int,
    expected: type[Exception],
) -> None:
    store.ensure_user(OTHER)
    store.deliver([DeliveryTarget(USER)], message())
    _fail_nth(monkeypatch, call, err)
    with pytest.raises(expected) as info:
        store.deliver([DeliveryTarget(USER), DeliveryTarget(OTHER)], message())
    assert isinstance(info.value, StoreError) and info.value.temporary
    monkeypatch.undo()
    assert [m.uid for m in store.snapshot(USER, INBOX).messages] == [1]
    assert store.snapshot(OTHER, INBOX).messages == ()
    assert len(_files(store, USER)) == 1
    assert _files(store, OTHER) == []
    # The store keeps working afterwards, with the next UID.
    [a] = store.deliver([DeliveryTarget(USER)], message())
    assert a.uid == 2


def test_second_target_link_failure_rolls_back_first(
    store: MaildirStore, message: Msg, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ensure_user(OTHER)
    _fail_nth(monkeypatch, "link", errno.ENOSPC, nth=2)
    with pytest.raises(StorageFull):
        store.deliver([DeliveryTarget(USER), DeliveryTarget(OTHER)], message())
    monkeypatch.undo()
    assert _files(store, USER) == [] and _files(store, OTHER) == []
    assert store.status(USER, INBOX).messages == 0


def test_index_commit_failure_unlinks_files(
    store: MaildirStore, message: Msg, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.store import index

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(index, "insert_message", broken)
    with pytest.raises(StorageFull):
        store.deliver([DeliveryTarget(USER)], message())
    monkeypatch.undo()
    assert _files(store, USER) == []
    assert store.status(USER, INBOX).messages == 0


def test_flag_rename_failure(
    store: MaildirStore, message: Msg, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.deliver([DeliveryTarget(USER)], message())
    store.deliver([DeliveryTarget(USER)], message())
    _fail_nth(monkeypatch, "rename", errno.EIO, nth=2)
    with pytest.raises(StorageUnavailable):
        store.store_flags(USER, INBOX, [1, 2], "add", ["\\Seen"])
    monkeypatch.undo()
    flags = [m.flags for m in store.snapshot(USER, INBOX).messages]
    assert flags == [frozenset(), frozenset()]  # the first rename was undone


def test_expunge_unlink_failure_keeps_index_consistent(
    store: MaildirStore, message: Msg, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        store.deliver([DeliveryTarget(USER)], message())
    store.store_flags(USER, INBOX, [1, 2, 3], "add", ["\\Deleted"])
    _fail_nth(monkeypatch, "unlink", errno.EROFS, nth=2)
    with pytest.raises(StorageUnavailable):
        store.expunge(USER, INBOX)
    monkeypatch.undo()
    # Whatever was unlinked is reported gone; the rest is still there.
    remaining = [m.uid for m in store.snapshot(USER, INBOX).messages]
    on_disk = len(_files(store, USER))
    assert len(remaining) == on_disk
    assert remaining == [2, 3]
    assert store.expunge(USER, INBOX) == [2, 3]


def test_missing_mail_disk(tmp_path: Path, message: Msg) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    store = MaildirStore(blocker / "mail", lambda e: None, lambda p: b"")
    with pytest.raises(StorageUnavailable):
        store.deliver([DeliveryTarget(USER)], message())
