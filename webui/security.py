"""Sessions, CSRF tokens, login requirement and response headers.

- Every POST must carry the session's CSRF token (form field ``csrf_token`` or header
  ``X-CSRF-Token``); a missing or wrong token is answered 400 before the view runs.
  Exempt: ``CSRF_EXEMPT_ENDPOINTS`` alone (Outlook's autodiscover query).
- Sessions live server-side (webui.sessions): the cookie carries a random id. A session
  idle for longer than ``idle_timeout`` (30 min) or older than 12 h is deleted.
- Until the first admin exists every page except the setup wizard, static files and the
  public client-autoconfiguration files redirects to the wizard.
- Every mailbox user may sign in; the pages they may use are listed here, in
  ``SELF_SERVICE_BLUEPRINTS`` and ``SELF_SERVICE_ENDPOINTS``. Every other endpoint is an
  admin page: a signed-in user who is not an admin gets 403 (``/`` sends them to ``/me``),
  decided here once per request, not in each view.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from flask import Flask, abort, flash, redirect, request, session, url_for
from werkzeug.wrappers import Response

from webui.context import web
from webui.sessions import ServerSession, ServerSessionInterface

log = logging.getLogger(__name__)

# Endpoints reachable without a session (the wizard guards its own steps).
PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "setup.unlock",
        "setup.admin",
        "auth.login",
        "auth.logout",
        "twofactor.login_code",
        "clients.autoconfig",
        "clients.autoconfig_wellknown",
        "clients.autodiscover",
        "clients.phone_profile",  # like autoconfig: host names and ports, no password
        "clients.mta_sts_policy",
        "certs.acme_challenge",
        "health",
        "webmail.off",  # says webmail is off; the gateway serves /mail/ when it is on
    }
)


# POST endpoints without a CSRF token: each is public, reads the body as a query and
# changes nothing server-side (Outlook posts its autodiscover request cross-site).
CSRF_EXEMPT_ENDPOINTS = frozenset({"clients.autodiscover"})


# Endpoints every signed-in mailbox user may use (issue 20): their own pages. Nothing
# here may take another user's address: these views act on the session's user only.
SELF_SERVICE_BLUEPRINTS = frozenset(
    {
        "me",  # webui/me.py: account, app passwords, devices
        "me_mail",  # webui/me_mail.py: mail settings
        "me_migrate",  # webui/migrate/mine.py: bring your old mail, download your mail
    }
)
SELF_SERVICE_ENDPOINTS = frozenset(
    {
        "twofactor.page",
        "twofactor.start",
        "twofactor.confirm",
        "twofactor.disable",
        "twofactor.recovery",
    }
)
ADMIN_ONLY = "This page is for the admins of this box. Your own settings are under My account."


def self_service(endpoint: str) -> bool:
    """True for a page any signed-in mailbox user may open (see SELF_SERVICE_*)."""
    blueprint, dot, _ = endpoint.partition(".")
    return endpoint in SELF_SERVICE_ENDPOINTS or (
        bool(dot) and blueprint in SELF_SERVICE_BLUEPRINTS
    )


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


def new_session() -> None:
    """Forget this session server-side and go on under a new id (sign-in, sign-out)."""
    session.clear()
    if isinstance(session, ServerSession):
        session.rotate()


def login_session(email: str) -> None:
    """Start a fresh session for ``email``: new id and CSRF token (no session fixation).
    The address and browser it signed in from are kept for the user's list of sessions."""
    new_session()
    session["user"] = email
    session["pw"] = web().accounts.password_stamp(email)
    session["ip"] = (request.remote_addr or "")[:64]
    session["ua"] = request.headers.get("User-Agent", "")[:300]
    session.permanent = True
    csrf_token()


def is_admin() -> bool:
    """The signed-in user is an admin (checked against accounts.sqlite, not the session)."""
    email = current_user()
    user = web().accounts.get_user(email) if email else None
    return bool(user and user.is_admin and not user.disabled)


def reauthenticate(email: str, password: str) -> bool | None:
    """The signed-in user's account password asked again (before a sensitive change),
    under the sign-in throttle: True or False, None while throttled (unchecked)."""
    ctx = web()
    ip = request.remote_addr or "-"
    account = ctx.accounts.canonical_login(email)
    if ctx.throttle.retry_after(account, ip) > 0:
        return None
    if ctx.accounts.authenticate(email, password, app_passwords=False) is None:
        ctx.throttle.failure(account, ip)
        log.info("web=reauth-failed user=%s ip=%s", account, ip)
        return False
    ctx.throttle.success(account, ip)
    return True


def home_endpoint() -> str:
    """Where a signed-in user starts: the dashboard for admins, their own page for others."""
    return "dashboard.index" if is_admin() else "me.index"


def before_request() -> Response | None:
    ctx = web()
    if isinstance(session, ServerSession) and session.expired and session.expired_user:
        session.expired = False
        flash("You were signed out after 30 minutes without activity.", "info")
    if request.method == "POST" and request.endpoint not in CSRF_EXEMPT_ENDPOINTS:
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
    if user is None or user.disabled:
        new_session()
        return redirect(url_for("auth.login"))
    if session.get("pw") != ctx.accounts.password_stamp(email):
        # The password changed since this session signed in (web, CLI or another admin):
        # the session ends, as a logout would end it.
        new_session()
        flash("Your password was changed. Sign in with the new one.", "info")
        return redirect(url_for("auth.login"))
    # No route matched (request.url_rule is None): the 404/405 follows, it names no page.
    if not user.is_admin and request.url_rule is not None and not self_service(endpoint):
        if endpoint == "dashboard.index" and request.method == "GET":
            return redirect(url_for("me.index"))
        log.info("web=admin-only user=%s endpoint=%s", email, endpoint)
        abort(403, description=ADMIN_ONLY)
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
    app.session_interface = ServerSessionInterface(lambda: app.extensions["pillarbox"].sessions)
    app.before_request(before_request)
    app.after_request(after_request)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    app.jinja_env.globals["is_admin"] = is_admin
    app.jinja_env.globals["home_endpoint"] = home_endpoint
