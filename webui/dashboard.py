"""The dashboard: one line per thing that can go wrong, rated ok / warning / error.

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
from webui import certs, dnscheck, sizing
from webui.context import WebContext, web
from webui.helper import HelperError
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)

Level = Literal["ok", "warning", "error"]
DNS_CACHE_SECONDS = 600
QUEUE_WARN, QUEUE_ERROR = 50, 500
CERT_WARN_DAYS = 21


@dataclass(frozen=True)
class Status:
    title: str
    level: Level
    text: str
    link: str = ""


def daemon_status(ctx: WebContext) -> tuple[Status, dict[str, Any] | None]:
    try:
        result = ctx.ctl().call("status")
    except CtlError as exc:
        log.info("dashboard=daemon-unreachable error=%s", exc)
        return Status("Mail service", "error", "Not running. Mail is not being received."), None
    uptime = float(result.get("uptime", 0)) if isinstance(result, dict) else 0.0
    hours = int(uptime // 3600)
    since = f"{hours // 24} days" if hours >= 48 else f"{hours} hours" if hours else "minutes"
    return Status("Mail service", "ok", f"Running (for {since})."), result


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


@bp.route("/")
def index() -> str:
    ctx = web()
    daemon, status = daemon_status(ctx)
    checks = [daemon]
    if status is not None:
        size = _queue_size(ctx, status)
        if size is not None:
            checks.append(queue_status(size))
    checks += [disk_status(ctx), cert_status(ctx), dns_status(ctx)]
    cfg = ctx.config()
    return render_template(
        "dashboard.html",
        checks=checks,
        hostname=cfg.hostname,
        users=len(ctx.accounts.list_users()),
        domains=ctx.accounts.list_domains(),
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
        flash(
            f"The box could not {'restart' if action == 'reboot' else 'shut down'}: {exc}", "error"
        )
        return redirect(url_for("dashboard.index"))
    flash(
        "The box is restarting; this page will work again in a minute or two."
        if action == "reboot"
        else "The box is shutting down. You can unplug it when its light stops blinking.",
        "ok",
    )
    return redirect(url_for("dashboard.index"))
