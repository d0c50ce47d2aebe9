"""ManageSieve listener (RFC 5804): ``listeners.managesieve`` (port 4190, STARTTLS).
Connection limits come from ``limits`` (appliance.listeners); ``stop`` stops accepting
and gives running sessions a short time to finish their command.

Entry point for the daemon: ``create(config, deps) -> [ManageSieveService]``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from appliance.accounts import Authenticator
from appliance.config import Config
from appliance.filters.sieve_store import SieveStore
from appliance.listeners import (
    ConnectionLimits,
    Endpoint,
    ListenerSet,
    ProtocolFactory,
    ServerTls,
    Session,
    drain,
    endpoints,
    serve_session,
    stream_protocol,
)
from appliance.log import new_conn_id
from appliance.managesieve.session import MAX_LINE, ManageSieveSession, SessionEnv
from appliance.managesieve.wire import response
from appliance.runtime import Service

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0  # below the daemon's own stop budget


@dataclass(frozen=True)
class ManageSieveDeps:
    """What ManageSieve sessions use besides the config."""

    scripts: SieveStore  # the store delivery reads the active script from
    auth: Authenticator  # the daemon's one login throttle
    tls: ServerTls  # STARTTLS reads the current context at each connection


class ManageSieveService:
    name = "managesieve"

    def __init__(self, config: Config, deps: ManageSieveDeps) -> None:
        self.config = config  # replaced on reload; each new connection reads it
        self.deps = deps
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: dict[asyncio.Task[None], Session] = {}
        self.limits = ConnectionLimits(lambda: self.config.limits)
        self.listeners = ListenerSet("managesieve", deps.tls, self._factory)

    def _factory(self, endpoint: Endpoint) -> ProtocolFactory:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(reader, writer)

        return stream_protocol(handle, limit=MAX_LINE * 8)

    def _wanted(self) -> list[Endpoint]:
        return endpoints(self.config.listeners, {"managesieve": False})

    async def start(self) -> None:
        self.limits.draining = False
        await self.listeners.open(self._wanted())

    async def stop(self) -> None:
        self.limits.draining = True
        self.listeners.close()
        await drain(self._tasks, self._sessions, DRAIN_SECONDS)
        await self.listeners.wait_closed()
        log.info("managesieve=stopped")

    async def reload(self, new: Config) -> None:
        """Bind listeners added to the config, close the ones removed."""
        self.config = new
        await self.listeners.update(self._wanted())

    def status(self) -> dict[str, Any]:
        return {
            "listening": sorted(self.listeners.listening()),
            "connections": len(self._tasks),
        }

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def session(ip: str) -> ManageSieveSession:
            log.info("managesieve=connect ip=%s", ip)
            cfg = self.config
            env = SessionEnv(
                scripts=self.deps.scripts,
                auth=self.deps.auth,
                tls_context=self.deps.tls.context,
                timeout=float(cfg.limits.command_timeout),
                max_script_size=cfg.managesieve.max_script_size,
                max_scripts=cfg.managesieve.max_scripts,
            )
            return ManageSieveSession(env, reader, writer, new_conn_id("managesieve"), ip)

        # RFC 5804 1.3: TRYLATER, a temporary condition.
        busy = response("BYE", "TRYLATER", "Too many connections")
        await serve_session(
            "managesieve", self.limits, self._tasks, self._sessions, writer, busy, session
        )


def create(config: Config, deps: ManageSieveDeps) -> list[Service]:
    return [ManageSieveService(config, deps)]


__all__ = ["ManageSieveDeps", "ManageSieveService", "create"]
