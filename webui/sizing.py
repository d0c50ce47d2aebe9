"""Hardware sizing: what this box can comfortably serve, from psutil measurements.

The numbers are deliberately conservative defaults for a home or small-office box; the
admin sees them as a table and may accept them, which writes the limits to the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from appliance.webmail import WEBMAIL_MIN_RAM

MiB = 1024 * 1024
GiB = 1024 * MiB

# RAM needed beside the mail service itself for the optional content filters.
RSPAMD_RAM = 1 * GiB
CLAMAV_RAM = 3 * GiB
WEBMAIL_RAM = WEBMAIL_MIN_RAM  # Roundcube and its php-fpm pool (appliance.webmail)


@dataclass(frozen=True)
class Hardware:
    cpus: int
    ram: int
    disk_path: str
    disk_total: int
    disk_free: int


@dataclass(frozen=True)
class Sizing:
    mailboxes: int
    quota: int
    max_message_size: int
    max_connections: int
    max_connections_per_ip: int
    rspamd: bool
    clamav: bool
    planned: int = 0  # mailboxes the quota is shared by (see recommend)
    users: int | None = None  # mailboxes on the box now, when known
    webmail: bool = False  # enough memory for webmail (Roundcube + php-fpm)


# (minimum RAM, mailboxes, connections, connections per IP)
_TIERS: tuple[tuple[int, int, int, int], ...] = (
    (8 * GiB, 500, 2000, 50),
    (4 * GiB, 150, 1000, 30),
    (2 * GiB, 50, 500, 20),
    (1 * GiB, 25, 200, 15),
    (0, 10, 100, 10),
)


def _existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def measure(mail_dir: Path) -> Hardware:
    where = _existing(mail_dir)
    usage = psutil.disk_usage(str(where))
    return Hardware(
        cpus=psutil.cpu_count() or 1,
        ram=psutil.virtual_memory().total,
        disk_path=str(where),
        disk_total=usage.total,
        disk_free=usage.free,
    )


def _round_quota(value: int) -> int:
    """Down to a whole GiB above 1 GiB, else to 100 MiB; at least 100 MiB."""
    if value >= GiB:
        return (value // GiB) * GiB
    return max(100 * MiB, (value // (100 * MiB)) * 100 * MiB)


PLAN_MIN = 5  # the quota leaves room for at least this many mailboxes


def planned_mailboxes(users: int, capacity: int) -> int:
    """How many mailboxes the disk is shared by: twice today's count (room to grow), at
    least PLAN_MIN, at most what the memory serves."""
    return max(1, min(capacity, max(2 * users, PLAN_MIN)))


def recommend(hw: Hardware, users: int | None = None) -> Sizing:
    """Limits for this hardware; with ``users`` (the mailboxes there are now) the storage
    per mailbox follows the real count instead of the most the memory could serve."""
    mailboxes, conns, per_ip = next(t[1:] for t in _TIERS if hw.ram >= t[0])
    if hw.cpus <= 1:
        conns //= 2
    planned = mailboxes if users is None else planned_mailboxes(users, mailboxes)
    # Keep a fifth of the disk free for the queue, indexes and growth.
    quota = _round_quota(int(hw.disk_free * 0.8) // planned)
    return Sizing(
        mailboxes=mailboxes,
        quota=quota,
        max_message_size=(50 if hw.ram >= 2 * GiB else 25) * MiB,
        max_connections=conns,
        max_connections_per_ip=per_ip,
        rspamd=hw.ram >= RSPAMD_RAM,
        clamav=hw.ram >= CLAMAV_RAM,
        planned=planned,
        users=users,
        webmail=hw.ram >= WEBMAIL_RAM,
    )


def human(n: int | float) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
