"""Hold every lock of one user's store while the backup stages that user.

``MailStore.hold`` takes the user's tree lock, then every mailbox lock, in the store's
own order; the Maildir store's locks are flock files, so the daemon's store and a store
opened by the CLI (systemd timer) exclude each other, and index, uidlist files and
message file names agree in the backup.
"""

from __future__ import annotations

from pathlib import Path

from appliance.backup.staging import UserLock
from appliance.store.base import MailStore
from appliance.store.maildir import MaildirStore


def user_lock(store: MailStore) -> UserLock | None:
    """The lock function for ``store``: its :meth:`MailStore.hold`."""
    return store.hold


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
