"""Two-step sign-in for every mailbox user (optional, per user): enrol with a QR code,
confirm with a first code, keep ten one-time recovery codes (new ones, replacing the
old, take the password); turning it off takes the password and a code.

The sign-in's second step (``/login/code``) follows a correct password when the user has
it on: the session holds only the pending address for ``PENDING_SECONDS``, and wrong
codes count toward the same per-(account, address) throttle as wrong passwords.
"""

from __future__ import annotations

import logging

import segno
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from webui.context import web
from webui.security import current_user, login_session, reauthenticate
from webui.sessions import ServerSession
from webui.totp import TotpStore, provisioning_uri

log = logging.getLogger(__name__)

bp = Blueprint("twofactor", __name__)

PENDING_SECONDS = 300.0
ISSUER = "Pillarbox"

Page = Response | str | tuple[str, int]


def store() -> TotpStore:
    ctx = web()
    return TotpStore(ctx.webdb, ctx.clock)


def start_second_step(email: str, target: str) -> Response:
    """After a correct password: ask for the code before the session is signed in."""
    session.clear()
    session["pending_2fa"] = {"user": email, "at": web().clock(), "next": target}
    return redirect(url_for("twofactor.login_code"))


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> Page:
    ctx = web()
    pending = session.get("pending_2fa")
    if (
        not isinstance(pending, dict)
        or not isinstance(pending.get("user"), str)
        or not isinstance(pending.get("at"), int | float)
        or ctx.clock() - pending["at"] > PENDING_SECONDS
    ):
        session.pop("pending_2fa", None)
        return redirect(url_for("auth.login"))
    email: str = pending["user"]
    error, status = "", 200
    if request.method == "POST":
        ip = request.remote_addr or "-"
        account = ctx.accounts.canonical_login(email)
        wait = max(ctx.throttle.retry_after(account, ip), store().locked_for(email))
        if wait > 0:
            error = f"Too many failed attempts. Wait {int(wait) + 1} seconds and try again."
            status = 429
        elif store().verify(email, request.form.get("code", "")[:64]):
            ctx.throttle.success(account, ip)
            target = str(pending.get("next") or url_for("dashboard.index"))
            log.info("web-login=ok user=%s ip=%s second-factor=yes", email, ip)
            login_session(email)
            return redirect(target)
        else:
            ctx.throttle.failure(account, ip)
            log.info("web-login=bad-code user=%s ip=%s", email, ip)
            error, status = "That code is wrong or was already used.", 403
    return render_template("login_code.html", error=error), status


def _refused(totp: TotpStore, email: str, error: str) -> Page:
    """The two-step page again with ``error`` (403): a password or code was refused."""
    return render_template(
        "two_step.html",
        enabled=totp.enabled(email),
        secret=None,
        uri="",
        qr="",
        left=totp.recovery_left(email),
        codes=None,
        error=error,
    ), 403


def _codes_shown(codes: list[str]) -> str:
    """The two-step page showing new recovery codes, once."""
    return render_template(
        "two_step.html", enabled=True, secret=None, uri="", qr="", left=len(codes), codes=codes
    )


@bp.route("/account/two-step", methods=["GET"])
def page() -> Page:
    email = current_user() or ""
    totp = store()
    secret = totp.pending_secret(email)
    qr = uri = ""
    if secret is not None:
        uri = provisioning_uri(secret, email, ISSUER)
        qr = segno.make(uri, error="m").svg_data_uri(scale=4)
    return render_template(
        "two_step.html",
        enabled=totp.enabled(email),
        secret=secret,
        uri=uri,
        qr=qr,
        left=totp.recovery_left(email),
        codes=None,
        error="",
    )


@bp.route("/account/two-step/start", methods=["POST"])
def start() -> Response:
    try:
        store().begin(current_user() or "")
    except ValueError:
        flash("Two-step sign-in is already on.", "info")
    return redirect(url_for("twofactor.page"))


@bp.route("/account/two-step/confirm", methods=["POST"])
def confirm() -> Page:
    email = current_user() or ""
    totp = store()
    codes = totp.confirm(email, request.form.get("code", "")[:64])
    if codes is None:
        secret = totp.pending_secret(email)
        if secret is None:
            return redirect(url_for("twofactor.page"))
        uri = provisioning_uri(secret, email, ISSUER)
        return render_template(
            "two_step.html",
            enabled=False,
            secret=secret,
            uri=uri,
            qr=segno.make(uri, error="m").svg_data_uri(scale=4),
            left=0,
            codes=None,
            error="That code is wrong. Check the clock of your phone and try the next code.",
        ), 400
    keep = session.sid if isinstance(session, ServerSession) else None
    web().sessions.revoke_user(email, keep=keep)  # a stolen session does not outlive this
    log.info("web=two-step-on user=%s", email)
    return _codes_shown(codes)


@bp.route("/account/two-step/recovery", methods=["POST"])
def recovery() -> Page:
    """Ten new recovery codes in place of the old ones (the password is asked again)."""
    email = current_user() or ""
    totp = store()
    ok = reauthenticate(email, request.form.get("password", ""))
    codes = totp.regenerate_recovery(email) if ok else None
    if codes is None:
        error = (
            "Too many failed attempts. Wait a few minutes and try again."
            if ok is None
            else "The password is wrong."
            if not ok
            else "Two-step sign-in is off."
        )
        return _refused(totp, email, error)
    log.info("web=recovery-codes-renewed user=%s", email)
    return _codes_shown(codes)


@bp.route("/account/two-step/disable", methods=["POST"])
def disable() -> Page:
    ctx = web()
    email = current_user() or ""
    ip = request.remote_addr or "-"
    account = ctx.accounts.canonical_login(email)
    totp = store()
    error = ""
    if ctx.throttle.retry_after(account, ip) > 0 or totp.locked_for(email) > 0:
        error = "Too many failed attempts. Wait a few minutes and try again."
    else:
        user = ctx.accounts.authenticate(
            email, request.form.get("password", ""), app_passwords=False
        )
        if user is not None and totp.verify(email, request.form.get("code", "")[:64]):
            ctx.throttle.success(account, ip)
            totp.disable(email)
            log.info("web=two-step-off user=%s ip=%s", email, ip)
            flash("Two-step sign-in is off.", "ok")
            return redirect(url_for("twofactor.page"))
        ctx.throttle.failure(account, ip)
        error = "The password or the code is wrong."
    return _refused(totp, email, error)
