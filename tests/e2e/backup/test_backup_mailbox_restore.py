"""Single-user restore into the live store: added under Restored/<date>, nothing replaced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.backup import restore, runner
from appliance.backup.initialize import init_repository
from appliance.backup.restic import BackupError
from appliance.backup.store_lock import user_lock
from tests.e2e.backup.backup_box import Box, fingerprint, message, populate

USER = "alice@example.org"


def contents(box: Box, mailbox: str) -> list[tuple[list[str], float, bytes]]:
    out = []
    for m in box.store.snapshot(USER, mailbox).messages:
        with box.store.open_message(USER, mailbox, m.uid) as fh:
            out.append((sorted(m.flags), m.internal_date, fh.read()))
    return out


def test_restore_a_users_mail_without_touching_live_mail(
    new_box: Callable[[str], Box], tmp_path: Path
) -> None:
    b = new_box("box")
    populate(b, tmp_path)
    backed_up = fingerprint(b)["mail"]
    inbox_then = contents(b, "INBOX")
    init_repository(b.cfg)
    assert runner.BackupRunner(b.cfg, b.accounts, user_lock=user_lock(b.store)).run().ok

    # After the backup: the user deletes two messages, flags one, and new mail arrives.
    uids = [m.uid for m in b.store.snapshot(USER, "INBOX").messages]
    b.store.delete_messages(USER, "INBOX", uids[:2])
    b.store.store_flags(USER, "INBOX", uids[2:3], "set", ["\\Seen", "\\Flagged"])
    f = tmp_path / "new.eml"
    f.write_bytes(message(5000, USER))
    b.store.append(USER, "INBOX", f)
    live_before = contents(b, "INBOX")
    status_before = b.store.status(USER, "INBOX")

    result = restore.restore_mailbox(b.cfg, b.store, USER)
    dest = result.destination
    assert dest.startswith("Restored/")
    assert set(result.mailboxes) == {
        n.split("/", 1)[1] for n in backed_up if n.startswith(USER + "/")
    }
    assert result.mailboxes["INBOX"] == len(inbox_then)
    # the live INBOX is exactly as it was: nothing overwritten, nothing dropped
    assert contents(b, "INBOX") == live_before
    assert b.store.status(USER, "INBOX").uidvalidity == status_before.uidvalidity
    # the backed-up messages are back, same bytes, flags and dates (\Deleted never restored)
    assert contents(b, f"{dest}/INBOX") == inbox_then
    projects = [(m[1], m[2], m[5]) for m in backed_up[f"{USER}/Projects/2026"]["messages"]]
    got = [(f, d, data) for f, d, data in contents(b, f"{dest}/Projects/2026")]
    assert got == projects
    # other users are untouched
    assert "Restored" not in {m.name for m in b.store.list_mailboxes("bob@example.org")}

    # restoring again never merges into the first restore
    again = restore.restore_mailbox(b.cfg, b.store, USER, mailbox="INBOX")
    assert again.destination == dest + "-2"
    assert again.mailboxes == {"INBOX": len(inbox_then)}


def test_restore_single_messages_by_their_backup_uid(
    new_box: Callable[[str], Box], tmp_path: Path
) -> None:
    b = new_box("box")
    populate(b, tmp_path)
    snap = b.store.snapshot(USER, "Projects/2026")
    wanted = snap.messages[-1]
    with b.store.open_message(USER, "Projects/2026", wanted.uid) as fh:
        data = fh.read()
    init_repository(b.cfg)
    assert runner.BackupRunner(b.cfg, b.accounts, user_lock=user_lock(b.store)).run().ok
    b.store.delete_messages(USER, "Projects/2026", [wanted.uid])

    result = restore.restore_mailbox(
        b.cfg, b.store, USER, mailbox="Projects/2026", uids=[wanted.uid]
    )
    assert result.messages == 1
    (m,) = b.store.snapshot(USER, f"{result.destination}/Projects/2026").messages
    assert m.flags == wanted.flags and m.internal_date == wanted.internal_date
    with b.store.open_message(USER, f"{result.destination}/Projects/2026", m.uid) as fh:
        assert fh.read() == data

    with pytest.raises(BackupError, match="no mailbox"):
        restore.restore_mailbox(b.cfg, b.store, USER, mailbox="Nope")
    with pytest.raises(BackupError, match="none of the UIDs"):
        restore.restore_mailbox(b.cfg, b.store, USER, mailbox="INBOX", uids=[9999])
    with pytest.raises(BackupError, match="holds no mail"):
        restore.restore_mailbox(b.cfg, b.store, "nobody@example.org")
