"""Greylisting in SQLite: (client network, sender, recipient) triplets, retry window,
auto-whitelist of client networks that retried successfully. Tempfail 451 4.7.1."""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.filters.base import InboundMessage, Verdict

DAY = 86400
EXPIRE_EVERY = 3600  # stale rows are dropped at most this often, during a check


@dataclass(frozen=True)
class GreylistSettings:
    delay: int = 300  # seconds before a retry is accepted
    retry_window: int = 2 * DAY  # a retry after this starts over
    whitelist_days: int = 36  # a network that passed is trusted this long
    triplet_lifetime: int = 36 * DAY  # passed triplets are kept this long


def client_network(ip: str) -> str:
    """IPv4 /24 and IPv6 /64: senders retrying from a pool of hosts still pass."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def _local(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class Greylist:
    """Blocking SQLite store; the filter calls it through asyncio.to_thread."""

    def __init__(
        self,
        path: Path,
        settings: GreylistSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.settings = settings or GreylistSettings()
        self.clock = clock
        self._expired_at = clock()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS triplet (net TEXT NOT NULL, sender TEXT NOT NULL,"
            " rcpt TEXT NOT NULL, first REAL NOT NULL, passed REAL,"
            " PRIMARY KEY (net, sender, rcpt))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS whitelist (net TEXT PRIMARY KEY, until REAL NOT NULL)"
        )

    def check(self, ip: str, sender: str, recipients: Sequence[str]) -> bool:
        """True when the delivery may pass now; records first sightings."""
        now = self.clock()
        if now - self._expired_at > EXPIRE_EVERY:
            self._expired_at = now
            self.expire()
        s = self.settings
        net = client_network(ip)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT until FROM whitelist WHERE net=?", (net,)).fetchone()
                if row is not None and float(row[0]) > now:
                    self._db.execute("COMMIT")
                    return True
                ok = True
                for rcpt in recipients or ("",):
                    key = (net, sender.lower(), rcpt.lower())
                    found = self._db.execute(
                        "SELECT first, passed FROM triplet WHERE net=? AND sender=? AND rcpt=?",
                        key,
                    ).fetchone()
                    if found is not None and found[1] is not None:
                        if now - float(found[1]) < s.triplet_lifetime:
                            continue  # passed before
                    elif found is not None:
                        age = now - float(found[0])
                        if s.delay <= age <= s.retry_window:
                            self._db.execute(
                                "UPDATE triplet SET passed=? WHERE net=? AND sender=? AND rcpt=?",
                                (now, *key),
                            )
                            continue
                        if age < s.delay:
                            ok = False
                            continue
                    # new, expired, or retried after the window: start over
                    self._db.execute(
                        "INSERT OR REPLACE INTO triplet (net, sender, rcpt, first, passed)"
                        " VALUES (?, ?, ?, ?, NULL)",
                        (*key, now),
                    )
                    ok = False
                if ok:
                    # A network that retried like a real MTA is trusted for a while.
                    self._db.execute(
                        "INSERT OR REPLACE INTO whitelist (net, until) VALUES (?, ?)",
                        (net, now + s.whitelist_days * DAY),
                    )
                self._db.execute("COMMIT")
                return ok
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def expire(self) -> int:
        """Drop stale rows; returns how many were removed."""
        now = self.clock()
        s = self.settings
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM triplet WHERE (passed IS NULL AND first < ?) OR passed < ?",
                (now - s.retry_window, now - s.triplet_lifetime),
            )
            cur2 = self._db.execute("DELETE FROM whitelist WHERE until < ?", (now,))
            return cur.rowcount + cur2.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


class GreylistFilter:
    name = "greylist"

    def __init__(self, greylist: Greylist) -> None:
        self.greylist = greylist

    async def close(self) -> None:
        await asyncio.to_thread(self.greylist.close)

    async def check(self, msg: InboundMessage) -> Verdict:
        if msg.authenticated_user or _local(msg.client_ip):
            return Verdict()
        try:
            ok = await asyncio.to_thread(
                self.greylist.check, msg.client_ip, msg.mail_from, msg.rcpt_to
            )
        except sqlite3.Error:
            return Verdict()  # a broken greylist database never blocks mail
        if ok:
            return Verdict()
        return Verdict(
            "tempfail",
            reason="Greylisted, please try again later",
            smtp_code=451,
            enhanced="4.7.1",
        )
