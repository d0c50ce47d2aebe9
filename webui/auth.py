"""Sign in and out. Only admin accounts may use the web UI; failures are throttled."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from webui.context import web
from webui.security import current_user, login_session, setup_done

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "The email address or password is wrong, or this account is not an admin."


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after sign-in."""
    if not target:
        return url_for("dashboard.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    if not setup_done():
        return redirect(url_for("setup.unlock"))
    if current_user() is not None and request.method == "GET":
        return redirect(url_for("dashboard.index"))
    ctx = web()
    email = request.form.get("email", "").strip()
    error = ""
    status = 200
    if request.method == "POST":
        ip = request.remote_addr or "-"
        wait = ctx.throttle.retry_after(email, ip)
        if wait > 0:
            error = f"Too many failed attempts. Wait {int(wait) + 1} seconds and try again."
            status = 429
            log.info("web-login=throttled user=%s ip=%s", email, ip)
        else:
            user = ctx.accounts.authenticate(email, request.form.get("password", ""))
            if user is not None and user.is_admin:
                ctx.throttle.success(email, ip)
                log.info("web-login=ok user=%s ip=%s", user.email, ip)
                target = _safe_next(request.args.get("next"))
                login_session(user.email)
                return redirect(target)
            ctx.throttle.failure(email, ip)
            log.info("web-login=failed user=%s ip=%s", email, ip)
            error = GENERIC_FAILURE
            status = 403
    return render_template("login.html", email=email, error=error), status


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    user = current_user()
    session.clear()
    if user:
        log.info("web-logout user=%s", user)
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
