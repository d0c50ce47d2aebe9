"""The daemon's one DNS cache: answers kept for their TTL, bounded in entries and bytes.

Positive answers live for the smallest TTL along the answer's CNAME chain, at most
``MAX_TTL``; NXDOMAIN and NODATA for the negative TTL of the zone's SOA (RFC 2308 5),
at most ``MAX_NEGATIVE_TTL``; failures (SERVFAIL, timeouts) are never kept. Senders choose
which names the box looks up (SPF, DKIM, DMARC), so the cache is bounded twice: at most
``MAX_ENTRIES`` answers and ``MAX_BYTES`` of record text plus a per-entry allowance; the
least recently used answer goes first. Thread-safe; the clock is injected for tests.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.dns.base import NoData, NoSuchDomain

MAX_ENTRIES = 10_000
MAX_BYTES = 8 * 1024 * 1024
MAX_TTL = 86_400.0  # a day: a record changed at its zone is picked up by tomorrow
MAX_NEGATIVE_TTL = 3_600.0  # RFC 2308 5: negative answers are kept 1-3 hours at most
ENTRY_OVERHEAD = 512  # bytes counted per entry besides its text: the measured Python cost


@dataclass(frozen=True)
class _Entry:
    expires: float
    values: tuple[str, ...]
    negative: type[NoSuchDomain] | type[NoData] | None
    size: int


class DnsCache:
    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        *,
        max_ttl: float = MAX_TTL,
        max_negative_ttl: float = MAX_NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes counted against ``max_bytes``."""
        return self._bytes

    def get(self, name: str, rdtype: str) -> list[str] | None:
        """The cached values, None when nothing unexpired is kept; raises the cached
        NoSuchDomain / NoData for a negative answer."""
        key = _key(name, rdtype)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= self.clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
        if entry.negative is NoSuchDomain:
            raise NoSuchDomain(f"{key[0]}: no such domain")
        if entry.negative is NoData:
            raise NoData(f"{key[0]}: no {rdtype} record")
        return list(entry.values)

    def put(self, name: str, rdtype: str, values: Sequence[str], ttl: float) -> None:
        self._store(_key(name, rdtype), tuple(values), None, min(ttl, self.max_ttl))

    def put_negative(
        self, name: str, rdtype: str, kind: type[NoSuchDomain] | type[NoData], ttl: float
    ) -> None:
        self._store(_key(name, rdtype), (), kind, min(ttl, self.max_negative_ttl))

    def _store(
        self,
        key: tuple[str, str],
        values: tuple[str, ...],
        negative: type[NoSuchDomain] | type[NoData] | None,
        ttl: float,
    ) -> None:
        size = ENTRY_OVERHEAD + len(key[0]) + sum(len(v) for v in values)
        if ttl <= 0 or size > self.max_bytes or self.max_entries <= 0:
            return  # TTL 0 means "do not cache" (RFC 1035 3.2.1)
        with self._lock:
            self._drop(key)
            self._entries[key] = _Entry(self.clock() + ttl, values, negative, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size


def _key(name: str, rdtype: str) -> tuple[str, str]:
    return name.lower().rstrip("."), rdtype
