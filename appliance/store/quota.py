"""The one quota decision: does ``incoming`` more bytes fit a user's limit?

Every caller asks the same question with the same numbers: SMTP at RCPT (declared
SIZE) and at DATA (the message), IMAP APPEND/COPY, a single-mailbox restore and the
store itself, which decides last, inside the index write transaction that adds the
messages (``check``), so two writers racing for the last bytes cannot both pass.
One SMTP message reads each recipient's usage once (:class:`MessageQuota`): its RCPT
and DATA checks share that figure, and the store's delivery reads only the index.
Usage is the sum of the stored sizes (RFC822.SIZE) of every message in every mailbox
of the user, messages flagged \\Deleted included until they are expunged.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from appliance.store import index
from appliance.store.base import MailStore, QuotaExceeded, StoreError

log = logging.getLogger(__name__)


def exceeds(used: int, incoming: int, limit: int) -> bool:
    """True when ``used + incoming`` bytes are over ``limit`` (0 = unlimited)."""
    return limit > 0 and used + incoming > limit


def check(conn: sqlite3.Connection, user: str, incoming: int, limit: int) -> None:
    """Raise QuotaExceeded when ``incoming`` bytes do not fit (call inside the user's
    write transaction, before the rows are added)."""
    if limit <= 0:
        return
    used, _ = index.usage(conn)
    if exceeds(used, incoming, limit):
        raise QuotaExceeded(f"quota of {user} exceeded", user=user)


class MessageQuota:
    """The quota of one message's recipients: each user's usage is read once
    (:meth:`MailStore.usage`, which looks over the user's folders for files other
    programs changed) and that figure serves every check before the store's: RCPT
    (SIZE or 1 byte, per address) and the end of DATA (the copies of each user).
    The decision that counts is the store's, in the transaction that adds the rows
    (:func:`check`, on the index totals), so a race for the last bytes is still settled
    there. Blocking; one message at a time (not shared between threads)."""

    def __init__(self, store: MailStore, limit_of: Callable[[str], int]) -> None:
        self._store = store
        self._limit_of = limit_of  # user -> bytes, 0 = unlimited
        self._limits: dict[str, int] = {}
        self._used: dict[str, int | None] = {}

    def limit(self, user: str) -> int:
        if user not in self._limits:
            self._limits[user] = self._limit_of(user)
        return self._limits[user]

    def used(self, user: str) -> int | None:
        """Bytes in use (read once per message); None when the store cannot tell now
        (no mailbox yet, disk trouble): the store's own decision then stands alone."""
        if user not in self._used:
            try:
                self._used[user] = self._store.usage(user).bytes
            except StoreError as exc:
                log.debug("quota=usage-unknown user=%s error=%s", user, exc)
                self._used[user] = None
        return self._used[user]

    def fits(self, user: str, incoming: int) -> bool:
        limit = self.limit(user)
        if limit <= 0:
            return True  # unlimited: no usage read at all
        used = self.used(user)
        return used is None or not exceeds(used, incoming, limit)
