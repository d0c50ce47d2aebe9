"""First boot: the one-time setup secret and the wizard's first two steps.

The wizard is locked until the person types the setup secret, which only someone at
the box's console (or with `pillarbox setup-secret`) can read. The secret is created
0600 under data_dir on the web UI's first start. Step two creates the mail domain and
the first admin account; once an admin exists the wizard is closed for good and the code
file is deleted (nothing prints it any more). Wrong codes are throttled per source
address.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance import config
from appliance.accounts import (
    AccountError,
    Accounts,
    AlreadyExists,
    WeakPassword,
    normalize_domain,
)
from webui.context import web
from webui.helper import HelperError
from webui.security import login_session, setup_done

log = logging.getLogger(__name__)

bp = Blueprint("setup", __name__, url_prefix="/setup")

SECRET_FILE = "setup-secret"  # noqa: S105 - a file name, not a secret
SETUP_KEY = "setup-code"  # throttle key, paired with the source address
# No 0/O, 1/I/L: the secret is read off a screen and typed by hand.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_GROUPS, _GROUP_LEN = 5, 4  # 20 symbols ~ 99 bits


def secret_path(cfg: config.Config) -> Path:
    return cfg.data_dir / SECRET_FILE


def _new_secret() -> str:
    groups = ("".join(secrets.choice(_ALPHABET) for _ in range(_GROUP_LEN)) for _ in range(_GROUPS))
    return "-".join(groups)


def read_or_create_secret(cfg: config.Config) -> str:
    """The setup secret, created (mode 0600) when missing. Called by `pillarbox setup-secret`."""
    path = secret_path(cfg)
    try:
        text = path.read_text(encoding="ascii").strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = _new_secret()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    log.info("setup=secret-created path=%s", path)
    return value


def box_is_set_up(cfg: config.Config) -> bool:
    """An enabled admin exists: the wizard is closed and no setup code is needed."""
    if not cfg.accounts_db.exists():  # not made here: the CLI may run as another user
        return False
    accounts = Accounts(cfg.accounts_db)
    try:
        return any(u.is_admin and not u.disabled for u in accounts.list_users())
    finally:
        accounts.close()


def console_secret(cfg: config.Config) -> str | None:
    """The setup code to show on the console, or None once the box is set up (and the
    file, if any, is removed). Used by the web server's start and `pillarbox setup-secret`."""
    if box_is_set_up(cfg):
        forget_secret(cfg)
        return None
    return read_or_create_secret(cfg)


def forget_secret(cfg: config.Config) -> None:
    """Setup is done: the code unlocks nothing any more and is not kept."""
    path = secret_path(cfg)
    if path.exists():
        path.unlink(missing_ok=True)
        log.info("setup=secret-removed path=%s", path)


def _canonical(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


def secret_matches(cfg: config.Config, attempt: str) -> bool:
    expected = _canonical(read_or_create_secret(cfg))
    return hmac.compare_digest(expected.encode(), _canonical(attempt).encode())


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
