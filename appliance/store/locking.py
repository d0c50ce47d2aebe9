"""Mailbox locks that hold across threads and processes.

A lock is a file under ``<user>/pillarbox-locks/``. Taking it means taking a
re-entrant thread lock for the file, then ``flock(LOCK_EX)`` on it (the first time in
this thread); other processes (the CLI, a second daemon, crash tests) see the flock.
Several locks are always taken in sorted path order, so two writers cannot deadlock.
Waits are bounded: a lock not obtained within ``timeout`` raises StorageUnavailable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from appliance.store.base import StorageUnavailable


class _Entry:
    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd = -1


class LockTable:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._guard = threading.Lock()
        self._entries: dict[Path, _Entry] = {}

    def _entry(self, path: Path) -> _Entry:
        with self._guard:
            entry = self._entries.get(path)
            if entry is None:
                entry = self._entries[path] = _Entry()
            return entry

    def _acquire(self, path: Path, deadline: float) -> _Entry:
        entry = self._entry(path)
        if not entry.rlock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise StorageUnavailable("mailbox is locked")
        try:
            if entry.depth == 0:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    _flock(fd, deadline)
                except BaseException:
                    os.close(fd)
                    raise
                entry.fd = fd
            entry.depth += 1
        except BaseException:
            entry.rlock.release()
            raise
        return entry

    @staticmethod
    def _release(entry: _Entry) -> None:
        entry.depth -= 1
        if entry.depth == 0:
            os.close(entry.fd)  # drops the flock
            entry.fd = -1
        entry.rlock.release()

    @contextlib.contextmanager
    def hold(self, paths: Iterable[Path]) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        held: list[_Entry] = []
        try:
            for path in sorted(set(paths)):
                held.append(self._acquire(path, deadline))
            yield
        finally:
            for entry in reversed(held):
                self._release(entry)


def _flock(fd: int, deadline: float) -> None:
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StorageUnavailable("mailbox is locked by another process") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
