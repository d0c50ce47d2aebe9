"""Domain and DNS page: host name, the records to publish with a live check, and the
outgoing-mail relay (smarthost) for connections whose port 25 is blocked."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance import config
from appliance.accounts import AccountError, normalize_domain
from appliance.dnsrecords import zone_text
from webui import configedit, dnscheck, relaycheck
from webui.context import web
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("dns", __name__)

Page = Response | str | tuple[str, int]

# Well-known relays people already have an account with; the form fills these in.
SMARTHOST_SUGGESTIONS: tuple[tuple[str, str, int, str], ...] = (
    ("Amazon SES (EU, Ireland)", "email-smtp.eu-west-1.amazonaws.com", 587, "starttls"),
    ("Brevo", "smtp-relay.brevo.com", 587, "starttls"),
    ("Mailgun (EU)", "smtp.eu.mailgun.org", 587, "starttls"),
)


def _domain_arg(domains: list[str]) -> str:
    wanted = request.args.get("domain", "")
    return wanted if wanted in domains else (domains[0] if domains else "")


@bp.route("/dns")
def page() -> Page:
    ctx = web()
    cfg = ctx.config()
    domains = ctx.accounts.list_domains()
    domain = _domain_arg(domains)
    checks = dnscheck.check_all(cfg, domain, ctx.resolver) if domain else []
    return render_template(
        "dns.html",
        cfg=cfg,
        domains=domains,
        domain=domain,
        checks=checks,
        overall=dnscheck.summary(checks),
        errors={},
        hostname=cfg.hostname,
        smarthost=cfg.smarthosts[0] if cfg.smarthosts else None,
        suggestions=SMARTHOST_SUGGESTIONS,
        form={},
    )


@bp.route("/dns/zone")
def zone() -> Page:
    """The page's records as a zone file (the same text `pillarbox dns` prints)."""
    ctx = web()
    domains = ctx.accounts.list_domains()
    domain = request.args.get("domain", "")
    if domain not in domains:
        abort(404)
    return Response(
        zone_text(ctx.config(), domain),
        mimetype="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{domain}.zone"'},
    )


def _render_with_errors(errors: dict[str, str], form: dict[str, str]) -> tuple[str, int]:
    ctx = web()
    cfg = ctx.config()
    domains = ctx.accounts.list_domains()
    return render_template(
        "dns.html",
        cfg=cfg,
        domains=domains,
        domain=_domain_arg(domains),
        checks=[],
        overall="ok",
        errors=errors,
        hostname=form.get("hostname", cfg.hostname),
        smarthost=cfg.smarthosts[0] if cfg.smarthosts else None,
        suggestions=SMARTHOST_SUGGESTIONS,
        form=form,
    ), 400


@bp.route("/dns/hostname", methods=["POST"])
def hostname() -> Page:
    ctx = web()
    value = request.form.get("hostname", "").strip().lower()
    try:
        normalize_domain(value)
        configedit.update(ctx.config_path, {"hostname": value})
    except (AccountError, config.ConfigError):
        return _render_with_errors(
            {"hostname": "Enter a full host name such as mail.example.org."},
            {"hostname": value},
        )
    log.info("web=hostname-set hostname=%s by=%s", value, current_user())
    flash(configedit.reload_daemon(ctx), "ok")
    return redirect(url_for("dns.page"))


@bp.route("/dns/smarthost", methods=["POST"])
def smarthost() -> Page:
    ctx = web()
    cfg = ctx.config()
    form = {k: request.form.get(k, "").strip() for k in ("host", "port", "tls", "username")}
    if request.form.get("action") == "remove":
        configedit.set_smarthost(ctx.config_path, None)
        flash(
            "Outgoing mail now goes directly to the receivers. " + configedit.reload_daemon(ctx),
            "ok",
        )
        return redirect(url_for("dns.page"))
    errors: dict[str, str] = {}
    try:
        normalize_domain(form["host"])
    except AccountError:
        errors["host"] = "Enter the relay's host name, e.g. smtp.example.net."
    port = int(form["port"]) if form["port"].isdigit() else 0
    if not 1 <= port <= 65535:
        errors["port"] = "Enter a port number (usually 587)."
    if form["tls"] not in ("starttls", "tls"):
        errors["tls"] = "Choose how to encrypt the connection."
    password = request.form.get("password", "")
    if password and not form["username"]:
        errors["username"] = "A password needs a user name."
    if errors:
        return _render_with_errors(errors, form)
    pw_file = cfg.data_dir / "smarthost-password"
    if form["username"] and not password and pw_file.exists():
        password = pw_file.read_text(encoding="utf-8")
    problem = relaycheck.check(
        ctx.relay_probe, form["host"], port, form["tls"], form["username"], password
    )
    if problem is not None:
        log.info("web=smarthost-test-failed host=%s port=%s", form["host"], port)
        return _render_with_errors({"relay": problem}, form)
    entry: dict[str, object] = {"host": form["host"], "port": port, "tls": form["tls"]}
    if form["username"]:
        entry["username"] = form["username"]
        if request.form.get("password", ""):
            configedit.write_private(pw_file, password)
        if pw_file.exists():
            entry["password_file"] = str(pw_file)
    try:
        configedit.set_smarthost(ctx.config_path, entry)
    except config.ConfigError as exc:
        log.warning("web=smarthost-invalid error=%s", exc)
        return _render_with_errors({"host": "These relay settings are not valid."}, form)
    log.info("web=smarthost-set host=%s port=%s by=%s", form["host"], port, current_user())
    flash(
        f"{form['host']} answered{' and accepted the login' if form['username'] else ''}. "
        "Outgoing mail now goes through it. " + configedit.reload_daemon(ctx),
        "ok",
    )
    return redirect(url_for("dns.page"))
