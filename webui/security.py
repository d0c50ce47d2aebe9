"""Sessions, CSRF tokens, login requirement and response headers.

- Every POST must carry the session's CSRF token (form field ``csrf_token`` or header
  ``X-CSRF-Token``); a missing or wrong token is answered 400 before the view runs.
- A session idle for longer than ``idle_timeout`` (30 min) is cleared.
- Until the first admin exists every page except the setup wizard, static files and the
  public client-autoconfiguration files redirects to the wizard.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from flask import Flask, abort, flash, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response

from webui.context import web

log = logging.getLogger(__name__)

# Endpoints reachable without a session (the wizard guards its own steps).
PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "setup.unlock",
        "setup.admin",
        "auth.login",
        "auth.logout",
        "clients.autoconfig",
        "clients.autoconfig_wellknown",
        "clients.mta_sts_policy",
        "certs.acme_challenge",
        "health",
    }
)


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the page itself came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _check_csrf() -> None:
    expected = session.get("csrf")
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        log.warning("csrf=rejected path=%s ip=%s", request.path, request.remote_addr)
        abort(400, description="The form has expired. Go back, reload the page and try again.")


def setup_done() -> bool:
    return any(u.is_admin and not u.disabled for u in web().accounts.list_users())


def current_user() -> str | None:
    user = session.get("user")
    return user if isinstance(user, str) else None


def login_session(email: str) -> None:
    """Start a fresh session for ``email`` (new CSRF token: no session fixation)."""
    session.clear()
    session["user"] = email
    session["seen"] = web().clock()
    session.permanent = True
    csrf_token()


def before_request() -> Response | None:
    ctx = web()
    now = ctx.clock()
    seen = session.get("seen")
    if isinstance(seen, int | float) and now - seen > ctx.idle_timeout:
        had_user = current_user() is not None
        session.clear()
        if had_user:
            flash("You were signed out after 30 minutes without activity.", "info")
    if session:
        session["seen"] = now
    if request.method == "POST":
        _check_csrf()
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC_ENDPOINTS:
        return None
    if not setup_done():
        return redirect(url_for("setup.unlock"))
    email = current_user()
    if email is None:
        return redirect(url_for("auth.login", next=request.path))
    user = ctx.accounts.get_user(email)
    if user is None or not user.is_admin or user.disabled:
        session.clear()
        return redirect(url_for("auth.login"))
    return None


def after_request(response: Response) -> Response:
    h = response.headers
    h.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        h.setdefault("Cache-Control", "no-store")
    return response


def install(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.before_request(before_request)
    app.after_request(after_request)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
