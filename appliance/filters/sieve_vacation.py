"""Sieve vacation (RFC 5230): who gets an auto-reply and how often.

:class:`VacationTracker` keeps "replied to this sender for this handle at time T" in
SQLite so that each sender gets at most one reply per ``:days`` period.
"""

from __future__ import annotations

import email.utils
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from email.message import Message
from pathlib import Path

from appliance.filters.sieve_eval import VacationRequest, header, raw_headers

DAY = 86400
_RECIPIENT_FIELDS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
_LIST_FIELDS = (
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
)


def handle_for(request: VacationRequest) -> str:
    """RFC 5230 4.2: without :handle, replies are tracked per set of arguments."""
    if request.handle:
        return request.handle
    basis = "\0".join(
        [request.reason, request.subject, request.from_addr, *sorted(request.addresses)]
    )
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def refuse_reason(request: VacationRequest, headers: Message, mail_from: str, user: str) -> str:
    """Why no reply must be sent ("" when a reply is allowed)."""
    if not mail_from:
        return "null sender"  # RFC 5230 4.6: MUST NOT reply to the null sender
    sender = mail_from.lower()
    own = {user.lower(), *(a.lower() for a in request.addresses)}
    if request.from_addr:
        own.add(email.utils.parseaddr(request.from_addr)[1].lower())
    if sender in own:
        return "own address"  # RFC 5230 4.6: never reply to oneself
    local = sender.rpartition("@")[0]
    if local.startswith("owner-") or local.endswith("-request") or local == "mailer-daemon":
        return "list or daemon sender"  # RFC 5230 4.6
    auto = header(headers, "Auto-Submitted", "no").lower()
    if auto and not auto.startswith("no"):
        return "auto-submitted"  # RFC 3834 2 / RFC 5230 4.6
    precedence = header(headers, "Precedence").lower()
    if precedence in ("bulk", "list", "junk"):
        return f"precedence {precedence}"  # RFC 5230 4.6
    if any(raw_headers(headers, f) for f in _LIST_FIELDS):
        return "mailing list"  # RFC 5230 4.6 (RFC 2369 / RFC 2919 fields)
    values = [v for f in _RECIPIENT_FIELDS for v in raw_headers(headers, f)]
    named = {a.lower() for _, a in email.utils.getaddresses(values) if a}
    if not named & own:
        return "not addressed to the user"  # RFC 5230 4.5
    return ""


class VacationTracker:
    """SQLite (WAL) record of sent auto-replies; blocking, call from a worker thread."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vacation (user TEXT NOT NULL, sender TEXT NOT NULL,"
            " handle TEXT NOT NULL, sent REAL NOT NULL, PRIMARY KEY (user, sender, handle))"
        )

    def claim(self, user: str, sender: str, handle: str, days: int) -> bool:
        """True (and remember now) unless ``sender`` got a reply within ``days`` days."""
        now = self.clock()
        key = (user.lower(), sender.lower(), handle)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT sent FROM vacation WHERE user=? AND sender=? AND handle=?", key
                ).fetchone()
                # RFC 5230 4.1: at most one reply per sender per :days period.
                if row is not None and now - float(row[0]) < days * DAY:
                    self._db.execute("COMMIT")
                    return False
                self._db.execute(
                    "INSERT OR REPLACE INTO vacation (user, sender, handle, sent)"
                    " VALUES (?, ?, ?, ?)",
                    (*key, now),
                )
                self._db.execute("COMMIT")
                return True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def forget(self, user: str, senders: Sequence[str] = ()) -> None:
        """Drop the records of ``user`` (all, or only these senders), e.g. on script change."""
        with self._lock:
            if senders:
                self._db.executemany(
                    "DELETE FROM vacation WHERE user=? AND sender=?",
                    [(user.lower(), s.lower()) for s in senders],
                )
            else:
                self._db.execute("DELETE FROM vacation WHERE user=?", (user.lower(),))

    def close(self) -> None:
        with self._lock:
            self._db.close()
