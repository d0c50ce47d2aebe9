"""Automatic renewal of certificates obtained over ACME.

After a successful ACME install the host name is recorded in ``<data_dir>/acme/issued``.
:func:`start` runs a thread in the web process that checks twice a day and renews when
the installed certificate for that host name has fewer than RENEW_DAYS left. A failure
is logged, kept in ``<data_dir>/acme/renew-error`` (cleared by the next success) for the
alert mail to quote, and retried on the next check; the dashboard's certificate line warns
at 21 days.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from appliance import atomicfile, config
from webui import acme_issue, certs
from webui.context import WebContext

log = logging.getLogger(__name__)

RENEW_DAYS = 30
CHECK_SECONDS = 12 * 3600
MARKER = "issued"
ERROR_FILE = "renew-error"

Issue = Callable[..., tuple[bytes, bytes]]
Install = Callable[[WebContext, bytes, bytes], str]


def record_issued(cfg: config.Config) -> None:
    path = cfg.data_dir / "acme" / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.hostname + "\n", encoding="ascii")


def renew_error(cfg: config.Config) -> str:
    """Why the last automatic renewal failed ("" when it did not, or none ran)."""
    try:
        return (cfg.data_dir / "acme" / ERROR_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _note_error(cfg: config.Config, text: str) -> None:
    path = cfg.data_dir / "acme" / ERROR_FILE
    try:
        if text:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomicfile.write_text(path, text + "\n")
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:  # the note is for the alert mail; renewal goes on without it
        log.warning("acme=renew-error-not-kept error=%s", exc)


def due(cfg: config.Config, now: dt.datetime) -> bool:
    """True when the installed certificate came from ACME for this host and runs out soon."""
    try:
        issued_for = (cfg.data_dir / "acme" / MARKER).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return False
    if issued_for != cfg.hostname:
        return False
    info = certs.read_installed(cfg.tls.cert)
    return info is None or info.days_left(now) < RENEW_DAYS


def renew_if_due(ctx: WebContext, install: Install, issue: Issue = acme_issue.issue) -> bool:
    """One check; returns True when a new certificate was installed."""
    cfg = ctx.config()
    if not due(cfg, dt.datetime.fromtimestamp(ctx.clock(), dt.UTC)):
        return False
    log.info("acme=renewing host=%s", cfg.hostname)
    try:
        names = acme_issue.policy_hosts(cfg.hostname, ctx.accounts.list_domains(), ctx.resolver)
        chain, key = issue(cfg, ctx.acme, ctx.challenges, "", lambda _text: None, names)
        install(ctx, chain, key)
    except (acme_issue.AcmeProblem, certs.CertProblem) as exc:
        log.warning("acme=renew-failed host=%s error=%s", cfg.hostname, exc)
        _note_error(cfg, str(exc)[:500])
        return False
    _note_error(cfg, "")
    log.info("acme=renewed host=%s", cfg.hostname)
    return True


def start(ctx: WebContext, install: Install, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            try:
                renew_if_due(ctx, install)
            except config.ConfigError as exc:  # a broken file must not kill the thread
                log.error("acme=renew-skipped error=%s", exc)
            stop.wait(CHECK_SECONDS)

    thread = threading.Thread(target=loop, name="acme-renew", daemon=True)
    thread.start()
    return thread
