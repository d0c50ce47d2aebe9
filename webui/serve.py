"""Run the web UI (``python -m webui CONFIG``) with cheroot on ``listeners.web`` (plain
HTTP) and ``listeners.webs`` (HTTPS with the box's certificate).

Plain HTTP stays on because the LAN wizard is http://pillarbox.local/ before any trusted
certificate exists, and ACME HTTP-01 needs port 80. HTTPS serves the same application:
the session cookie is Secure there, and the MTA-STS policy is reachable at
https://mta-sts.<domain>/ once the certificate covers that name. TLS 1.2 is the minimum.
A renewed or uploaded certificate is picked up within ``RELOAD_SECONDS`` (new
connections use it; no restart).

On a box that is not set up yet the one-time setup code is printed to stdout, which the
appliance shows on its console. The process needs no root: root-only work goes through
the root helper.

``serve(path)`` blocks; ``create_server(path)`` returns a :class:`WebServer` whose
sockets are already bound, to ``run()`` and ``close()``.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from appliance import config
from webui import acme_renew, certviews, create_app, diskusage
from webui.context import WebContext
from webui.setup import read_or_create_secret

log = logging.getLogger(__name__)

RELOAD_SECONDS = 30.0
CERT_WAIT_SECONDS = 1.0


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def _stamp(cert: Path, key: Path) -> tuple[int, int] | None:
    try:
        return cert.stat().st_mtime_ns, key.stat().st_mtime_ns
    except FileNotFoundError:
        return None


class _Https:
    """One HTTPS listener: bound once the certificate exists, reloaded when it changes."""

    def __init__(self, make: Callable[[], wsgi.Server], cert: Path, key: Path) -> None:
        self.make, self.cert, self.key = make, cert, key
        self.server: wsgi.Server | None = None
        self.stamp: tuple[int, int] | None = None

    def bind(self) -> bool:
        stamp = _stamp(self.cert, self.key)
        if stamp is None:
            return False
        server = self.make()
        adapter = BuiltinSSLAdapter(str(self.cert), str(self.key))
        adapter.context = tls_context(self.cert, self.key)
        server.ssl_adapter = adapter
        server.prepare()
        self.server, self.stamp = server, stamp
        return True

    def reload_if_changed(self) -> None:
        stamp = _stamp(self.cert, self.key)
        if self.server is None or stamp is None or stamp == self.stamp:
            return
        adapter = self.server.ssl_adapter
        try:
            adapter.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:  # half-written pair: try again next round
            log.error("web=tls-reload-failed cert=%s error=%s", self.cert, exc)
            return
        self.stamp = stamp
        log.info("web=tls-reloaded cert=%s", self.cert)


class WebServer:
    def __init__(
        self, plain: list[wsgi.Server], https: list[_Https], on_close: Callable[[], None]
    ) -> None:
        self.plain = plain
        self.https = https
        self._on_close = on_close
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def addresses(self) -> list[tuple[str, str, int]]:
        """(scheme, host, port) of every bound listener."""
        out = [("http", *_bound(s)) for s in self.plain]
        out += [("https", *_bound(h.server)) for h in self.https if h.server is not None]
        return out

    def _spawn(self, server: wsgi.Server) -> None:
        thread = threading.Thread(target=server.serve, name="web", daemon=True)
        thread.start()
        self._threads.append(thread)

    def run(self) -> None:
        """Serve until :meth:`close` (from another thread or a signal handler)."""
        for server in self.plain:
            self._spawn(server)
        waiting = list(self.https)
        for h in waiting[:]:
            if h.server is not None:
                self._spawn(h.server)
                waiting.remove(h)
        if waiting:
            log.warning("web=https-waiting-for-certificate cert=%s", waiting[0].cert)
        while not self._stop.is_set():
            for h in waiting[:]:
                try:
                    bound = h.bind()
                except (OSError, ssl.SSLError) as exc:
                    log.error("web=https-failed cert=%s error=%s", h.cert, exc)
                    bound = False
                if bound and h.server is not None:
                    self._spawn(h.server)
                    waiting.remove(h)
                    log.info("web=listening https=%s:%s", *_bound(h.server))
            for h in self.https:
                h.reload_if_changed()
            self._stop.wait(CERT_WAIT_SECONDS if waiting else RELOAD_SECONDS)

    def close(self) -> None:
        self._stop.set()
        self._on_close()
        for server in self.plain:
            server.stop()
        for h in self.https:
            if h.server is not None:
                h.server.stop()
        for thread in self._threads:
            thread.join(10)


def _bound(server: wsgi.Server) -> tuple[str, int]:
    host, port = server.bind_addr[:2]
    return str(host), int(port)


def create_server(config_path: Path, threads: int = 8) -> WebServer:
    """The web UI's listeners, bound (HTTPS as soon as the certificate exists)."""
    cfg = config.load(config_path)
    if not cfg.listeners.web and not cfg.listeners.webs:
        raise SystemExit("listeners.web and listeners.webs are empty: the web UI is off")
    app = create_app(config_path)
    ctx: WebContext = app.extensions["pillarbox"]
    if not any(u.is_admin and not u.disabled for u in ctx.accounts.list_users()):
        code = read_or_create_secret(cfg)
        sys.stdout.write(f"Pillarbox setup code: {code}\n")
        sys.stdout.flush()

    def make(addr: config.Listen) -> Callable[[], wsgi.Server]:
        return lambda: wsgi.Server(
            (addr.host, addr.port), app, numthreads=threads, server_name="pillarbox"
        )

    plain = []
    for addr in cfg.listeners.web:
        server = make(addr)()
        server.prepare()
        plain.append(server)
    https = [_Https(make(addr), cfg.tls.cert, cfg.tls.key) for addr in cfg.listeners.webs]
    for h in https:
        h.bind()
    stop = threading.Event()
    acme_renew.start(ctx, certviews.install, stop)
    diskusage.start(ctx, stop)  # hourly disk usage samples for the dashboard's chart
    web = WebServer(plain, https, stop.set)
    log.info(
        "web=listening addresses=%s",
        " ".join(f"{scheme}://{host}:{port}" for scheme, host, port in web.addresses),
    )
    return web


def serve(config_path: Path, threads: int = 8) -> None:
    server = create_server(config_path, threads)
    try:
        server.run()
    finally:
        server.close()
