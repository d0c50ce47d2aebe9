"""First boot: the one-time setup secret and the wizard's first two steps.

The wizard is locked until the person types the setup secret, which only someone at
the box's console (or with `pillarbox setup-secret`) can read. The secret is created
0600 under data_dir on the web UI's first start. Step two creates the mail domain and
the first admin account; once an admin exists the wizard is closed for good and the code
file is deleted (nothing prints it any more). Wrong codes are throttled per source
address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.accounts import (
    AccountError,
    AlreadyExists,
    WeakPassword,
    normalize_domain,
)
from appliance.setupsecret import (
    forget_secret,
    secret_matches,
)
from webui.context import web
from webui.helper import HelperError
from webui.security import login_session, setup_done

log = logging.getLogger(__name__)

bp = Blueprint("setup", __name__, url_prefix="/setup")

SETUP_KEY = "setup-code"  # throttle key, paired with the source address


def suggested_domain(hostname: str) -> str:
    """mail.example.org -> example.org; a bare two-label name is kept as is."""
    labels = hostname.split(".")
    return ".".join(labels[1:]) if len(labels) > 2 else hostname


@bp.route("/", methods=["GET", "POST"])
def unlock() -> Response | str | tuple[str, int]:
    if setup_done():
        return redirect(url_for("auth.login"))
    ctx = web()
    cfg = ctx.config()
    if session.get("setup_unlocked"):
        return redirect(url_for("setup.admin"))
    error = ""
    status = 200
    if request.method == "POST":
        ip = request.remote_addr or "-"
        # Keyed on the source address: wrong guesses from one machine on the LAN must not
        # lock the owner out of the wizard from another.
        wait = ctx.throttle.retry_after(SETUP_KEY, ip)
        if wait > 0:
            error = f"Too many wrong attempts. Wait {int(wait) + 1} seconds and try again."
            status = 429
        elif secret_matches(cfg, request.form.get("secret", "")[:200]):
            ctx.throttle.success(SETUP_KEY, ip)
            session["setup_unlocked"] = True
            log.info("setup=unlocked ip=%s", ip)
            return redirect(url_for("setup.admin"))
        else:
            ctx.throttle.failure(SETUP_KEY, ip)
            log.info("setup=wrong-secret ip=%s", ip)
            error = "That is not the setup code. Check it on the box's screen and try again."
            status = 403
    return render_template("setup/unlock.html", error=error, step=1), status


@dataclass(frozen=True)
class AdminForm:
    domain: str
    local: str
    password: str
    confirm: str

    def errors(self) -> dict[str, str]:
        errs: dict[str, str] = {}
        try:
            normalize_domain(self.domain)
        except AccountError as exc:
            errs["domain"] = str(exc)
        if not self.local or "@" in self.local or any(c.isspace() for c in self.local):
            errs["local"] = "Enter the part before the @, for example 'admin' or 'anna'."
        if self.password != self.confirm:
            errs["confirm"] = "The two passwords are not the same."
        return errs


@bp.route("/admin", methods=["GET", "POST"])
def admin() -> Response | str | tuple[str, int]:
    if setup_done():
        return redirect(url_for("auth.login"))
    if not session.get("setup_unlocked"):
        return redirect(url_for("setup.unlock"))
    ctx = web()
    cfg = ctx.config()
    form = AdminForm(
        domain=request.form.get("domain", suggested_domain(cfg.hostname)).strip(),
        local=request.form.get("local", "admin").strip(),
        password=request.form.get("password", ""),
        confirm=request.form.get("confirm", ""),
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        errors = form.errors()
        if not errors:
            domain = normalize_domain(form.domain)
            email = f"{form.local}@{domain}"
            try:
                if not ctx.accounts.is_local_domain(domain):
                    ctx.accounts.add_domain(domain)
                ctx.accounts.add_user(email, form.password, is_admin=True)
            except WeakPassword as exc:
                errors["password"] = str(exc).capitalize() + "."
            except AlreadyExists:
                ctx.accounts.set_password(email, form.password)
                ctx.accounts.set_admin(email, True)
            except AccountError as exc:
                errors["local"] = str(exc)
            if not errors:
                log.info("setup=admin-created user=%s", email)
                forget_secret(cfg)
                try:  # the console banner still shows the now void secret
                    ctx.helper.call("setup.done")
                except HelperError as exc:  # dev mode has no root helper; nothing to clear
                    log.info("setup=banner-not-cleared reason=%s", exc)
                login_session(email)
                flash(f"Welcome! Your admin account {email} is ready.", "ok")
                return redirect(url_for("dns.page"))
    return render_template(
        "setup/admin.html", form=form, errors=errors, step=2
    ), 400 if errors else 200
