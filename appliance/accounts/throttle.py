"""Login throttling: exponential back-off per user and per client IP.

After ``free_failures`` failures for a key, each further attempt is refused without
checking the password until ``base * 2**(n - free_failures)`` seconds (capped) have
passed since the last failure. Refusing before hashing keeps a password-guessing
flood from turning into a CPU flood. A success clears the user's key (not the IP's:
an attacker with one valid account must not reset the IP's counter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


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
        forget_after: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_failures
        self._base = base
        self._cap = cap
        self._forget = forget_after
        self._clock = clock
        self._state: dict[str, _State] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(user: str, ip: str) -> tuple[str, str]:
        return f"user:{user.lower()}", f"ip:{ip}"

    def _wait(self, key: str, now: float) -> float:
        st = self._state.get(key)
        if st is None:
            return 0.0
        if now - st.last > self._forget:
            del self._state[key]
            return 0.0
        if st.failures < self._free:
            return 0.0
        delay = min(self._cap, self._base * 2.0 ** (st.failures - self._free))
        return max(0.0, st.last + delay - now)

    def retry_after(self, user: str, ip: str) -> float:
        """Seconds until an attempt for (user, ip) may be checked; 0 = allowed now."""
        now = self._clock()
        with self._lock:
            return max(self._wait(k, now) for k in self._keys(user, ip))

    def failure(self, user: str, ip: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(user, ip):
                st = self._state.get(key)
                if st is None or now - st.last > self._forget:
                    self._state[key] = _State(1, now)
                else:
                    st.failures += 1
                    st.last = now
            if len(self._state) > 100_000:  # bound memory under a spray of addresses
                cutoff = now - self._forget
                for k in [k for k, s in self._state.items() if s.last < cutoff]:
                    del self._state[k]

    def success(self, user: str, ip: str) -> None:
        with self._lock:
            self._state.pop(self._keys(user, ip)[0], None)
