"""What the box warns its admin about: each check turns a reading into alert conditions.

A :class:`Condition` has a stable ``key`` ("disk:mail", "smart-failing:/dev/sdb") and a
``fingerprint``; webui.alerts mails it once per fingerprint. A check that cannot read its
source this time (daemon down, SMART still reading, DNS servers silent) names the key
prefixes it could not judge in ``Outcome.unknown``, so what was known stays as it was
instead of being reported as recovered.

Every number is here and in README.md (Alerts):
- SMART: ``passed`` false; or reallocated + pending sectors above the count first seen
  (the alert holds for SECTOR_HOLD_SECONDS after the last growth);
- disks: the mail file system and the system's (``/``) at DISK_WARN / DISK_CRITICAL used,
  cleared DISK_HYSTERESIS below; the system disk is skipped when it is the mail disk;
- backups: the last run failed or was interrupted; or the last success (or, before any,
  the day backups were first seen set up) is over BACKUP_MAX_AGE old, unless automatic
  backups are off;
- certificate: missing, or under CERT_DAYS left (automatic renewal starts at 30 days, so
  by then it has failed for over two weeks; uploaded and self-signed ones never renew);
- queue: a pending message older than QUEUE_MAX_WAIT; port 25 blocked (see
  :func:`port25_blocked`);
- DNS: a record that was once seen published as expected no longer is;
- memory: available RAM under RAM_LOW (cleared at RAM_CLEAR), swap over SWAP_HIGH used
  (cleared under SWAP_CLEAR).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import psutil

from appliance import config
from appliance.ctl.protocol import CtlError
from appliance.dns import DnsError, NoData, NoSuchDomain, RdType, SyncLookup
from appliance.queue.routes import pick_smarthost
from webui import acme_renew, certs, dnscheck, sizing, smart
from webui.context import WebContext
from webui.disks import Disk

log = logging.getLogger(__name__)

Severity = Literal["warning", "critical"]

SECTOR_HOLD_SECONDS = 7 * 86400
DISK_WARN, DISK_CRITICAL, DISK_HYSTERESIS = 0.85, 0.95, 0.02
BACKUP_MAX_AGE = 2 * 86400
CERT_DAYS = 14
QUEUE_MAX_WAIT = 3600
PORT25_WINDOW = 6 * 3600
PORT25_MIN_RECIPIENTS, PORT25_MIN_DOMAINS = 3, 2
RAM_LOW, RAM_CLEAR = 0.10, 0.15  # available share of RAM
SWAP_HIGH, SWAP_CLEAR = 0.50, 0.40  # used share of swap

# aiosmtplib's texts for a TCP connection that never opened (timeout, refused,
# unreachable), as the queue records them in last_error; a reply from the far side
# (any "4xx"/"5xx") does not match.
CONNECT_FAILED_25 = re.compile(r"(Timed out connecting|Error connecting) to \S+ on port 25\b")


@dataclass(frozen=True)
class Condition:
    key: str
    severity: Severity
    title: str  # the subject line and the banner's heading
    text: str  # what is wrong and what to do
    fingerprint: str  # a new value is news: mailed again
    link: str = ""  # the dashboard page that helps


@dataclass(frozen=True)
class Outcome:
    conditions: list[Condition] = field(default_factory=list)
    unknown: tuple[str, ...] = ()  # key prefixes not judged this time: keep their state


class Memo(Protocol):
    """Small values kept between runs (SMART baselines, DNS records once seen right)."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class Memory:
    ram_total: int
    ram_available: int
    swap_total: int
    swap_used: int


def read_memory() -> Memory:
    vm, sw = psutil.virtual_memory(), psutil.swap_memory()
    return Memory(int(vm.total), int(vm.available), int(sw.total), int(sw.used))


@dataclass(frozen=True)
class Run:
    """One round of checks: the clock, what is active now (key -> fingerprint), the memo."""

    ctx: WebContext
    now: float
    active: Mapping[str, str]
    memo: Memo
    system_path: Path = Path("/")
    memory: Callable[[], Memory] = read_memory


# ------------------------------------------------------------------ SMART


def _sectors(data: Mapping[str, Any]) -> int | None:
    values = [data.get(k) for k in ("reallocated_sectors", "pending_sectors")]
    counts = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return sum(counts) if counts else None


def _smart_disks(run: Run) -> list[Disk]:
    disks = run.ctx.disks()
    mail = smart.disk_holding(run.ctx.config().mail_dir, disks)
    return [d for d in disks if d.holds_system or d is mail]


def check_smart(run: Run) -> Outcome:
    ctx = run.ctx
    try:
        disks = _smart_disks(run)
    except Exception as exc:  # udev missing or confused: nothing to judge
        log.warning("alerts=disks-unlisted error=%s", exc)
        return Outcome(unknown=("smart",))
    conditions: list[Condition] = []
    unknown: list[str] = []
    for disk in disks:
        reading = ctx.smart_cache.get(
            disk.path, ctx.read_smart, run.now, smart.SMART_HELPER_TIMEOUT
        )
        if (
            reading is None
            or reading.data is None
            or not isinstance(reading.data.get("passed"), bool)
        ):
            # No SMART (SD card, USB bridge) or still reading: judge nothing this time.
            unknown += [f"smart-failing:{disk.path}", f"smart-sectors:{disk.path}"]
            continue
        name = smart.describe(disk)
        if reading.data["passed"] is False:
            conditions.append(
                Condition(
                    f"smart-failing:{disk.path}",
                    "critical",
                    f"Disk failing: {name}",
                    f"{name} reports in its SMART self-assessment that it is failing. "
                    "Copy the mail to a new disk and replace it soon; keep backups current.",
                    "failing",
                    "/storage",
                )
            )
        sectors = _sectors(reading.data)
        if sectors is not None:
            grown = _sector_growth(run, disk, sectors)
            if grown is not None:
                conditions.append(grown)
    return Outcome(conditions, tuple(unknown))


def _sector_growth(run: Run, disk: Disk, count: int) -> Condition | None:
    """Active while the disk's bad-sector count grew in the last SECTOR_HOLD_SECONDS.

    The memo keeps the count last seen, the count before this episode's first growth
    and its peak: only a new peak is news (a fall, pending sectors remapped, is not)."""
    memo_key = f"smart-sectors:{disk.serial or disk.path}"
    seen = run.memo.get(memo_key)
    if not isinstance(seen, dict):
        run.memo.put(memo_key, {"count": count, "before": count, "peak": count, "grown_at": 0.0})
        return None
    grown_at, before, peak = float(seen["grown_at"]), int(seen["before"]), int(seen["peak"])
    if count > int(seen["count"]):
        if run.now - grown_at >= SECTOR_HOLD_SECONDS:
            before, peak = int(seen["count"]), count  # a new episode counts from here
        grown_at, peak = run.now, max(peak, count)
    if count != int(seen["count"]) or grown_at != float(seen["grown_at"]):
        memo = {"count": count, "before": before, "peak": peak, "grown_at": grown_at}
        run.memo.put(memo_key, memo)
    if run.now - grown_at >= SECTOR_HOLD_SECONDS:
        return None
    name = smart.describe(disk)
    return Condition(
        f"smart-sectors:{disk.path}",
        "warning",
        f"Disk sectors going bad: {name}",
        f"{name} has more reallocated or pending sectors than before: {before} then, "
        f"{peak} at most since, {count} now. Disks that start doing this often fail "
        "soon: keep backups current and plan to replace it.",
        str(peak),
        "/storage",
    )


# ------------------------------------------------------------------ disks


def _disk_level(used: float, previous: str | None) -> str | None:
    """'95', '85' or None; a level holds until usage falls DISK_HYSTERESIS below it."""
    held = {"95": 2, "85": 1}.get(previous or "", 0)
    for pct, rank, limit in (("95", 2, DISK_CRITICAL), ("85", 1, DISK_WARN)):
        if used >= (limit - DISK_HYSTERESIS if held >= rank else limit):
            return pct
    return None


def _device(path: Path) -> int | None:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def check_disks(run: Run) -> Outcome:
    cfg = run.ctx.config()
    places = [("mail", "Mail disk", cfg.mail_dir, "/storage")]
    mail_dev = _device(cfg.mail_dir)
    if _device(run.system_path) != mail_dev:
        places.append(("system", "System disk", run.system_path, "/hardware"))
    conditions: list[Condition] = []
    unknown: list[str] = []
    for name, label, path, link in places:
        key = f"disk:{name}"
        try:
            hw = run.ctx.measure(path)
        except OSError as exc:
            log.warning("alerts=disk-unmeasured path=%s error=%s", path, exc)
            unknown.append(key)
            continue
        used = 1 - hw.disk_free / hw.disk_total if hw.disk_total else 0.0
        level = _disk_level(used, run.active.get(key))
        if level is None:
            continue
        what = (
            "New mail is refused when it is full."
            if name == "mail"
            else ("The queue, the accounts and the logs live there.")
        )
        conditions.append(
            Condition(
                key,
                "critical" if level == "95" else "warning",
                f"{label} {used:.0%} full",
                f"The {label.lower()} ({path}) is {used:.0%} full: {sizing.human(hw.disk_free)} "
                f"free of {sizing.human(hw.disk_total)}. {what} Delete old mail, empty Trash "
                "and Junk folders, or move the mail to a larger disk.",
                level,
                link,
            )
        )
    return Outcome(conditions, tuple(unknown))


# ------------------------------------------------------------------ backups


def timestamp(value: object) -> float | None:
    """Unix seconds from a number or an ISO 8601 string (both occur in backup status)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and value:
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return (when if when.tzinfo else when.astimezone()).timestamp()
    return None


def mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _days(seconds: float) -> str:
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''}"


def check_backup(run: Run) -> Outcome:
    try:
        st = run.ctx.ctl().call("backup_status")
    except CtlError as exc:
        log.info("alerts=backup-status-unknown error=%s", exc)
        return Outcome(unknown=("backup",))
    if not isinstance(st, dict) or st.get("target") in (None, "none"):
        run.memo.put("backup-configured-at", None)
        return Outcome()
    conditions: list[Condition] = []
    last = mapping(st.get("last"))
    if last.get("ok") is False or st.get("state") == "interrupted":
        error = (
            "it was interrupted (the box restarted or the backup process died)"
            if st.get("state") == "interrupted"
            else str(last.get("error") or "no reason given")[:300].rstrip(".")
        )
        conditions.append(
            Condition(
                "backup:failed",
                "critical",
                "Backup failed",
                f"The last backup failed: {error}. Check that the backup disk or server "
                "is reachable and has room, then run a backup from the Backups page.",
                error,
                "/backup/",
            )
        )
    finished = timestamp(mapping(st.get("last_success")).get("finished"))
    since = run.memo.get("backup-configured-at")
    if not isinstance(since, int | float):
        since = run.now
        run.memo.put("backup-configured-at", since)
    ref = finished if finished is not None else float(since)
    if st.get("schedule", "daily") != "off" and run.now - ref > BACKUP_MAX_AGE:
        text = (
            f"The last good backup is {_days(run.now - ref)} old."
            if finished is not None
            else f"No backup has succeeded since backups were set up {_days(run.now - ref)} ago."
        )
        conditions.append(
            Condition(
                "backup:stale",
                "warning",
                "No recent backup",
                text + " Mail received since then would be lost with the disk.",
                "stale",
                "/backup/",
            )
        )
    return Outcome(conditions)


# ------------------------------------------------------------------ certificate


def check_certificate(run: Run) -> Outcome:
    cfg = run.ctx.config()
    info = certs.read_installed(cfg.tls.cert)
    if info is None:
        return Outcome(
            [
                Condition(
                    "cert",
                    "critical",
                    "No usable certificate",
                    f"The certificate file {cfg.tls.cert} is missing or unreadable: mail "
                    "programs cannot connect securely. Install one on the Certificate page.",
                    "missing",
                    "/certificate",
                )
            ]
        )
    days = info.days_left(dt.datetime.fromtimestamp(run.now, dt.UTC))
    if days >= CERT_DAYS:
        return Outcome()
    error = acme_renew.renew_error(cfg)
    if error:
        why = f"Automatic renewal failed: {error.rstrip('.')}."
    elif info.self_signed:
        why = "It is self-signed, and nothing renews it."
    else:
        why = "It is not renewed automatically (it was uploaded, or renewal has not run)."
    expired = days < 0
    when = f"expired on {info.not_after:%Y-%m-%d}" if expired else f"expires in {days} days"
    return Outcome(
        [
            Condition(
                "cert",
                "critical" if expired else "warning",
                "Certificate expired" if expired else "Certificate expires soon",
                f"The certificate for {info.subject} {when} ({info.not_after:%Y-%m-%d %H:%M} "
                f"UTC). {why} Get a new one on the Certificate page.",
                f"{'expired' if expired else 'expiring'}:{info.not_after:%Y%m%d%H%M}",
                "/certificate",
            )
        ]
    )


# ------------------------------------------------------------------ queue


def port25_blocked(entries: Sequence[Mapping[str, Any]], cfg: config.Config, now: float) -> bool:
    """Outbound port 25 looks blocked: in the last PORT25_WINDOW, at least
    PORT25_MIN_RECIPIENTS pending recipients in at least PORT25_MIN_DOMAINS domains were
    tried directly (no smarthost for their domain), the last try of every one of them
    failed to open a TCP connection to port 25 (timeout, refused, unreachable), and no
    directly tried pending recipient got any SMTP reply in that window."""
    tried: list[tuple[str, bool]] = []
    for entry in entries:
        for r in entry.get("recipients") or []:
            if not isinstance(r, dict) or r.get("status") != "pending":
                continue
            address = str(r.get("address", ""))
            domain = address.rpartition("@")[2].lower()
            last = r.get("last_attempt") or 0
            if not isinstance(last, int | float) or not r.get("attempts"):
                continue
            if now - float(last) > PORT25_WINDOW or pick_smarthost(cfg.smarthosts, domain):
                continue
            refused = bool(CONNECT_FAILED_25.search(str(r.get("last_error", ""))))
            tried.append((domain, refused))
    failed = [d for d, f in tried if f]
    return (
        len(failed) == len(tried)
        and len(failed) >= PORT25_MIN_RECIPIENTS
        and len(set(failed)) >= PORT25_MIN_DOMAINS
    )


def check_queue(run: Run) -> Outcome:
    try:
        entries = run.ctx.ctl().call("queue.list")
    except CtlError as exc:
        log.info("alerts=queue-unknown error=%s", exc)
        return Outcome(unknown=("queue",))
    if not isinstance(entries, list):
        return Outcome(unknown=("queue",))
    entries = [e for e in entries if isinstance(e, dict)]
    conditions: list[Condition] = []
    waiting = [
        e
        for e in entries
        if isinstance(e.get("created"), int | float)
        and run.now - float(e["created"]) > QUEUE_MAX_WAIT
        and any(isinstance(r, dict) and r.get("status") == "pending" for r in e["recipients"])
    ]
    if waiting:
        oldest = min(float(e["created"]) for e in waiting)
        errors = [
            str(r.get("last_error"))
            for e in waiting
            for r in e["recipients"]
            if isinstance(r, dict) and r.get("last_error")
        ]
        hours = int((run.now - oldest) // 3600)
        text = (
            f"{len(waiting)} outgoing message{'s have' if len(waiting) != 1 else ' has'} "
            f"waited over an hour; the oldest for {hours} hour{'s' if hours != 1 else ''}."
        )
        if errors:
            text += f" Last error: {errors[-1][:300]}."
        conditions.append(
            Condition(
                "queue:waiting",
                "warning",
                "Outgoing mail is waiting",
                text + " The queue page shows each message and lets you retry.",
                "waiting",
                "/queue",
            )
        )
    if port25_blocked(entries, run.ctx.config(), run.now):
        conditions.append(
            Condition(
                "queue:port25",
                "critical",
                "Outgoing port 25 looks blocked",
                "Every recent attempt to deliver mail directly failed to connect to port 25 "
                "of the receiving servers. Many internet providers block it: set up an "
                "outgoing relay (smarthost) on the DNS page, or ask the provider to open it.",
                "blocked",
                "/dns",
            )
        )
    return Outcome(conditions)


# ------------------------------------------------------------------ DNS


class _Watching:
    """The context's resolver, noting whether any lookup went unanswered (a timeout or
    SERVFAIL, as opposed to a definite "no such name" or "no such record")."""

    def __init__(self, inner: SyncLookup) -> None:
        self.inner = inner
        self.failed = False

    def lookup(self, name: str, rdtype: RdType) -> list[str]:
        try:
            return self.inner.lookup(name, rdtype)
        except (NoSuchDomain, NoData):
            raise
        except DnsError:
            self.failed = True
            raise


def _record_id(check: dnscheck.Check) -> str:
    return f"{check.record.purpose}|{check.record.rdtype}|{check.record.name}"


def check_dns(run: Run) -> Outcome:
    ctx = run.ctx
    cfg = ctx.config()
    conditions: list[Condition] = []
    unknown: list[str] = []
    for domain in ctx.accounts.list_domains():
        resolver = _Watching(ctx.resolver)
        checks = dnscheck.check_all(cfg, domain, resolver)
        if resolver.failed:  # silence is not a changed record
            unknown.append(f"dns:{domain}")
            continue
        memo_key = f"dns-ok:{domain}"
        seen = run.memo.get(memo_key)
        ok_before = set(seen) if isinstance(seen, list) else set()
        ok_now = {_record_id(c) for c in checks if c.status == "ok"}
        if ok_now - ok_before:
            run.memo.put(memo_key, sorted(ok_before | ok_now))
        broken = [c for c in checks if _record_id(c) in ok_before and c.status != "ok"]
        if not broken:
            continue
        lines = [
            f"- {c.record.purpose}: {c.record.rdtype} {c.record.name}: {c.detail}"
            + (f" (found: {', '.join(c.found)[:200]})" if c.found else "")
            for c in broken
        ]
        conditions.append(
            Condition(
                f"dns:{domain}",
                "critical" if any(c.status == "error" for c in broken) else "warning",
                f"DNS records of {domain} changed",
                f"These records of {domain} were published as needed before and no longer "
                "are:\n" + "\n".join(lines) + "\nFix them at your DNS provider; the DNS page "
                "shows the values to publish.",
                ",".join(sorted(_record_id(c) for c in broken)),
                f"/dns?domain={domain}",
            )
        )
    return Outcome(conditions, tuple(unknown))


# ------------------------------------------------------------------ memory


def check_memory(run: Run) -> Outcome:
    m = run.memory()
    conditions: list[Condition] = []
    free = m.ram_available / m.ram_total if m.ram_total else 1.0
    limit = RAM_CLEAR if "memory:ram" in run.active else RAM_LOW
    if free < limit:
        conditions.append(
            Condition(
                "memory:ram",
                "warning",
                "Memory is running out",
                f"Only {free:.0%} of the memory is available ({sizing.human(m.ram_available)} "
                f"of {sizing.human(m.ram_total)}). Mail may slow down or services may be "
                "stopped by the system; turn off heavy filters (rspamd, ClamAV) on the "
                "Hardware page or add memory.",
                "low",
                "/hardware",
            )
        )
    if m.swap_total:
        used = m.swap_used / m.swap_total
        limit = SWAP_CLEAR if "memory:swap" in run.active else SWAP_HIGH
        if used > limit:
            conditions.append(
                Condition(
                    "memory:swap",
                    "warning",
                    "Swap is filling up",
                    f"{used:.0%} of the swap space is in use ({sizing.human(m.swap_used)} of "
                    f"{sizing.human(m.swap_total)}): the box is short of memory and slow.",
                    "high",
                    "/hardware",
                )
            )
    return Outcome(conditions)


CHECKS: tuple[tuple[str, Callable[[Run], Outcome]], ...] = (
    ("smart", check_smart),
    ("disk", check_disks),
    ("backup", check_backup),
    ("cert", check_certificate),
    ("queue", check_queue),
    ("dns", check_dns),
    ("memory", check_memory),
)
