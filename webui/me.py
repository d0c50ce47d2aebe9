"""My account: the pages every signed-in mailbox user has for their own mailbox.

Every view here acts on the session's user (``current_user()``) and takes no address
from the request, so one user can never reach another's data through these pages;
webui.security lets users who are not admins in here (``SELF_SERVICE_BLUEPRINTS``) and
nowhere else. The frame's navigation is ``NAV``: a page in another module adds itself
with one line there.

- Account: address, storage used against the limit in force (the daemon counts both:
  ctl ``mailbox.usage``), change of password (the current one is asked, under the sign-in
  throttle; the user's other web sessions end, this one stays signed in).
- App passwords: create with a label (shown once, with a QR code of the password and,
  for Apple devices, a configuration profile holding it), list with created and last
  use, revoke.
- Devices: the user's web sessions with address and browser; end one, or all others.
"""

from __future__ import annotations

import logging
from typing import Any

import segno
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.accounts import AccountError, User, WeakPassword
from appliance.ctl.protocol import CtlError
from webui.clients import mobileconfig
from webui.context import web
from webui.security import current_user, reauthenticate
from webui.sessions import ServerSession, SessionStore
from webui.useragent import summary as ua_summary

log = logging.getLogger(__name__)

bp = Blueprint("me", __name__, url_prefix="/me")

Page = Response | str | tuple[str, int]

# The frame's navigation, in order: (endpoint, label). Add a page with one line.
NAV: list[tuple[str, str]] = [
    ("me.index", "Account"),
    ("twofactor.page", "Security"),
    ("me.app_passwords", "App passwords"),
    ("me.sessions", "Devices"),
    ("me_mail.usage", "Mail"),  # webui/me_mail.py: mail settings and storage per folder
    ("me_migrate.page", "Old mail"),
]


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    return {"me_nav": NAV}


def _me() -> User:
    user = web().accounts.get_user(current_user() or "")
    if user is None:  # webui.security signed such a session out already
        abort(403)
    return user


def _this_session() -> str | None:
    return session.sid if isinstance(session, ServerSession) else None


# ------------------------------------------------------------------ account


def _usage(email: str) -> dict[str, int] | None:
    """Bytes and messages stored for ``email`` and the limit in force (their own, else
    the box's default; 0: none) as the daemon counts them; None when it does not answer."""
    try:
        got = web().ctl().call("mailbox.usage", user=email)
    except (CtlError, OSError) as exc:
        log.warning("web=usage-unavailable user=%s error=%s", email, exc)
        return None
    if not isinstance(got, dict):
        return None
    return {k: int(got.get(k) or 0) for k in ("bytes", "messages", "quota")}


def _account_page(errors: dict[str, str] | None = None, status: int | None = None) -> Page:
    """The account page; with ``errors`` answered 400 unless ``status`` says otherwise."""
    user = _me()
    usage = _usage(user.email)
    percent = None
    if usage is not None and usage["quota"]:
        percent = min(100, round(100 * usage["bytes"] / usage["quota"]))
    return render_template(
        "me/index.html",
        section="me.index",
        user=user,
        usage=usage,
        percent=percent,
        errors=errors or {},
    ), status or (400 if errors else 200)


@bp.route("", methods=["GET"])
def index() -> Page:
    return _account_page()


@bp.route("/password", methods=["POST"])
def password() -> Page:
    ctx = web()
    user = _me()
    new = request.form.get("password", "")
    ok = reauthenticate(user.email, request.form.get("current", ""))
    if ok is None:
        return _account_page({"current": "Too many failed attempts. Wait and try again."}, 429)
    if not ok:
        return _account_page({"current": "That is not your current password."}, 403)
    if new != request.form.get("confirm", ""):
        return _account_page({"confirm": "The two new passwords are not the same."})
    try:
        ctx.accounts.set_password(user.email, new)  # the same rules as for a new mailbox
    except WeakPassword as exc:
        return _account_page({"password": str(exc).capitalize() + "."})
    ended = ctx.sessions.revoke_user(user.email, keep=_this_session())
    session["pw"] = ctx.accounts.password_stamp(user.email)  # this session stays signed in
    log.info("web=password-changed user=%s by=self sessions-ended=%d", user.email, ended)
    others = f" {ended} other sign-in(s) ended." if ended else ""
    flash(f"Your password is changed. Mail apps using it need the new one.{others}", "ok")
    return redirect(url_for("me.index"))


# ------------------------------------------------------------------ app passwords


def _app_page(
    errors: dict[str, str] | None = None,
    new: tuple[int, str] | None = None,
    status: int = 200,
) -> Page:
    ctx = web()
    user = _me()
    qr = ""
    if new is not None:
        # The QR code holds the password alone: a phone's camera shows it as text to copy
        # into the mail app's password field.
        qr = segno.make(new[1], error="m").svg_data_uri(scale=5)
    return render_template(
        "me/app_passwords.html",
        section="me.app_passwords",
        user=user,
        app_passwords=ctx.accounts.list_app_passwords(user.email),
        errors=errors or {},
        label=request.form.get("label", "") if errors else "",
        new_id=new[0] if new else None,
        new_secret=new[1] if new else "",
        qr=qr,
    ), status


@bp.route("/app-passwords", methods=["GET"])
def app_passwords() -> Page:
    return _app_page()


@bp.route("/app-passwords", methods=["POST"])
def app_password_add() -> Page:
    user = _me()
    label = request.form.get("label", "").strip()
    if not label or len(label) > 100:
        return _app_page({"label": "Give the device a name, e.g. 'My phone'."}, status=400)
    try:
        app, secret = web().accounts.add_app_password(user.email, label)
    except AccountError as exc:
        return _app_page({"label": str(exc)}, status=400)
    log.info("web=app-password-added user=%s id=%s by=self", user.email, app.id)
    return _app_page(new=(app.id, secret))


@bp.route("/app-passwords/profile", methods=["POST"])
def app_password_profile() -> Response:
    """An Apple configuration profile holding the app password just made. The password
    comes back from the page that showed it (it is kept nowhere in clear) and must be one
    of this user's app passwords."""
    ctx = web()
    user = _me()
    secret = request.form.get("secret", "")[:64]
    if ctx.accounts.check_app_password(user.email, secret) is None:
        abort(403, description="That is not one of your app passwords.")
    try:
        body = mobileconfig(ctx.config(), user.email, password=secret)
    except ValueError as exc:
        abort(409, description=str(exc))
    filename = user.email.replace("@", "_at_") + ".mobileconfig"
    return Response(
        body,
        mimetype="application/x-apple-aspen-config",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/app-passwords/<int:app_id>/revoke", methods=["POST"])
def app_password_revoke(app_id: int) -> Response:
    user = _me()
    try:
        web().accounts.remove_app_password(user.email, app_id)
    except AccountError:
        flash("That app password does not exist (any more).", "error")
    else:
        log.info("web=app-password-revoked user=%s id=%s by=self", user.email, app_id)
        flash("App password revoked. The device using it can no longer sign in.", "ok")
    return redirect(url_for("me.app_passwords"))


# ------------------------------------------------------------------ devices


@bp.route("/devices", methods=["GET"])
def sessions() -> Page:
    user = _me()
    store: SessionStore = web().sessions
    mine = store.key_of(_this_session())
    rows = [
        {
            "key": s.key,
            "created": s.created,
            "seen": s.seen,
            "ip": s.ip or "unknown",
            "browser": ua_summary(s.user_agent),
            "current": s.key == mine,
        }
        for s in store.list_user(user.email)
    ]
    return render_template("me/devices.html", user=user, sessions=rows)


@bp.route("/devices/end", methods=["POST"])
def session_end() -> Response:
    user = _me()
    store = web().sessions
    key = request.form.get("key", "")[:128]
    if key and key == store.key_of(_this_session()):
        flash("That is this browser: use Sign out instead.", "info")
    elif store.end_one(user.email, key):
        flash("That device is signed out.", "ok")
    else:
        flash("That sign-in has already ended.", "info")
    return redirect(url_for("me.sessions"))


@bp.route("/devices/end-others", methods=["POST"])
def sessions_end_others() -> Response:
    user = _me()
    ended = web().sessions.revoke_user(user.email, keep=_this_session())
    log.info("web=sessions-ended user=%s count=%d by=self", user.email, ended)
    flash(f"Signed out everywhere else ({ended} sign-in(s) ended).", "ok")
    return redirect(url_for("me.sessions"))
