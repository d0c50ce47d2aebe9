"""Sign in and out. Only admin accounts may use the web UI, with their account password
(never an app password) and, when they turned it on, a second factor (webui.twofactor).
Failures are throttled per canonical account and address (appliance.accounts.throttle)."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from webui.context import web
from webui.security import current_user, login_session, new_session, setup_done
from webui.totp import TotpStore
from webui.twofactor import start_second_step

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
        # Issue 16 item 4: one budget per account whatever the spelling of the login.
        account = ctx.accounts.canonical_login(email)
        wait = ctx.throttle.retry_after(account, ip)
        if wait > 0:
            error = f"Too many failed attempts. Wait {int(wait) + 1} seconds and try again."
            status = 429
            log.info("web-login=throttled user=%s ip=%s", account, ip)
        else:
            slow = ctx.throttle.slowdown(account)
            if slow > 0:
                time.sleep(slow)  # a worker thread; bounded by the throttle's cap
            # App passwords are for the mail protocols only: the web takes the account
            # password (and the second factor when the admin has one).
            user = ctx.accounts.authenticate(
                email, request.form.get("password", ""), app_passwords=False
            )
            if user is not None and user.is_admin:
                target = _safe_next(request.args.get("next"))
                if TotpStore(ctx.webdb, ctx.clock).enabled(user.email):
                    log.info("web-login=password-ok user=%s ip=%s", user.email, ip)
                    return start_second_step(user.email, target)
                ctx.throttle.success(account, ip)
                log.info("web-login=ok user=%s ip=%s", user.email, ip)
                login_session(user.email)
                return redirect(target)
            ctx.throttle.failure(account, ip)
            log.info("web-login=failed user=%s ip=%s", account, ip)
            error = GENERIC_FAILURE
            status = 403
    return render_template("login.html", email=email, error=error), status


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    user = current_user()
    new_session()  # the server-side row is deleted: the old cookie is worth nothing
    if user:
        log.info("web-logout user=%s", user)
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
