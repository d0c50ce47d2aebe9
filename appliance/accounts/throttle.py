"""Login throttling keyed on the canonical account id and the client IP.

Callers pass ``Accounts.canonical_login(login)``, never the raw login: ``bob@d.``,
``<bob@d>`` and `` BOB@d`` are one account and share one budget.

Three counters, each forgotten ``forget_after`` seconds after its last failure:

- (account, source IP): after ``free_failures`` failures, each further attempt is
  refused without checking the password until ``base * 2**(n - free_failures)``
  seconds (capped at ``cap``) have passed since the last failure. Refusing before
  hashing keeps a guessing flood from turning into a CPU flood.
- source IP (all accounts): the same back-off after ``ip_free_failures`` failures, so
  one address spraying many accounts is stopped too. Higher than the per-account
  budget because one NAT address may carry several users.
- account (all sources): never refuses. Past ``account_ceiling`` failures from any
  mix of addresses, every attempt for the account is *slowed* by ``slowdown()``
  seconds (``account_delay`` doubling per further ``account_ceiling`` failures,
  capped at ``account_delay_cap``). The owner with the right password on a fresh
  address still gets in; a botnet guessing the account holds each connection for the
  delay (its parallelism stays bounded by the per-IP and total connection limits,
  and each of its addresses by the per-(account, IP) back-off).

An IPv6 source counts as its /64 (one subscriber's prefix: an attacker there has 2**64
addresses); IPv4-mapped IPv6 addresses count as the IPv4 address.

A success clears the (account, IP) counter only: not the IP's (an attacker with one
valid account must not reset the counter of the address it sprays from) and not the
account's (the owner's phone logging in every minute must not reset the slowdown for
an attacker elsewhere).
Shared sources (``shared_sources``, the daemon passes loopback while webmail is on):
addresses that carry many people's logins. Their failures count for the account alone
(the slowdown above), never for the address or the (account, address) pair, so they are
never refused: webmail logs in to IMAP, SMTP and ManageSieve from 127.0.0.1 for every
user, and the web front throttles those logins per browser address before Roundcube
tries them (webui.webmail).

Thread-safe: the daemon calls it from the event loop, the web UI from worker threads.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MAX_KEYS = 100_000  # bound memory under a spray of addresses


class ThrottleLimits(Protocol):
    """The [limits] settings the throttle reads (appliance.config.Limits has them)."""

    @property
    def login_free_failures(self) -> int: ...
    @property
    def login_ip_free_failures(self) -> int: ...
    @property
    def login_backoff_cap(self) -> int: ...
    @property
    def login_account_ceiling(self) -> int: ...
    @property
    def login_account_delay_cap(self) -> int: ...


@dataclass
class _State:
    failures: int
    last: float


class LoginThrottle:
    def __init__(
        self,
        *,
        free_failures: int = 3,
        base: float = 1.0,
        cap: float = 300.0,
        ip_free_failures: int = 10,
        account_ceiling: int = 20,
        account_delay: float = 1.0,
        account_delay_cap: float = 8.0,
        forget_after: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        shared_sources: tuple[str, ...] = (),
    ) -> None:
        self.free_failures = free_failures
        self.ip_free_failures = ip_free_failures
        self.base = base
        self.cap = cap
        self.account_ceiling = account_ceiling
        self.account_delay = account_delay
        self.account_delay_cap = account_delay_cap
        self.forget_after = forget_after
        self._clock = clock
        self.share(shared_sources)
        self._state: dict[str, _State] = {}
        self._lock = threading.Lock()

    def share(self, sources: tuple[str, ...]) -> None:
        """Set the shared sources (the daemon's start and reload: webmail on or off).
        Counters already kept for an address that becomes shared are left to expire."""
        self.shared = frozenset(self.source(ip) for ip in sources)

    @classmethod
    def from_limits(
        cls,
        limits: ThrottleLimits,
        clock: Callable[[], float] = time.monotonic,
        shared_sources: tuple[str, ...] = (),
    ) -> LoginThrottle:
        """The throttle configured by [limits] (the daemon and the web UI use the same)."""
        return cls(
            shared_sources=shared_sources,
            free_failures=limits.login_free_failures,
            ip_free_failures=limits.login_ip_free_failures,
            cap=float(limits.login_backoff_cap),
            account_ceiling=limits.login_account_ceiling,
            account_delay_cap=float(limits.login_account_delay_cap),
            clock=clock,
        )

    @staticmethod
    def source(ip: str) -> str:
        """The throttle's key for a client address (IPv6: its /64; ::1 is itself, so
        sharing loopback never shares the rest of ::/64)."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return ip
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                return str(addr.ipv4_mapped)
            if addr.is_loopback:
                return str(addr)
            return str(ipaddress.IPv6Network((addr, 64), strict=False))
        return str(addr)

    def _pair(self, account_id: str, ip: str) -> str:
        return f"acct-ip:{account_id}\0{self.source(ip)}"

    def _ip(self, ip: str) -> str:
        return f"ip:{self.source(ip)}"

    def _live(self, key: str, now: float) -> _State | None:
        st = self._state.get(key)
        if st is not None and now - st.last > self.forget_after:
            del self._state[key]
            return None
        return st

    def _wait(self, key: str, free: int, now: float) -> float:
        st = self._live(key, now)
        if st is None or st.failures < free:
            return 0.0
        delay = min(self.cap, self.base * 2.0 ** (st.failures - free))
        return max(0.0, st.last + delay - now)

    def retry_after(self, account_id: str, ip: str) -> float:
        """Seconds until an attempt for (account, ip) may be checked; 0 = allowed now."""
        if self.source(ip) in self.shared:
            return 0.0
        now = self._clock()
        with self._lock:
            return max(
                self._wait(self._pair(account_id, ip), self.free_failures, now),
                self._wait(self._ip(ip), self.ip_free_failures, now),
            )

    def slowdown(self, account_id: str) -> float:
        """Seconds to wait before checking any password for this account (never a refusal).

        Bounded by ``account_delay_cap``; 0 below the per-account ceiling.
        """
        now = self._clock()
        with self._lock:
            st = self._live(f"acct:{account_id}", now)
            if st is None or st.failures < self.account_ceiling:
                return 0.0
            steps = (st.failures - self.account_ceiling) // max(1, self.account_ceiling)
            return min(self.account_delay_cap, self.account_delay * 2.0 ** min(steps, 30))

    def failure(self, account_id: str, ip: str) -> None:
        now = self._clock()
        keys = [f"acct:{account_id}"]
        if self.source(ip) not in self.shared:
            keys += [self._pair(account_id, ip), self._ip(ip)]
        with self._lock:
            for key in keys:
                st = self._live(key, now)
                if st is None:
                    self._state[key] = _State(1, now)
                else:
                    st.failures += 1
                    st.last = now
            if len(self._state) > MAX_KEYS:
                cutoff = now - self.forget_after
                for k in [k for k, s in self._state.items() if s.last < cutoff]:
                    del self._state[k]
                if len(self._state) > MAX_KEYS:  # all recent: drop the oldest half
                    by_age = sorted(self._state, key=lambda k: self._state[k].last)
                    for k in by_age[: len(by_age) // 2]:
                        del self._state[k]

    def success(self, account_id: str, ip: str) -> None:
        with self._lock:
            self._state.pop(self._pair(account_id, ip), None)
