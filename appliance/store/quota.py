"""The one quota decision: does ``incoming`` more bytes fit a user's limit?

Every caller asks the same question with the same numbers: SMTP at RCPT (declared
SIZE) and at DATA (the message), IMAP APPEND/COPY, a single-mailbox restore and the
store itself, which decides last, inside the index write transaction that adds the
messages (``check``), so two writers racing for the last bytes cannot both pass.
Usage is the sum of the stored sizes (RFC822.SIZE) of every message in every mailbox
of the user, messages flagged \\Deleted included until they are expunged.
"""

from __future__ import annotations

import sqlite3

from appliance.store import index
from appliance.store.base import QuotaExceeded


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
