"""The dashboard's alert controls: where alert mail goes, and "Send test alert".

The banner itself is drawn by the dashboard from :func:`webui.alerts.alerts`.
"""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from appliance import config
from webui import alerts, configedit
from webui.context import web
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__)


@bp.route("/alerts/test", methods=["POST"])
def test() -> Response:
    try:
        to = alerts.send_test(web())
    except alerts.AlertError as exc:
        flash(f"The test alert was not sent: {exc}.", "error")
    else:
        log.info("web=alert-test to=%s by=%s", to, current_user())
        flash(f"A test alert is on its way to {to}.", "ok")
    return redirect(url_for("dashboard.index") + "#alerts")


@bp.route("/alerts/address", methods=["POST"])
def address() -> Response:
    ctx = web()
    value = request.form.get("email", "").strip()
    try:
        configedit.update(ctx.config_path, alerts={"email": value})
    except config.ConfigError:
        flash("Enter one email address such as you@example.org, or leave it empty.", "error")
        return redirect(url_for("dashboard.index") + "#alerts")
    saved = ctx.config().alerts.email  # as validated: lower case
    log.info("web=alert-address-set email=%s by=%s", saved or "-", current_user())
    where = saved or f"the first admin account ({alerts.recipient(ctx) or 'none yet'})"
    flash(f"Alerts now go to {where}.", "ok")
    return redirect(url_for("dashboard.index") + "#alerts")
