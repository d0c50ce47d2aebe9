"""Run the web UI with waitress on ``listeners.web`` (``python -m webui CONFIG``).

On a box that is not set up yet the one-time setup code is printed to stdout, which the
appliance shows on its console. The process needs no root: root-only work goes through
the root helper.

``serve(path)`` blocks; ``create_server(path)`` returns the waitress server so a caller
(the ``pillarbox run`` command) can run it in a thread and ``close()`` it on shutdown.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import waitress

from appliance import config
from webui import acme_renew, certviews, create_app
from webui.context import WebContext
from webui.setup import read_or_create_secret

log = logging.getLogger(__name__)


def create_server(config_path: Path, threads: int = 8) -> Any:
    """A bound (not yet running) waitress server for ``listeners.web``."""
    cfg = config.load(config_path)
    if not cfg.listeners.web:
        raise SystemExit("listeners.web is empty: the web UI is switched off")
    app = create_app(config_path)
    ctx: WebContext = app.extensions["pillarbox"]
    if not any(u.is_admin and not u.disabled for u in ctx.accounts.list_users()):
        code = read_or_create_secret(cfg)
        sys.stdout.write(f"Pillarbox setup code: {code}\n")
        sys.stdout.flush()
    listen = " ".join(str(addr) for addr in cfg.listeners.web)
    server = waitress.create_server(app, listen=listen, threads=threads, ident="pillarbox")
    stop = threading.Event()
    acme_renew.start(ctx, certviews.install, stop)
    close = server.close

    def close_all() -> None:
        stop.set()
        close()

    server.close = close_all
    log.info("web=listening addresses=%s", listen)
    return server


def serve(config_path: Path, threads: int = 8) -> None:
    server = create_server(config_path, threads)
    try:
        server.run()
    finally:
        server.close()
