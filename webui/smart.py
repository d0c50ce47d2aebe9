"""Disk health (SMART) for the dashboard: which disk holds the mail, and what its report says.

The report comes from the root helper's ``smart`` command (``smartctl --json -a``), the same
one the storage page runs as a job. Reading it can take seconds (a disk spinning up) or hang
on a bad USB bridge, so the dashboard never waits for it long: :class:`SmartCache` reads in
a background thread, keeps each answer for ``SMART_CACHE_SECONDS`` and lets the page wait
at most ``SMART_WAIT_SECONDS`` before it shows "still reading".
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from webui.disks import Disk
from webui.helper import HelperError

log = logging.getLogger(__name__)

Level = Literal["ok", "warning", "error"]
Reader = Callable[[str], dict[str, Any]]

SMART_CACHE_SECONDS = 30 * 60
SMART_WAIT_SECONDS = 3.0
SMART_HELPER_TIMEOUT = 180.0  # the helper gives smartctl 120 s
TEMP_WARN_C = 60
TEMP_WARN_NVME_C = 70


@dataclass(frozen=True)
class Reading:
    """One answer of the helper: its SMART summary, or why there is none."""

    checked: float
    data: dict[str, Any] | None
    error: str = ""


@dataclass(frozen=True)
class Health:
    level: Level
    text: str


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mountpoints(disk: Disk) -> Iterator[str]:
    if disk.mountpoint:
        yield disk.mountpoint
    for part in disk.partitions:
        if part.mountpoint:
            yield part.mountpoint


def disk_holding(path: Path, disks: list[Disk]) -> Disk | None:
    """The disk whose file system holds ``path``: the deepest mount point above it that
    is on the same device (so a tmpfs or bind mount in between is not mistaken for it)."""
    where = _existing(path)
    try:
        device = os.stat(where).st_dev
    except OSError:
        return None
    best: tuple[int, Disk] | None = None
    for disk in disks:
        for mount in _mountpoints(disk):
            mount_path = Path(mount).resolve()
            if mount_path != where and mount_path not in where.parents:
                continue
            try:
                if os.stat(mount_path).st_dev != device:
                    continue
            except OSError:
                continue
            depth = len(mount_path.parts)
            if best is None or depth > best[0]:
                best = (depth, disk)
    return best[1] if best else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _passed(data: Mapping[str, Any]) -> bool | None:
    value = data.get("passed")
    return value if isinstance(value, bool) else None


def _count(data: Mapping[str, Any], key: str) -> int:
    return _int(data.get(key)) or 0


def why_unavailable(disk: Disk) -> str:
    if disk.name.startswith("mmcblk"):
        return "SD card"
    model = disk.model.lower()
    if disk.name.startswith(("vd", "xvd")) or any(
        v in model for v in ("qemu", "vbox", "virtual", "vmware")
    ):
        return "virtual disk"
    if disk.bus == "usb":
        return "USB bridge"
    return "virtual disk or USB bridge"


def describe(disk: Disk) -> str:
    return f"{disk.model} ({disk.path})" if disk.model else disk.path


def judge(disk: Disk, reading: Reading) -> Health:
    """The dashboard's verdict on one SMART reading of ``disk``."""
    name = describe(disk)
    unavailable = f"SMART not available for this disk ({why_unavailable(disk)}): {name}"
    if disk.bus == "usb":
        unavailable += "; this USB bridge hides SMART, so keep backups current"
    if reading.data is None:
        error = reading.error.rstrip(".")
        if error.startswith("smartctl"):  # it ran, but could not talk to the disk
            return Health(
                "warning", f"{unavailable}; {error}." if disk.bus != "usb" else f"{unavailable}."
            )
        if "system helper" in error:  # dev mode or a box without the root helper
            return Health(
                "warning",
                f"Disk health isn't available on this machine: it has no system helper to "
                f"read the health report of {name}.",
            )
        return Health(
            "warning",
            f"The health report of {name} could not be read; the system log has the details.",
        )
    data = reading.data
    passed = _passed(data)
    if passed is False:
        return Health(
            "error",
            f"{name} reports that it is failing. Copy the mail to a new disk and replace it soon.",
        )
    if passed is None:
        return Health("warning", unavailable + ".")
    problems = []
    reallocated = _count(data, "reallocated_sectors")  # the helper reads ATA attribute 5
    pending = _count(data, "pending_sectors")  # ... and 197
    if reallocated:
        problems.append(f"{reallocated} reallocated sector{'s' if reallocated != 1 else ''}")
    if pending:
        problems.append(f"{pending} sector{'s' if pending != 1 else ''} waiting to be remapped")
    temp = _int(data.get("temperature"))
    limit = TEMP_WARN_NVME_C if disk.name.startswith("nvme") else TEMP_WARN_C
    if temp is not None and temp >= limit:
        problems.append(f"running hot at {temp} °C")
    if problems:
        return Health(
            "warning",
            f"{name}: {', '.join(problems)}. Keep backups current and plan to replace it.",
        )
    warm = f", {temp} °C" if temp is not None else ""
    return Health("ok", f"{name} is healthy (SMART passed{warm}).")


class SmartCache:
    """SMART readings per device, refreshed in a background thread at most once per
    ``ttl`` seconds; at most one read per device runs at a time."""

    def __init__(self, ttl: float = SMART_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._readings: dict[str, Reading] = {}
        self._running: dict[str, threading.Event] = {}

    def get(self, device: str, read: Reader, now: float, wait: float) -> Reading | None:
        """The fresh reading of ``device``; else start a read and wait up to ``wait``
        seconds for it. Returns the old reading (or None) when the read is still going."""
        with self._lock:
            cached = self._readings.get(device)
            if cached is not None and 0 <= now - cached.checked < self.ttl:
                return cached
            done = self._running.get(device)
            if done is None:
                done = threading.Event()
                self._running[device] = done
                threading.Thread(
                    target=self._refresh,
                    args=(device, read, now, done),
                    name="smart-read",
                    daemon=True,
                ).start()
        done.wait(wait)
        with self._lock:
            return self._readings.get(device)

    def _refresh(self, device: str, read: Reader, now: float, done: threading.Event) -> None:
        try:
            reading = Reading(now, read(device))
        except HelperError as exc:
            reading = Reading(now, None, str(exc))
        except Exception as exc:  # a thread must always report back
            log.exception("smart=read-failed device=%s", device)
            reading = Reading(now, None, f"unexpected error ({exc})")
        with self._lock:
            self._readings[device] = reading
            self._running.pop(device, None)
        done.set()
