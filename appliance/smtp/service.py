"""The SMTP service: MX (25), submission (587, STARTTLS) and submissions (465, TLS).

``create(ctx)`` returns one service owning every SMTP listener, so the connection limits
(``limits.max_connections``, ``limits.max_connections_per_ip``) hold across all of them.
Limits, sizes and timeouts are read from ``ctx.config`` for every new connection, so a
reload applies to new connections; ``reload`` also opens and closes listeners to match
the new config.

``stop`` stops accepting, lets transactions in flight (DATA and delivery) finish, then
closes the remaining connections with 421.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from appliance.smtp.session import PillarboxSMTP
from appliance.smtp.spool import clean_spool_dir
from appliance.smtp.state import KINDS, ListenerKind, ServerState
from appliance.tls import HANDSHAKE_SECONDS

if TYPE_CHECKING:
    from appliance.daemon import Context, Service

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0


Key = tuple[str, str, int]  # (listener kind, configured host, configured port)


class SmtpService:
    name = "smtp"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.state = ServerState(ctx, ctx.config.data_dir / "incoming")
        self._servers: dict[Key, tuple[ListenerKind, asyncio.Server]] = {}

    def _wanted(self) -> dict[Key, ListenerKind]:
        lst = self.ctx.config.listeners
        out: dict[Key, ListenerKind] = {}
        for kind in KINDS.values():
            for listen in getattr(lst, kind.name):
                out[(kind.name, listen.host, listen.port)] = kind
        return out

    async def _open(self, key: Key, kind: ListenerKind) -> None:
        def factory() -> PillarboxSMTP:
            return PillarboxSMTP(self.state, kind)

        server = await asyncio.get_running_loop().create_server(
            factory,
            key[1],
            key[2],
            ssl=self.ctx.tls.context if kind.implicit_tls else None,
            # a TLS handshake is not yet a counted connection: bound how long it may take
            ssl_handshake_timeout=HANDSHAKE_SECONDS if kind.implicit_tls else None,
            reuse_address=True,
        )
        self._servers[key] = (kind, server)
        log.info("smtp=listening listener=%s address=%s", kind.name, _addresses(server))

    async def start(self) -> None:
        self.state.draining = False
        removed = await asyncio.to_thread(clean_spool_dir, self.state.spool_dir)
        if removed:
            log.info("smtp=spool-cleaned orphans=%s", removed)
        try:
            for key, kind in self._wanted().items():
                await self._open(key, kind)
        except OSError:
            self._close_servers()
            raise

    def _close_servers(self) -> None:
        servers, self._servers = self._servers, {}
        for _, server in servers.values():
            server.close()

    async def stop(self) -> None:
        state = self.state
        state.draining = True
        for _, server in self._servers.values():
            server.close()  # stop accepting; open connections stay
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        try:
            await asyncio.wait_for(state.idle.wait(), DRAIN_SECONDS)
        except TimeoutError:
            log.warning("smtp=drain-timeout in_flight=%s", state.in_flight)
        if state.tasks:  # deliveries whose client went away still finish
            await asyncio.wait(set(state.tasks), timeout=max(0.1, deadline - loop.time()))
        for conn in list(state.sessions):
            conn.shutdown(f"421 4.3.2 {self.ctx.config.hostname} Service shutting down")
        for _, server in self._servers.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers = {}
        log.info("smtp=stopped")

    async def reload(self) -> None:
        """Limits and sizes apply to new connections; listeners are opened and closed to
        match the new config (open connections on a removed listener finish normally)."""
        wanted = self._wanted()
        for key in [k for k in self._servers if k not in wanted]:
            kind, server = self._servers.pop(key)
            server.close()
            log.info("smtp=listener-closed listener=%s address=%s:%s", kind.name, key[1], key[2])
        for key, kind in wanted.items():
            if key not in self._servers:
                try:
                    await self._open(key, kind)
                except OSError as exc:
                    log.error("smtp=listen-failed address=%s:%s error=%s", key[1], key[2], exc)
        log.info("smtp=reloaded listeners=%s", len(self._servers))

    def status(self) -> dict[str, Any]:
        listening: list[str] = []
        by_kind: dict[str, list[str]] = {}
        for kind, server in self._servers.values():
            addrs = _addresses(server)
            listening.extend(addrs)
            by_kind.setdefault(kind.name, []).extend(addrs)
        return {
            "listening": listening,
            "listeners": by_kind,
            "connections": self.state.total,
            "in_flight": self.state.in_flight,
            **dict(self.state.stats),
        }


def _addresses(server: asyncio.Server) -> list[str]:
    out = []
    for sock in server.sockets:
        host, port = sock.getsockname()[:2]
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return out


def create(ctx: Context) -> list[Service]:
    return [SmtpService(ctx)]
