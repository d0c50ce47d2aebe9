"""MailStore.hold: every mailbox of one user held, against threads of this store and
against another store on the same files (another process: the locks are flock files)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.backup.store_lock import user_lock
from appliance.events import MailboxChanged
from appliance.store.base import INBOX, DeliveryTarget, StorageUnavailable
from appliance.store.maildir import MaildirStore
from tests.unit.store.conftest import OTHER, USER

Msg = Callable[..., Path]


def second_store(store: MaildirStore) -> MaildirStore:
    """Another store on the same root, as the CLI's or a second process's would be: its
    own lock table, so only the flock on the lock files stands between the two."""

    def ignore(_event: MailboxChanged) -> None:
        return None

    return MaildirStore(store.root, ignore, lambda _p: b"", lock_timeout=0.3)


def test_hold_keeps_another_store_out_of_every_mailbox(store: MaildirStore, message: Msg) -> None:
    store.create_mailbox(USER, "Work/Reports")
    other = second_store(store)
    src = message("held")
    with store.hold(USER):
        for mailbox in (INBOX, "Archive", "Work/Reports"):
            with pytest.raises(StorageUnavailable):
                other.deliver([DeliveryTarget(USER, mailbox)], src)
        with pytest.raises(StorageUnavailable):
            other.create_mailbox(USER, "New")  # the tree lock is held too
        with pytest.raises(StorageUnavailable):
            other.rename_mailbox(USER, "Work", "Play")
        other.deliver([DeliveryTarget(OTHER)], src)  # another user is not held
    other.deliver([DeliveryTarget(USER, "Work/Reports")], src)
    other.create_mailbox(USER, "New")
    assert store.status(USER, "Work/Reports").messages == 1
    assert store.status(USER, INBOX).messages == 0


def test_hold_makes_a_writer_of_the_same_store_wait(store: MaildirStore, message: Msg) -> None:
    src = message("waits")
    done = threading.Event()

    def deliver() -> None:
        store.deliver([DeliveryTarget(USER)], src)
        done.set()

    with store.hold(USER):
        writer = threading.Thread(target=deliver)
        writer.start()
        time.sleep(0.3)
        assert not done.is_set()  # blocked on the INBOX lock while held
        assert store.status(USER, INBOX).messages == 0  # reading goes on
    writer.join(10)
    assert done.is_set()
    assert store.status(USER, INBOX).messages == 1


def test_backup_user_lock_is_the_store_hold(store: MaildirStore) -> None:
    lock = user_lock(store)
    assert lock is not None
    other = second_store(store)
    with lock(USER), pytest.raises(StorageUnavailable):
        other.create_mailbox(USER, "Blocked")
    other.create_mailbox(USER, "Blocked")
