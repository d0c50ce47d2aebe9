"""Sign in and out. Every mailbox user signs in with their account password (never an
app password) and, when they turned it on, a second factor (webui.twofactor). Admins
land on the dashboard, everyone else on their own page (webui.me); which pages a user who
is not an admin may open is decided in webui.security.
Failures are throttled per canonical account and address (appliance.accounts.throttle)."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.accounts import User
from webui.context import WebContext, web
from webui.security import current_user, home_endpoint, login_session, new_session, setup_done
from webui.totp import TotpStore
from webui.twofactor import start_second_step

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "The email address or password is wrong."


# Past the per-account ceiling every attempt waits throttle.slowdown() (up to 8 s) in a
# worker thread; at most this many wait at once, so guessing at one account cannot hold
# every worker of the web server.
SLOWED_AT_ONCE = 4
_slowed = threading.BoundedSemaphore(SLOWED_AT_ONCE)
BUSY = "Sign-in is busy right now. Wait a few seconds and try again."


class _Busy(Exception):
    pass


def _check_password(ctx: WebContext, account: str, email: str, password: str) -> User | None:
    slow = ctx.throttle.slowdown(account)
    if slow > 0:
        if not _slowed.acquire(blocking=False):
            log.info("web-login=busy user=%s", account)
            raise _Busy
        try:
            time.sleep(slow)
        finally:
            _slowed.release()
    # App passwords are for the mail protocols only: the web takes the account password
    # (and the second factor when the admin has one).
    return ctx.accounts.authenticate(email, password, app_passwords=False)


def _safe_next(target: str | None, user: User) -> str:
    """Only same-site paths: never redirect to another host after sign-in."""
    home = url_for("dashboard.index" if user.is_admin else "me.index")
    if not target:
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return home
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    if not setup_done():
        return redirect(url_for("setup.unlock"))
    if current_user() is not None and request.method == "GET":
        return redirect(url_for(home_endpoint()))
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
            try:
                user = _check_password(ctx, account, email, request.form.get("password", ""))
            except _Busy:
                return render_template("login.html", email=email, error=BUSY), 429
            if user is not None:
                target = _safe_next(request.args.get("next"), user)
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
