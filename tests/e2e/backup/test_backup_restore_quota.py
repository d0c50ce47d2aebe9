"""A single-mailbox restore respects the user's quota: refused whole when the restored
mail would not fit, and a refusal midway leaves no folder or message behind."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from appliance.backup import restore, runner
from appliance.backup.initialize import init_repository
from appliance.backup.restic import BackupError
from appliance.backup.store_lock import user_lock
from appliance.store.base import Appended, QuotaExceeded
from tests.e2e.backup.backup_box import Box, populate

USER = "alice@example.org"


def backed_up(new_box: Callable[[str], Box], tmp_path: Path) -> Box:
    b = new_box("box")
    populate(b, tmp_path)
    init_repository(b.cfg)
    assert runner.BackupRunner(b.cfg, b.accounts, user_lock=user_lock(b.store)).run().ok
    return b


def names(b: Box) -> set[str]:
    return {m.name for m in b.store.list_mailboxes(USER)}


def test_restore_over_quota_is_refused_and_creates_nothing(
    new_box: Callable[[str], Box], tmp_path: Path
) -> None:
    b = backed_up(new_box, tmp_path)
    before, boxes = b.store.usage(USER), names(b)
    inbox = sum(m.size for m in b.store.snapshot(USER, "INBOX").messages)
    # Room for less than the backed-up INBOX: refused, whatever the admin asked for.
    b.accounts.set_quota(USER, before.bytes + inbox - 1)
    with pytest.raises(BackupError, match="quota"):
        restore.restore_mailbox(b.cfg, b.store, USER, mailbox="INBOX")
    assert b.store.usage(USER) == before
    assert names(b) == boxes  # no Restored/ folder either
    # With room for it, the same restore goes through.
    b.accounts.set_quota(USER, before.bytes + inbox)
    result = restore.restore_mailbox(b.cfg, b.store, USER, mailbox="INBOX")
    assert b.store.usage(USER).bytes == before.bytes + inbox
    assert result.mailboxes == {"INBOX": len(b.store.snapshot(USER, "INBOX").messages)}


class RacedStore:
    """The live store, where other mail fills the quota after the restore's first
    message (the store then refuses with QuotaExceeded, as it does on a real race)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.appends = 0

    def append(
        self,
        user: str,
        mailbox: str,
        source: Path,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
        *,
        quota_bytes: int = 0,
    ) -> Appended:
        self.appends += 1
        if self.appends > 1:
            raise QuotaExceeded("quota exceeded", user=user)
        appended: Appended = self.real.append(
            user, mailbox, source, flags, internal_date, quota_bytes=quota_bytes
        )
        return appended

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_store_refusal_midway_leaves_nothing(new_box: Callable[[str], Box], tmp_path: Path) -> None:
    b = backed_up(new_box, tmp_path)
    before, boxes = b.store.usage(USER), names(b)
    raced = RacedStore(b.store)
    with pytest.raises(BackupError, match="nothing was restored"):
        restore.restore_mailbox(b.cfg, raced, USER)
    assert raced.appends == 2
    assert names(b) == boxes
    assert b.store.usage(USER) == before
