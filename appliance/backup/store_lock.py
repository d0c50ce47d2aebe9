"""Hold every lock of one user's Maildir store while the backup stages that user.

The store's locks are files under ``<user>/pillarbox-locks/`` taken with flock, so the
daemon's store and a store opened by the CLI (systemd timer) exclude each other. The
order matches the store's own: the user's tree lock first (no mailbox appears, goes or
is renamed), then every mailbox lock in one sorted ``hold`` (no delivery, flag change,
copy or expunge), so index, uidlist files and message file names agree in the backup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from appliance.backup.staging import UserLock
from appliance.store.base import INBOX, MailStore
from appliance.store.mailboxes import LOCK_DIR
from appliance.store.maildir import MaildirStore
from appliance.store.names import mailbox_of_dirname


def _mailboxes(userdir: Path) -> list[str]:
    names = [INBOX]
    with os.scandir(userdir) as entries:
        for entry in entries:
            name = mailbox_of_dirname(entry.name)
            if name and name != INBOX and entry.is_dir():
                names.append(name)
    return names


@contextlib.contextmanager
def _hold(store: MaildirStore, user: str) -> Iterator[None]:
    userdir = store.user_dir(user)
    with store.locks.hold([userdir / LOCK_DIR / "tree.lock"]):
        paths = [store.lock_path(user, name) for name in _mailboxes(userdir)]
        with store.locks.hold(paths):
            yield


def user_lock(store: MailStore) -> UserLock | None:
    """The lock function for ``store``; None for a store without file locks."""
    if not isinstance(store, MaildirStore):
        return None
    s = store

    def lock(user: str) -> contextlib.AbstractContextManager[None]:
        return _hold(s, user)

    return lock


def open_store(mail_dir: Path) -> MaildirStore:
    """A store on ``mail_dir`` for a process without the daemon's (CLI, timer)."""
    from appliance.mime.summary import is_current as summary_is_current
    from appliance.mime.summary import summarize

    return MaildirStore(
        mail_dir,
        notify=lambda _event: None,
        summarizer=summarize,
        summary_current=summary_is_current,
    )


def file_user_lock(mail_dir: Path) -> UserLock | None:
    return user_lock(open_store(mail_dir))
