"""Backup pages: status and progress, snapshots, run now, restore a mailbox, recovery sheet.

Everything goes through the daemon's ctl socket (``backup_*`` commands of
appliance.backup.service): the web UI runs unprivileged and never reads the repository
password file itself. Registered by ``create_app`` with ``app.register_blueprint(bp)``;
pages live under ``/backup/``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.ctl.protocol import CtlError
from webui.context import web

log = logging.getLogger(__name__)

bp = Blueprint(
    "backup",
    __name__,
    url_prefix="/backup",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


DAEMON_DOWN = (
    "The mail service does not answer, so the backup state is unknown. It starts with the "
    "box; if it does not, restart the box."
)


def _call(cmd: str, **args: Any) -> tuple[Any, str]:
    """(result, "") or (None, error text in words) for one ctl command."""
    try:
        return web().ctl().call(cmd, **args), ""
    except CtlError as exc:
        log.info("web=backup-ctl-failed cmd=%s error=%s", cmd, exc)
        text = str(exc)
        if "not running" in text or "cannot talk" in text or "closed the connection" in text:
            return None, DAEMON_DOWN
        return None, text[:1].upper() + text[1:].rstrip(".") + "."


def _when(value: object) -> str:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return "-"


def _size(n: object) -> str:
    value = float(n) if isinstance(n, int | float) else 0.0
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


bp.add_app_template_filter(_when, "backup_when")
bp.add_app_template_filter(_size, "backup_size")

from webui.backup import target  # noqa: E402 - registers its routes on bp


@bp.route("/")
def index() -> str:
    status, status_error = _call("backup_status")
    snapshots: list[dict[str, Any]] = []
    list_error = ""
    if status and status.get("target") not in (None, "none"):
        result, list_error = _call("backup_list")
        snapshots = result or []
    users = [u.email for u in web().accounts.list_users()]
    ctx = web()
    form = {"kind": "local", "path": "", "url": "", "port": "22", "key_id": ""}
    return render_template(
        "backup/index.html",
        form=form,
        errors={},
        usb=target.usb_choices(ctx),
        public_key="",
        status=status or {},
        status_error=status_error,
        snapshots=snapshots,
        list_error=list_error,
        users=users,
        running=bool(status and status.get("state") == "running"),
    )


@bp.route("/status.json")
def status_json() -> Response | tuple[Response, int]:
    status, error = _call("backup_status")
    if error:
        return jsonify({"error": error}), 503
    return jsonify(status)


@bp.route("/run", methods=["POST"])
def run() -> Response:
    _, error = _call("backup_run")
    if error:
        flash(f"The backup did not start: {error}", "error")
    else:
        flash("The backup has started. This page shows its progress.", "ok")
    return redirect(url_for("backup.index"))


@bp.route("/restore", methods=["POST"])
def restore() -> Response:
    user = request.form.get("user", "").strip().lower()
    snapshot = request.form.get("snapshot", "").strip() or "latest"
    mailbox = request.form.get("mailbox", "").strip() or None
    if web().accounts.get_user(user) is None:
        flash("Choose one of the mailboxes on this box.", "error")
        return redirect(url_for("backup.index"))
    _, error = _call("backup_restore", user=user, snapshot=snapshot, mailbox=mailbox)
    if error:
        flash(f"The restore did not start: {error}", "error")
    else:
        flash(
            f"Restoring the mail of {user}. It appears in the folder Restored/ of that "
            "mailbox; nothing there now is changed or replaced.",
            "ok",
        )
    return redirect(url_for("backup.index"))


@bp.route("/recovery-sheet")
def recovery_sheet() -> str | tuple[str, int]:
    sheet, error = _call("backup_sheet")
    if "not initialised" in error or "no backup target" in error.lower():
        error = "No backup repository is set up yet: choose where backups go on the Backup page."
    if error:
        return render_template("backup/sheet.html", sheet=None, error=error), 503
    return render_template("backup/sheet.html", sheet=sheet, error="")


@bp.route("/recovery-sheet/ack", methods=["POST"])
def recovery_sheet_ack() -> Response:
    _, error = _call("backup_sheet_ack")
    if error:
        flash(error, "error")
    else:
        flash("Noted. The password is no longer shown on this box.", "ok")
    return redirect(url_for("backup.recovery_sheet"))
