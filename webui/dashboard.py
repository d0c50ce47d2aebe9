"""The dashboard: one line per thing that can go wrong, rated ok / warning / error, and a
chart of the mail disk's usage over time (webui.diskusage).

Also the power buttons (restart, shut down), which go through the root helper.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Literal

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.ctl.protocol import CtlError
from webui import alerts, certs, diskusage, dnscheck, sizing, smart, webmail
from webui.alertchecks import mapping, timestamp
from webui.context import WebContext, web
from webui.helper import HelperError, in_words
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)

Level = Literal["ok", "warning", "error"]
DNS_CACHE_SECONDS = 600
QUEUE_WARN, QUEUE_ERROR = 50, 500
CERT_WARN_DAYS = 21
BACKUP_WARN_SECONDS = 26 * 3600  # a daily backup plus some slack
BACKUP_ERROR_SECONDS = 3 * 86400


@dataclass(frozen=True)
class Status:
    title: str
    level: Level
    text: str
    link: str = ""
    link_text: str = "Fix this"


def _span(seconds: float) -> str:
    """'1 minute', '3 minutes', '5 hours', '2 days' (whole units, rounded down)."""
    minutes = int(seconds // 60)
    hours = minutes // 60
    if hours >= 48:
        count, unit = hours // 24, "day"
    elif hours >= 1:
        count, unit = hours, "hour"
    else:
        count, unit = max(minutes, 1), "minute"
    return f"{count} {unit}{'s' if count != 1 else ''}"


def uptime_phrase(seconds: float) -> str:
    """How long the daemon has run: 'just started', 'for 3 minutes', 'for 2 days'."""
    return "just started" if seconds < 60 else f"for {_span(seconds)}"


def daemon_status(ctx: WebContext) -> tuple[Status, dict[str, Any] | None]:
    try:
        result = ctx.ctl().call("status")
    except CtlError as exc:
        log.info("dashboard=daemon-unreachable error=%s", exc)
        return Status("Mail service", "error", "Not running. Mail is not being received."), None
    uptime = result.get("uptime") if isinstance(result, dict) else None
    if not isinstance(uptime, int | float) or isinstance(uptime, bool):
        return Status("Mail service", "ok", "Running."), result
    phrase = uptime_phrase(float(uptime))
    text = "Running (just started)." if phrase == "just started" else f"Running {phrase}."
    return Status("Mail service", "ok", text), result


def _queue_size(ctx: WebContext, status: dict[str, Any]) -> int | None:
    queue = status.get("services", {}).get("queue") if isinstance(status, dict) else None
    if isinstance(queue, dict):
        for key in ("size", "messages", "entries"):
            if isinstance(queue.get(key), int):
                return int(queue[key])
    try:
        listing = ctx.ctl().call("queue.list")
    except CtlError:
        return None
    if isinstance(listing, dict):
        listing = listing.get("entries", listing.get("messages", []))
    return len(listing) if isinstance(listing, list) else None


def queue_status(size: int) -> Status:
    if size >= QUEUE_ERROR:
        level: Level = "error"
    else:
        level = "warning" if size >= QUEUE_WARN else "ok"
    text = (
        "Empty: all outgoing mail is delivered."
        if size == 0
        else (f"{size} message{'s' if size != 1 else ''} waiting to be delivered.")
    )
    return Status("Outgoing mail", level, text, url_for("queue.page") if level != "ok" else "")


def disk_status(ctx: WebContext) -> Status:
    hw = ctx.measure(ctx.config().mail_dir)
    used = 1 - hw.disk_free / hw.disk_total if hw.disk_total else 1.0
    text = f"{sizing.human(hw.disk_free)} free of {sizing.human(hw.disk_total)} ({used:.0%} used)."
    if used >= 0.9:
        return Status("Mail storage", "error", text, url_for("hardware.storage"))
    if used >= 0.8:
        return Status("Mail storage", "warning", text, url_for("hardware.storage"))
    return Status("Mail storage", "ok", text)


def cert_status(ctx: WebContext) -> Status:
    cfg = ctx.config()
    info = certs.read_installed(cfg.tls.cert)
    link = url_for("certs.page")
    if info is None:
        return Status("Certificate", "error", "No certificate is installed.", link)
    now = dt.datetime.fromtimestamp(ctx.clock(), dt.UTC)
    days = info.days_left(now)
    if days < 0:
        return Status("Certificate", "error", f"Expired on {info.not_after:%Y-%m-%d}.", link)
    if days < CERT_WARN_DAYS:
        return Status("Certificate", "warning", f"Expires in {days} days.", link)
    if not info.covers(cfg.hostname):
        return Status("Certificate", "warning", f"Does not cover {cfg.hostname}.", link)
    if info.self_signed:
        return Status(
            "Certificate",
            "warning",
            f"Self-signed (valid {days} more days): mail programs will warn once.",
            link,
        )
    return Status("Certificate", "ok", f"Valid for {days} more days.")


def dns_status(ctx: WebContext) -> Status:
    domains = ctx.accounts.list_domains()
    if not domains:
        return Status("DNS", "error", "No mail domain yet.", url_for("mail.domains"))
    cfg = ctx.config()
    now = ctx.clock()
    worst: Level = "ok"
    bad: list[str] = []
    for domain in domains:
        cached = ctx.dns_cache.get(domain)
        if cached is None or now - cached[0] > DNS_CACHE_SECONDS:
            summary = dnscheck.summary(dnscheck.check_all(cfg, domain, ctx.resolver))
            ctx.dns_cache[domain] = (now, summary)
        level = ctx.dns_cache[domain][1]
        if level != "ok":
            bad.append(domain)
        if level == "error" or (level == "warning" and worst == "ok"):
            worst = level
    if worst == "ok":
        return Status("DNS", "ok", "All records are published.")
    text = (
        (
            "Required records are missing for "
            if worst == "error"
            else "Recommended records are missing for "
        )
        + ", ".join(bad)
        + "."
    )
    return Status("DNS", worst, text, url_for("dns.page", domain=bad[0]))


def smart_status(ctx: WebContext) -> Status:
    """SMART health of the disk that holds the mail (read in the background, cached)."""
    title, link = "Disk health", url_for("hardware.storage")
    try:
        disks = ctx.disks()
    except Exception as exc:  # udev missing or confused: say so, keep the page
        log.warning("dashboard=disks-unlisted error=%s", exc)
        return Status(title, "warning", f"The disks could not be listed ({exc}).", link)
    disk = smart.disk_holding(ctx.config().mail_dir, disks)
    if disk is None:
        return Status(
            title,
            "warning",
            "Could not tell which disk holds the mail, so its health is unknown.",
            link,
            "Details",
        )
    reading = ctx.smart_cache.get(disk.path, ctx.read_smart, ctx.clock(), smart.SMART_WAIT_SECONDS)
    if reading is None:
        return Status(
            title,
            "warning",
            f"Reading the health report of {smart.describe(disk)}; reload in a minute.",
            link,
            "Details",
        )
    health = smart.judge(disk, reading)
    return Status(
        title, health.level, health.text, link, "Details" if health.level == "ok" else "Fix this"
    )


def backup_status(ctx: WebContext, daemon_up: bool = True) -> Status:
    """The last backup, as the daemon's ``backup_status`` tells it."""
    title, link = "Last backup", url_for("backup.index")
    if not daemon_up:
        return Status(
            title, "warning", "Unknown while the mail service is not running.", link, "Details"
        )
    try:
        st = ctx.ctl().call("backup_status")
    except CtlError as exc:
        log.info("dashboard=backup-status-failed error=%s", exc)
        return Status(
            title, "warning", "The backup state could not be read from the mail service.", link
        )
    if not isinstance(st, dict):
        return Status(title, "warning", "The mail service gave no backup state.", link)
    if st.get("target") in (None, "none"):
        return Status(title, "warning", "Backups are off: no backup target is set up.", link)
    scheduled = st.get("schedule", "daily") != "off"
    now = ctx.clock()
    last = mapping(st.get("last"))
    success = mapping(st.get("last_success"))
    running = "A backup is running now. " if st.get("state") == "running" else ""
    if last and last.get("ok") is False:
        error = str(last.get("error") or "no reason given")[:300].rstrip(".")
        return Status(title, "error", f"{running}The last backup failed: {error}.", link)
    finished = timestamp(success.get("finished")) or (
        timestamp(last.get("finished")) if last.get("ok") else None
    )
    if finished is None:
        text = "No backup has been made yet."
        if scheduled and st.get("time") and not running:
            text += f" The first runs at {st['time']}."
        return Status(title, "warning", running + text, link)
    age = max(now - finished, 0.0)
    when = f"{_span(age)} ago" if age >= 60 else "just now"
    off = "" if scheduled else "Automatic backups are off. "
    if age > BACKUP_ERROR_SECONDS and scheduled:
        return Status(title, "error", f"{running}The last successful backup was {when}.", link)
    if age > BACKUP_WARN_SECONDS:
        return Status(
            title, "warning", f"{running}{off}The last successful backup was {when}.", link
        )
    if st.get("state") == "interrupted":
        return Status(
            title,
            "warning",
            f"The last backup was interrupted; the one before succeeded {when}.",
            link,
        )
    if last.get("ok") and last.get("error"):
        note = str(last["error"]).rstrip(".")
        return Status(title, "warning", f"{running}Saved {when}, but {note}.", link)
    return Status(title, "ok", f"{running}{off}Saved {when}.", link, "Details")


@bp.route("/")
def index() -> str:
    ctx = web()
    daemon, status = daemon_status(ctx)
    checks = [daemon]
    if status is not None:
        size = _queue_size(ctx, status)
        if size is not None:
            checks.append(queue_status(size))
    checks += [
        disk_status(ctx),
        smart_status(ctx),
        backup_status(ctx, daemon_up=status is not None),
        cert_status(ctx),
        dns_status(ctx),
    ]
    cfg = ctx.config()
    try:
        samples = diskusage.sample(ctx)
    except OSError as exc:  # the mail file system could not be measured
        log.warning("dashboard=disk-usage-failed error=%s", exc)
        samples = diskusage.load(diskusage.usage_path(cfg))
    return render_template(
        "dashboard.html",
        checks=checks,
        hostname=cfg.hostname,
        users=len(ctx.accounts.list_users()),
        domains=ctx.accounts.list_domains(),
        usage_chart=diskusage.chart(samples),
        usage_summary=diskusage.summary(samples),
        usage_samples=len(samples),
        alerts=alerts.alerts(ctx),
        alert_to=alerts.recipient(ctx),
        alert_email=cfg.alerts.email,
        alerts_checked=alerts.last_checked(ctx),
        webmail=webmail.status(ctx),
    )


@bp.route("/system/power", methods=["POST"])
def power() -> Response:
    ctx = web()
    action = request.form.get("action", "")
    if action not in ("reboot", "shutdown"):
        flash("Unknown action.", "error")
        return redirect(url_for("dashboard.index"))
    log.info("web=power action=%s by=%s", action, current_user())
    try:
        ctx.helper.call(f"system.{action}")
    except HelperError as exc:
        log.warning("web=power-failed action=%s error=%s", action, exc)
        flash(in_words(exc, "restart" if action == "reboot" else "shut down"), "error")
        return redirect(url_for("dashboard.index"))
    flash(
        "The box is restarting; this page will work again in a minute or two."
        if action == "reboot"
        else "The box is shutting down. You can unplug it when its light stops blinking.",
        "ok",
    )
    return redirect(url_for("dashboard.index"))
