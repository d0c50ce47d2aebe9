"""Run the web UI (``python -m webui CONFIG``) on ``listeners.web`` (plain HTTP) and
``listeners.webs`` (HTTPS with the box's certificate), served by :mod:`webui.httpd`.

Plain HTTP stays on because the LAN wizard is http://pillarbox.local/ before any trusted
certificate exists, and ACME HTTP-01 needs port 80. HTTPS serves the same application:
the session cookie is Secure there, and the MTA-STS policy is reachable at
https://mta-sts.<domain>/ once the certificate covers that name. TLS is the mail
listeners' policy (appliance.tls.server_context: TLS 1.2+, ECDHE with AEAD ciphers only).
A renewed or uploaded certificate is picked up within ``RELOAD_SECONDS`` (new
connections use it; no restart).

Connection limits come from ``limits.max_connections`` and ``limits.max_connections_per_ip``;
timeouts and sizes are :class:`webui.httpd.HttpLimits`.

On a box that is not set up yet the one-time setup code is printed to stdout, which the
appliance shows on its console; once an admin exists nothing is printed. The process needs
no root: root-only work goes through the root helper.

``serve(path)`` blocks; ``create_server(path)`` returns a :class:`WebServer` whose
sockets are already bound, to ``run()`` and ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from appliance import config
from appliance.setupsecret import console_secret
from appliance.tls import server_context, trim_asyncio_tls_buffers
from webui import acme_renew, alerts, certviews, create_app, diskusage, webmail
from webui.context import WebContext
from webui.httpd import HttpLimits, HttpServer, bind

log = logging.getLogger(__name__)

RELOAD_SECONDS = 30.0
CERT_WAIT_SECONDS = 1.0


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = server_context()
    ctx.load_cert_chain(cert, key)
    return ctx


def _stamp(cert: Path, key: Path) -> tuple[int, int] | None:
    try:
        return cert.stat().st_mtime_ns, key.stat().st_mtime_ns
    except FileNotFoundError:
        return None


class _Https:
    """One HTTPS listener: bound once the certificate exists, reloaded when it changes."""

    def __init__(self, addr: config.Listen, cert: Path, key: Path) -> None:
        self.addr, self.cert, self.key = addr, cert, key
        self.sock: socket.socket | None = None
        self.context: ssl.SSLContext | None = None
        self.stamp: tuple[int, int] | None = None

    def bind(self) -> bool:
        stamp = _stamp(self.cert, self.key)
        if stamp is None:
            return False
        self.context = tls_context(self.cert, self.key)
        self.sock = bind(self.addr.host, self.addr.port)
        self.stamp = stamp
        return True

    def current(self) -> ssl.SSLContext:
        assert self.context is not None
        return self.context

    def reload_if_changed(self) -> None:
        stamp = _stamp(self.cert, self.key)
        if self.sock is None or stamp is None or stamp == self.stamp:
            return
        try:
            self.context = tls_context(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:  # half-written pair: try again next round
            log.error("web=tls-reload-failed cert=%s error=%s", self.cert, exc)
            return
        self.stamp = stamp
        log.info("web=tls-reloaded cert=%s", self.cert)


class WebServer:
    def __init__(
        self,
        http: HttpServer,
        plain: list[socket.socket],
        https: list[_Https],
        on_close: Callable[[], None],
    ) -> None:
        self.http = http
        self.plain = plain
        self.https = https
        self._on_close = on_close
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._done = threading.Event()

    @property
    def addresses(self) -> list[tuple[str, str, int]]:
        """(scheme, host, port) of every bound listener."""
        out = [("http", *_bound(s)) for s in self.plain]
        out += [("https", *_bound(h.sock)) for h in self.https if h.sock is not None]
        return out

    def run(self) -> None:
        """Serve until :meth:`close` (from another thread or a signal handler)."""
        try:
            asyncio.run(self._main())
        finally:
            self._done.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stop.is_set():
            return
        servers = [await self.http.serve_socket(s) for s in self.plain]
        waiting = []
        for h in self.https:
            if h.sock is not None:
                servers.append(await self.http.serve_socket(h.sock, h.current))
            else:
                waiting.append(h)
        if waiting:
            log.warning("web=https-waiting-for-certificate cert=%s", waiting[0].cert)
        try:
            while not self._stop.is_set():
                for h in waiting[:]:
                    try:
                        bound = h.bind()
                    except (OSError, ssl.SSLError) as exc:
                        log.error("web=https-failed cert=%s error=%s", h.cert, exc)
                        bound = False
                    if bound and h.sock is not None:
                        servers.append(await self.http.serve_socket(h.sock, h.current))
                        waiting.remove(h)
                        log.info("web=listening https=%s:%s", *_bound(h.sock))
                for h in self.https:
                    h.reload_if_changed()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), CERT_WAIT_SECONDS if waiting else RELOAD_SECONDS
                    )
        finally:
            for server in servers:
                server.close()
            for server in servers:
                await server.wait_closed()

    def close(self) -> None:
        self._stop.set()
        self._on_close()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(wake.set)
            self._done.wait(10)
        self.http.close()
        for sock in self.plain:
            sock.close()
        for h in self.https:
            if h.sock is not None:
                h.sock.close()


def _bound(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def create_server(config_path: Path, threads: int = 16) -> WebServer:
    """The web UI's listeners, bound (HTTPS as soon as the certificate exists)."""
    cfg = config.load(config_path)
    if not cfg.listeners.web and not cfg.listeners.webs:
        raise SystemExit("listeners.web and listeners.webs are empty: the web UI is off")
    app = create_app(config_path)
    ctx: WebContext = app.extensions["pillarbox"]
    code = console_secret(cfg)
    if code is not None:  # not set up yet
        sys.stdout.write(f"Pillarbox setup code: {code}\n")
        sys.stdout.flush()

    trim_asyncio_tls_buffers()
    limits = HttpLimits(
        max_connections=cfg.limits.max_connections,
        max_per_ip=cfg.limits.max_connections_per_ip,
        workers=threads,
        # webmail attachments: the upload bound plus room for the form around it
        body_prefix=webmail.PREFIX.encode(),
        max_prefix_body_bytes=(cfg.webmail.max_upload_mib + 1) * 1024 * 1024,
        prefix_body_timeout=float(cfg.webmail.request_timeout),
    )
    http = HttpServer(webmail.mount(app), limits)
    plain = [bind(addr.host, addr.port) for addr in cfg.listeners.web]
    https = [_Https(addr, cfg.tls.cert, cfg.tls.key) for addr in cfg.listeners.webs]
    for h in https:
        h.bind()
    stop = threading.Event()
    acme_renew.start(ctx, certviews.install, stop)
    diskusage.start(ctx, stop)  # hourly disk usage samples for the dashboard's chart
    alerts.start(ctx, stop)  # alert mail and the dashboard's banner (every 10 minutes)
    web = WebServer(http, plain, https, stop.set)
    log.info(
        "web=listening addresses=%s",
        " ".join(f"{scheme}://{host}:{port}" for scheme, host, port in web.addresses),
    )
    return web


def serve(config_path: Path, threads: int = 16) -> None:
    server = create_server(config_path, threads)
    try:
        server.run()
    finally:
        server.close()
