"""The Pillarbox setup wizard and dashboard (Flask).

``create_app(config_path)`` builds the app; every outside dependency (DNS resolver, root
helper, daemon ctl socket, disk list, SMART reader, hardware measurement, clock, login
throttle) can be injected so the tests run without root, network or a daemon.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from appliance import atomicfile, config, setupsecret
from appliance.accounts import Accounts, LoginThrottle
from appliance.dns import DnsResolver, SyncLookup, SyncResolver
from webui import (
    alertviews,
    auth,
    backup,
    certviews,
    clients,
    dashboard,
    dnsviews,
    hardware,
    mailboxes,
    me,
    me_mail,
    migrate,
    queueviews,
    security,
    twofactor,
    webmail,
    wizard,
)
from webui import setup as setup_views
from webui.acme_issue import AcmeSettings
from webui.context import Ctl, WebContext, default_ctl
from webui.disks import Disk, list_disks
from webui.helper import RootHelper
from webui.jobs import JobRunner
from webui.migrate import mine as migrate_mine
from webui.sessions import SessionStore
from webui.sizing import Hardware
from webui.sizing import measure as measure_hw
from webui.webdb import WEB_DB, WebDb

log = logging.getLogger(__name__)

SESSION_KEY_FILE = "web-session-key"


def _session_key(cfg: config.Config) -> bytes:
    """A per-box signing key for session cookies, created 0600 on first start."""
    path = cfg.data_dir / SESSION_KEY_FILE
    try:
        data = path.read_bytes().strip()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_hex(32).encode()
    atomicfile.write_bytes(path, data, mode=0o600)
    return data


def create_app(
    config_path: Path,
    *,
    resolver: SyncLookup | None = None,
    helper: RootHelper | None = None,
    ctl_factory: Callable[[Path], Ctl] | None = None,
    disks: Callable[[], list[Disk]] | None = None,
    measure: Callable[[Path], Hardware] | None = None,
    throttle: LoginThrottle | None = None,
    acme: AcmeSettings | None = None,
    clock: Callable[[], float] = time.time,
    smart: Callable[[str], dict[str, Any]] | None = None,
) -> Flask:
    cfg = config.load(config_path)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_session_key(cfg),
        SESSION_COOKIE_NAME="pillarbox_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # Secure exactly when the request came over HTTPS (sessions.ServerSessionInterface):
        # browsers drop Secure cookies set over http://pillarbox.local, which would make
        # the LAN wizard impossible to log in to.
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),  # also the server-side row's
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    lifetime: dt.timedelta = app.config["PERMANENT_SESSION_LIFETIME"]
    webdb = WebDb(cfg.data_dir / WEB_DB)
    ctx = WebContext(
        config_path=config_path,
        webdb=webdb,
        sessions=SessionStore(webdb, clock, lambda: ctx.idle_timeout, lifetime.total_seconds()),
        accounts=Accounts(cfg.accounts_db),
        throttle=throttle or LoginThrottle.from_limits(cfg.limits),  # as the daemon
        # Uncached: a record just published shows on the next check.
        resolver=resolver or SyncResolver(DnsResolver(timeout=3.0)),
        helper=helper or RootHelper(),
        jobs=JobRunner(),
        ctl_factory=ctl_factory or default_ctl,
        disks=disks or list_disks,
        measure=measure or measure_hw,
        clock=clock,
        acme=acme or AcmeSettings(),
        smart_reader=smart,
    )
    app.extensions["pillarbox"] = ctx
    setupsecret.console_secret(cfg)  # made before setup, removed after it
    security.install(app)
    blueprints = (
        setup_views,
        auth,
        twofactor,
        dashboard,
        mailboxes,
        clients,
        dnsviews,
        queueviews,
        hardware,
        certviews,
        backup,
        me,
        me_mail,
        alertviews,
        wizard,
        migrate,
        migrate_mine,
        webmail,
    )
    for module in blueprints:
        app.register_blueprint(module.bp)

    @app.template_filter("datetimeformat")
    def datetimeformat(value: float) -> str:
        return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")

    @app.route("/healthz", endpoint="health")
    def health() -> str:
        return "ok"

    @app.errorhandler(config.ConfigError)
    def config_error(exc: config.ConfigError) -> tuple[str, int]:
        # Someone edited pillarbox.toml by hand and broke it; the daemon keeps its old
        # config, and the wizard says what is wrong instead of failing blindly.
        log.error("web=config-invalid error=%s", exc)
        text = f"The settings file has an error and must be fixed by hand: {exc}"
        return render_template("error.html", code=500, title="Settings file error", text=text), 500

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        return render_template("error.html", code=code, title=exc.name, text=exc.description), code

    return app
