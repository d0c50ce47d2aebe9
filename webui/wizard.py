"""The setup checklist after the admin account: DNS, mail disk, certificate, backup, mail
apps, finish. Each step is a page that exists anyway; the checklist says which are done,
skipped or left, and a bar on each step's page leads on to the next.

The steps are listed once, in :data:`STEPS` (another step is one more line there). A
step counts as done when its check says so (the certificate is from a CA, a backup target
answers ...) or when the admin marked it done; "skip" is remembered too. The marks are kept
in ``<data_dir>/wizard.json`` (written atomically), so they survive a restart.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.ctl.protocol import CtlError
from webui import certs, dashboard, smart
from webui.context import WebContext, web
from webui.security import current_user, is_admin

log = logging.getLogger(__name__)

bp = Blueprint("wizard", __name__, url_prefix="/setup/checklist")

STATE_FILE = "wizard.json"
State = Literal["done", "skipped", "left"]


def _dns_ok(ctx: WebContext) -> bool:
    return dashboard.dns_status(ctx).level != "error"


def _storage_ok(ctx: WebContext) -> bool:
    try:
        disk = smart.disk_holding(ctx.config().mail_dir, ctx.disks())
    except Exception as exc:  # udev missing: unknown, not done
        log.info("wizard=disks-unlisted error=%s", exc)
        return False
    return disk is not None and not disk.holds_system


def _cert_ok(ctx: WebContext) -> bool:
    cfg = ctx.config()
    info = certs.read_installed(cfg.tls.cert)
    return info is not None and not info.self_signed and info.covers(cfg.hostname)


def _backup_ok(ctx: WebContext) -> bool:
    try:
        st = ctx.ctl().call("backup_status")
    except CtlError:
        return False
    return isinstance(st, dict) and st.get("target") not in (None, "none")


def _never(ctx: WebContext) -> bool:
    return False


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    endpoint: str  # the page that does the step
    what: str  # one sentence on the checklist
    check: Callable[[WebContext], bool]  # done by itself (the admin may also mark it)


STEPS: tuple[Step, ...] = (
    Step(
        "dns", "Domain and DNS", "dns.page", "Publish the records so mail finds this box.", _dns_ok
    ),
    Step(
        "storage", "Mail disk", "hardware.storage", "Keep mail on a disk of its own.", _storage_ok
    ),
    Step("certificate", "Certificate", "certs.page", "A certificate mail apps trust.", _cert_ok),
    Step("backup", "Backup", "backup.index", "Nightly encrypted backups elsewhere.", _backup_ok),
    Step("apps", "Mail apps", "clients.page", "Set up phones and computers.", _never),
)


def _path(ctx: WebContext) -> Path:
    return ctx.config().data_dir / STATE_FILE


def load(ctx: WebContext) -> dict[str, Any]:
    try:
        data = json.loads(_path(ctx).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"marks": {}, "finished": False}
    marks = data.get("marks") if isinstance(data, dict) else None
    return {
        "marks": marks if isinstance(marks, dict) else {},
        "finished": bool(data.get("finished")) if isinstance(data, dict) else False,
    }


def _save(ctx: WebContext, data: dict[str, Any]) -> None:
    path = _path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def states(ctx: WebContext) -> list[tuple[Step, State]]:
    marks = load(ctx)["marks"]
    out: list[tuple[Step, State]] = []
    for step in STEPS:
        mark = marks.get(step.key)
        if mark == "done" or step.check(ctx):
            out.append((step, "done"))
        else:
            out.append((step, "skipped" if mark == "skipped" else "left"))
    return out


def _step(key: str) -> Step | None:
    return next((s for s in STEPS if s.key == key), None)


def _next_url(ctx: WebContext, after: str) -> str:
    """The page of the first step after ``after`` that is not done, else the finish page."""
    keys = [s.key for s in STEPS]
    later = keys[keys.index(after) + 1 :] if after in keys else keys
    for step, state in states(ctx):
        if step.key in later and state != "done":
            return url_for(step.endpoint)
    return url_for("wizard.finish")


@bp.app_context_processor
def _bar() -> dict[str, Any]:
    """``wizard_bar()`` for base.html: the step this page is, while setup is not finished."""

    def wizard_bar() -> dict[str, Any] | None:
        if not current_user() or not is_admin():
            return None
        step = next((s for s in STEPS if s.endpoint == request.endpoint), None)
        if step is None:
            return None
        ctx = web()
        if load(ctx)["finished"] and request.args.get("wizard") is None:
            return None
        return {"step": step, "number": STEPS.index(step) + 1, "count": len(STEPS)}

    def wizard_open() -> list[Step]:
        """The steps not done yet, for the overview's reminder."""
        if not current_user() or not is_admin():
            return []
        return [step for step, state in states(web()) if state != "done"]

    return {"wizard_bar": wizard_bar, "wizard_open": wizard_open}


@bp.route("/")
def overview() -> str:
    ctx = web()
    rows = states(ctx)
    left = [s for s, state in rows if state != "done"]
    return render_template(
        "wizard/overview.html", rows=rows, left=left, finished=load(ctx)["finished"]
    )


@bp.route("/<name>", methods=["POST"])
def mark(name: str) -> Response:
    """Form field ``action``: done, skip (both lead on to the next step) or reopen."""
    ctx = web()
    key, action = name, request.form.get("action", "")
    step = _step(key)
    if step is None or action not in ("done", "skip", "reopen"):
        return redirect(url_for("wizard.overview"))
    data = load(ctx)
    if action == "reopen":
        data["marks"].pop(key, None)
    else:
        data["marks"][key] = "done" if action == "done" else "skipped"
    _save(ctx, data)
    log.info("web=wizard-step step=%s action=%s by=%s", key, action, current_user())
    if action == "reopen":
        return redirect(url_for(step.endpoint))
    return redirect(_next_url(ctx, key))


@bp.route("/finish", methods=["GET", "POST"])
def finish() -> Response | str:
    ctx = web()
    if request.method == "POST":
        data = load(ctx)
        data["finished"] = True
        _save(ctx, data)
        log.info("web=wizard-finished by=%s", current_user())
        return redirect(url_for("dashboard.index"))
    rows = states(ctx)
    return render_template(
        "wizard/finish.html", left=[(s, st) for s, st in rows if st != "done"], rows=rows
    )
