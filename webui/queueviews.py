"""Outgoing mail waiting for delivery: the daemon's queue, read and steered over ctl."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.ctl.protocol import CtlError
from webui.context import web
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("queue", __name__)

QUEUE_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


@bp.route("/queue")
def page() -> str:
    entries: list[dict[str, Any]] = []
    error = ""
    try:
        result = web().ctl().call("queue.list")
        entries = [e for e in result if isinstance(e, dict)] if isinstance(result, list) else []
    except CtlError as exc:
        log.info("web=queue-unavailable error=%s", exc)
        error = "The mail service is not running, so the queue cannot be shown."
    return render_template("queue.html", entries=entries, error=error, when=_when)


def _call(cmd: str, done: str, **args: Any) -> Response:
    try:
        web().ctl().call(cmd, **args)
    except CtlError as exc:
        log.info("web=queue-action-failed cmd=%s error=%s", cmd, exc)
        text = str(exc)
        if "not running" in text or "cannot talk" in text or "closed the connection" in text:
            text = "the mail service is not running"
        flash(f"That did not work: {text}.", "error")
    else:
        log.info("web=queue-action cmd=%s by=%s", cmd, current_user())
        flash(done, "ok")
    return redirect(url_for("queue.page"))


@bp.route("/queue/flush", methods=["POST"])
def flush() -> Response:
    return _call("queue.flush", "All waiting mail will be tried again now.")


@bp.route("/queue/<queue_id>/retry", methods=["POST"])
def retry(queue_id: str) -> Response:
    if not QUEUE_ID.match(queue_id):
        flash("Unknown message.", "error")
        return redirect(url_for("queue.page"))
    return _call("queue.retry", "The message will be tried again now.", id=queue_id)


@bp.route("/queue/<queue_id>/delete", methods=["POST"])
def delete(queue_id: str) -> Response:
    if not QUEUE_ID.match(queue_id) or request.form.get("confirm") != "yes":
        flash("Tick the box to confirm that the message should be deleted.", "error")
        return redirect(url_for("queue.page"))
    return _call(
        "queue.delete", "The message was deleted without notifying the sender.", id=queue_id
    )
