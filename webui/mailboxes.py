"""Domains, users, aliases and app passwords: thin views over appliance.accounts.

Each form re-renders itself with the error next to the field (status 400) on bad input;
a success redirects (POST/redirect/GET) with a flash message. An app password is shown
once, on the page that answers the POST, and never again.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.accounts import AccountError, User, WeakPassword, normalize_address
from webui.context import web
from webui.security import current_user
from webui.sessions import ServerSession
from webui.totp import TotpStore

log = logging.getLogger(__name__)

bp = Blueprint("mail", __name__)

MB = 1024 * 1024

Page = Response | str | tuple[str, int]


def parse_quota_mb(text: str) -> int:
    """'' or '0' -> 0 (unlimited); '500' -> 500 MiB in bytes; raises ValueError."""
    text = text.strip()
    if not text:
        return 0
    value = int(text)
    if value < 0 or value > 16 * 1024 * 1024:
        raise ValueError(text)
    return value * MB


def _admins(users: list[User]) -> list[str]:
    return [u.email for u in users if u.is_admin and not u.disabled]


# ------------------------------------------------------------------ domains


@bp.route("/domains", methods=["GET", "POST"])
def domains() -> Page:
    ctx = web()
    errors: dict[str, str] = {}
    name = request.form.get("domain", "").strip()
    if request.method == "POST":
        try:
            added = ctx.accounts.add_domain(name)
        except AccountError as exc:
            errors["domain"] = str(exc)
        else:
            log.info("web=domain-added domain=%s by=%s", added, current_user())
            flash(f"Domain {added} added. Now set up its DNS records.", "ok")
            return redirect(url_for("dns.page", domain=added))
    users = ctx.accounts.list_users()
    counts = {d: sum(1 for u in users if u.domain == d) for d in ctx.accounts.list_domains()}
    return render_template(
        "mail/domains.html", counts=counts, errors=errors, name=name
    ), 400 if errors else 200


@bp.route("/domains/<domain>/delete", methods=["POST"])
def domain_delete(domain: str) -> Response:
    try:
        web().accounts.remove_domain(domain)
    except AccountError as exc:
        flash(str(exc), "error")
    else:
        log.info("web=domain-removed domain=%s by=%s", domain, current_user())
        flash(f"Domain {domain} removed.", "ok")
    return redirect(url_for("mail.domains"))


# ------------------------------------------------------------------ users


@bp.route("/users", methods=["GET", "POST"])
def users() -> Page:
    ctx = web()
    form = {
        "local": request.form.get("local", "").strip(),
        "domain": request.form.get("domain", ""),
        "quota": request.form.get("quota", ""),
        "admin": request.form.get("admin", ""),
    }
    errors: dict[str, str] = {}
    domains = ctx.accounts.list_domains()
    if request.method == "POST":
        password = request.form.get("password", "")
        quota = 0
        try:
            quota = parse_quota_mb(form["quota"])
        except ValueError:
            errors["quota"] = "Enter a whole number of megabytes (0 means no limit)."
        if form["domain"] not in domains:
            errors["domain"] = "Choose one of your domains."
        if password != request.form.get("confirm", ""):
            errors["confirm"] = "The two passwords are not the same."
        if not errors:
            email = f"{form['local']}@{form['domain']}"
            try:
                user = ctx.accounts.add_user(
                    email, password, quota_bytes=quota, is_admin=bool(form["admin"])
                )
            except WeakPassword as exc:
                errors["password"] = str(exc).capitalize() + "."
            except AccountError as exc:
                errors["local"] = str(exc)
            else:
                log.info("web=user-added user=%s by=%s", user.email, current_user())
                flash(f"Mailbox {user.email} created.", "ok")
                return redirect(url_for("mail.users"))
    return render_template(
        "mail/users.html",
        users=ctx.accounts.list_users(),
        domains=domains,
        form=form,
        errors=errors,
        default_quota_mb=ctx.config().limits.default_quota // MB,
    ), 400 if errors else 200


def _user_or_404(email: str) -> User:
    user = web().accounts.get_user(email)
    if user is None:
        abort(404)
    return user


@bp.route("/users/<email>", methods=["GET"])
def user(email: str) -> Page:
    return _user_page(_user_or_404(email))


def _user_page(user: User, errors: dict[str, str] | None = None, new_app: str = "") -> Page:
    ctx = web()
    return render_template(
        "mail/user.html",
        user=user,
        errors=errors or {},
        app_passwords=ctx.accounts.list_app_passwords(user.email),
        aliases=[a for a in ctx.accounts.list_aliases() if a.target == user.email],
        new_app=new_app,
        label=request.form.get("label", ""),
        quota_mb=user.quota_bytes // MB,
        is_self=user.email == current_user(),
    ), 400 if errors else 200


@bp.route("/users/<email>/password", methods=["POST"])
def user_password(email: str) -> Page:
    user = _user_or_404(email)
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        return _user_page(user, {"confirm": "The two passwords are not the same."})
    try:
        web().accounts.set_password(user.email, password)
    except WeakPassword as exc:
        return _user_page(user, {"password": str(exc).capitalize() + "."})
    # Issue 16: a new password ends the user's other web sessions (this one stays).
    keep = session.sid if isinstance(session, ServerSession) else None
    web().sessions.revoke_user(user.email, keep=keep)
    if user.email == current_user():  # this session stays signed in under the new password
        session["pw"] = web().accounts.password_stamp(user.email)
    log.info("web=password-changed user=%s by=%s", user.email, current_user())
    flash(f"Password for {user.email} changed.", "ok")
    return redirect(url_for("mail.user", email=user.email))


@bp.route("/users/<email>/quota", methods=["POST"])
def user_quota(email: str) -> Page:
    user = _user_or_404(email)
    try:
        quota = parse_quota_mb(request.form.get("quota", ""))
    except ValueError:
        return _user_page(user, {"quota": "Enter a whole number of megabytes (0 means no limit)."})
    web().accounts.set_quota(user.email, quota)
    flash(f"Storage limit for {user.email} saved.", "ok")
    return redirect(url_for("mail.user", email=user.email))


@bp.route("/users/<email>/delete", methods=["POST"])
def user_delete(email: str) -> Page:
    ctx = web()
    user = _user_or_404(email)
    if request.form.get("confirm", "").strip().lower() != user.email:
        return _user_page(user, {"delete": f"Type {user.email} to confirm."})
    if user.email == current_user():
        return _user_page(user, {"delete": "You cannot delete the account you are signed in with."})
    if user.is_admin and _admins(ctx.accounts.list_users()) == [user.email]:
        return _user_page(user, {"delete": "This is the last admin account; it must stay."})
    ctx.accounts.remove_user(user.email)
    ctx.sessions.revoke_user(user.email)
    TotpStore(ctx.webdb, ctx.clock).disable(user.email)  # a new account of that name starts clean
    log.info("web=user-removed user=%s by=%s", user.email, current_user())
    flash(f"Mailbox {user.email} deleted. Its stored mail stays on the disk.", "ok")
    return redirect(url_for("mail.users"))


@bp.route("/users/<email>/disabled", methods=["POST"])
def user_disabled(email: str) -> Page:
    """Switch a mailbox off (no sign-in, no new mail) or back on, keeping its mail."""
    ctx = web()
    user = _user_or_404(email)
    disable = request.form.get("disabled") == "1"
    if disable and user.email == current_user():
        return _user_page(user, {"disable": "You cannot switch off the account you use."})
    if disable and user.is_admin and _admins(ctx.accounts.list_users()) == [user.email]:
        return _user_page(user, {"disable": "This is the last admin account; it must stay on."})
    ctx.accounts.set_disabled(user.email, disable)
    if disable:
        ctx.sessions.revoke_user(user.email)
    log.info("web=user-disabled user=%s disabled=%s by=%s", user.email, disable, current_user())
    flash(f"{user.email} is switched {'off' if disable else 'on again'}.", "ok")
    return redirect(url_for("mail.user", email=user.email))


@bp.route("/users/<email>/app-passwords", methods=["POST"])
def app_password_add(email: str) -> Page:
    user = _user_or_404(email)
    label = request.form.get("label", "").strip()
    if not label or len(label) > 100:
        return _user_page(user, {"label": "Give the device a name, e.g. 'Anna's phone'."})
    app, secret = web().accounts.add_app_password(user.email, label)
    log.info("web=app-password-added user=%s id=%s by=%s", user.email, app.id, current_user())
    return _user_page(user, new_app=secret)


@bp.route("/users/<email>/app-passwords/<int:app_id>/delete", methods=["POST"])
def app_password_delete(email: str, app_id: int) -> Response:
    user = _user_or_404(email)
    try:
        web().accounts.remove_app_password(user.email, app_id)
    except AccountError as exc:
        flash(str(exc), "error")
    else:
        flash("App password revoked. Devices using it can no longer sign in.", "ok")
    return redirect(url_for("mail.user", email=user.email))


# ------------------------------------------------------------------ aliases


@bp.route("/aliases", methods=["GET", "POST"])
def aliases() -> Page:
    ctx = web()
    form = {
        "source": request.form.get("source", "").strip(),
        "target": request.form.get("target", "").strip(),
    }
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            normalize_address(form["target"])
        except AccountError as exc:
            errors["target"] = str(exc)
        if not errors:
            try:
                alias = ctx.accounts.add_alias(form["source"], form["target"])
            except AccountError as exc:
                errors["source"] = str(exc)
            else:
                log.info("web=alias-added source=%s target=%s", alias.source, alias.target)
                flash(f"Mail to {alias.source} now goes to {alias.target}.", "ok")
                return redirect(url_for("mail.aliases"))
    return render_template(
        "mail/aliases.html",
        aliases=ctx.accounts.list_aliases(),
        form=form,
        errors=errors,
        domains=ctx.accounts.list_domains(),
    ), 400 if errors else 200


@bp.route("/aliases/delete", methods=["POST"])
def alias_delete() -> Response:
    try:
        web().accounts.remove_alias(request.form.get("source", ""), request.form.get("target"))
    except AccountError as exc:
        flash(str(exc), "error")
    else:
        flash("Alias removed.", "ok")
    return redirect(url_for("mail.aliases"))
