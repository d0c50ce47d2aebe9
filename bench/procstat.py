"""CPU and memory of a server's whole process tree, sampled while a load runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil


def tree(pids: list[int]) -> list[psutil.Process]:
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs.append(p)
            procs.extend(p.children(recursive=True))
        except psutil.Error:
            continue
    return procs


def rss(pids: list[int]) -> int:
    """Resident memory of the tree, counting each process's unique set size when
    available (shared library pages are not counted N times for forking servers)."""
    total = 0
    for p in tree(pids):
        try:
            try:
                total += p.memory_full_info().uss
            except (psutil.AccessDenied, AttributeError):
                total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU of live processes plus reaped children of the roots."""
    total = 0.0
    seen: set[int] = set()
    for p in tree(pids):
        if p.pid in seen:
            continue
        seen.add(p.pid)
        try:
            t = p.cpu_times()
            total += t.user + t.system
            if p.pid in pids:
                total += t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


class Sampler:
    """Peak tree RSS, sampled every ``interval`` s on a thread, for a ``with`` block."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.25) -> None:
        self._pids = pids
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self._pids()))
            self._stop.wait(self._interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss(self._pids()))


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()
