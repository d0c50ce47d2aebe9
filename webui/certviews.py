"""Certificate page: details and expiry, a free certificate over ACME (HTTP-01), upload of
a certificate + key, self-signed renewal."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.accounts import AccountError, normalize_address
from appliance.tls import generate_self_signed
from webui import acme_issue, acme_renew, certcheck, certs, configedit
from webui.context import WebContext, web
from webui.helper import HelperError
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("certs", __name__)

Page = Response | str | tuple[str, int]
MAX_PEM = 64 * 1024
# Where the root helper installs certificates (see firmware-hooks/root_helper.py TLS_DIR).
HELPER_TLS_DIR = "/var/lib/pillarbox/tls"


def _writable(directory: Path) -> bool:
    """True when the directory (or, if missing, its nearest existing parent) is writable."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return os.access(candidate, os.W_OK)
    return False


def _now() -> dt.datetime:
    return dt.datetime.fromtimestamp(web().clock(), dt.UTC)


def _page(
    errors: dict[str, str] | None = None, findings: list[certcheck.Finding] | None = None
) -> Page:
    cfg = web().config()
    info = certs.read_installed(cfg.tls.cert)
    return render_template(
        "certificate.html",
        info=info,
        now=_now(),
        hostname=cfg.hostname,
        covers=info.covers(cfg.hostname) if info else False,
        errors=errors or {},
        name_problem=certcheck.private_name(cfg.hostname),
        findings=findings,
        ready=findings is not None and all(f.level == "ok" for f in findings),
    ), 400 if errors else 200


@bp.route("/certificate/check", methods=["POST"])
def check() -> Page:
    """Public name, address record, port 80: before asking Let's Encrypt."""
    ctx = web()
    cfg = ctx.config()
    findings = certcheck.check(cfg.hostname, ctx.resolver, ctx.challenges, ctx.acme.http_port)
    log.info(
        "web=cert-precheck host=%s result=%s",
        cfg.hostname,
        ",".join(f"{f.title}:{f.level}" for f in findings),
    )
    return _page(findings=findings)


@bp.route("/certificate")
def page() -> Page:
    return _page()


@bp.route("/certificate/upload", methods=["POST"])
def upload() -> Page:
    ctx = web()
    cfg = ctx.config()
    cert_file, key_file = request.files.get("cert"), request.files.get("key")
    if cert_file is None or not cert_file.filename:
        return _page({"cert": "Choose the certificate file (often fullchain.pem or .crt)."})
    if key_file is None or not key_file.filename:
        return _page({"key": "Choose the private key file (often privkey.pem or .key)."})
    cert_pem, key_pem = cert_file.read(MAX_PEM + 1), key_file.read(MAX_PEM + 1)
    if len(cert_pem) > MAX_PEM or len(key_pem) > MAX_PEM:
        return _page({"cert": "These files are too large to be a certificate and key."})
    try:
        certs.validate_upload(cert_pem, key_pem, cfg.hostname, _now())
    except certs.CertProblem as exc:
        return _page({"cert": str(exc)})
    try:
        applied = install(ctx, cert_pem, key_pem)
    except certs.CertProblem as exc:
        return _page({"cert": str(exc)})
    log.info("web=cert-uploaded by=%s", current_user())
    flash("Certificate installed. " + applied, "ok")
    return redirect(url_for("certs.page"))


def install(ctx: WebContext, cert_pem: bytes, key_pem: bytes) -> str:
    """Put a checked certificate where the config says, switch off self-signed renewal and
    ask the daemon to reload; returns the reload sentence. Raises CertProblem."""
    cfg = ctx.config()
    tls_dir = cfg.tls.cert.parent
    try:
        if _writable(tls_dir):
            certs.install_files(cfg.tls.cert, cfg.tls.key, cert_pem, key_pem)
        elif str(tls_dir) == HELPER_TLS_DIR and cfg.tls.key.parent == tls_dir:
            ctx.helper.call(
                "cert.install", cert_pem=cert_pem.decode("ascii"), key_pem=key_pem.decode("ascii")
            )
        else:
            raise certs.CertProblem(f"The box cannot write to {tls_dir}.")
    except (OSError, HelperError, UnicodeDecodeError) as exc:
        log.warning("web=cert-install-failed error=%s", exc)
        raise certs.CertProblem(
            "The certificate could not be installed; see the system log."
        ) from None
    if cfg.tls.self_signed:
        configedit.update(ctx.config_path, tls={"self_signed": False})
    return configedit.reload_daemon(ctx)


@bp.route("/certificate/acme", methods=["POST"])
def acme() -> Page:
    ctx = web()
    cfg = ctx.config()
    email = request.form.get("email", "").strip()
    if email:
        try:
            email = normalize_address(email)
        except AccountError:
            return _page({"email": "Enter an email address, or leave the field empty."})
    settings, store = ctx.acme, ctx.challenges

    def work(progress: Callable[[str], None]) -> dict[str, Any]:
        try:
            names = acme_issue.policy_hosts(cfg.hostname, ctx.accounts.list_domains(), ctx.resolver)
            chain, key = acme_issue.issue(cfg, settings, store, email, progress, names)
            progress("Installing the new certificate…")
            applied = install(ctx, chain, key)
            acme_renew.record_issued(cfg)
        except (acme_issue.AcmeProblem, certs.CertProblem) as exc:
            raise RuntimeError(str(exc)) from None
        return {"message": f"A certificate for {cfg.hostname} is installed. {applied}"}

    log.info("web=acme-requested host=%s by=%s", cfg.hostname, current_user())
    job = ctx.jobs.start(f"Certificate for {cfg.hostname}", work, back=url_for("certs.page"))
    return redirect(url_for("hardware.job_page", job_id=job.id))


@bp.route("/.well-known/acme-challenge/<token>")
def acme_challenge(token: str) -> Response:
    """RFC 8555 8.3: the key authorization for a pending HTTP-01 challenge, as text."""
    value = web().challenges.get(token) if acme_issue.token_is_safe(token) else None
    if value is None:
        abort(404)
    return Response(value, mimetype="application/octet-stream")


@bp.route("/certificate/self-signed", methods=["POST"])
def self_signed() -> Page:
    ctx = web()
    cfg = ctx.config()
    try:
        generate_self_signed(cfg.tls.cert, cfg.tls.key, cfg.hostname)
    except OSError as exc:
        log.warning("web=self-signed-failed error=%s", exc)
        return _page({"regen": f"The box cannot write to {cfg.tls.cert.parent}."})
    if not cfg.tls.self_signed:
        configedit.update(ctx.config_path, tls={"self_signed": True})
    log.info("web=self-signed-regenerated by=%s", current_user())
    flash("A new self-signed certificate was made. " + configedit.reload_daemon(ctx), "ok")
    return redirect(url_for("certs.page"))
