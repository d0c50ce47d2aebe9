"""POP3 listeners: ``listeners.pop3`` (STLS offered) and ``listeners.pop3s`` (implicit
TLS, RFC 8314). Connection limits come from ``limits`` (appliance.listeners); ``stop``
stops accepting and gives running sessions a short time to finish (a session cut off
deletes nothing).

Entry point for the daemon: ``create(config, deps) -> [Pop3Service]``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from appliance.accounts import Authenticator
from appliance.config import Config
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
from appliance.pop3.session import MAX_LINE, MaildropLocks, Pop3Session, SessionEnv
from appliance.runtime import Service
from appliance.store.base import MailStore

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0  # below the daemon's own stop budget


@dataclass(frozen=True)
class Pop3Deps:
    """What POP3 sessions use besides the config."""

    store: MailStore
    auth: Authenticator
    tls: ServerTls  # STLS reads the current context at each connection


class Pop3Service:
    name = "pop3"

    def __init__(self, config: Config, deps: Pop3Deps) -> None:
        self.config = config  # replaced on reload; each new connection reads it
        self.deps = deps
        self.locks = MaildropLocks()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: dict[asyncio.Task[None], Session] = {}
        self.limits = ConnectionLimits(lambda: self.config.limits)
        self.listeners = ListenerSet("pop3", deps.tls, self._factory)
        # Plaintext logins need TLS from every address (session.plaintext_ok); only the
        # tests of command semantics turn this on for loopback.
        self.loopback_plaintext = False

    # ------------------------------------------------------------ lifecycle

    def _factory(self, endpoint: Endpoint) -> ProtocolFactory:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(reader, writer, endpoint.implicit_tls)

        return stream_protocol(handle, limit=MAX_LINE * 64)

    def _wanted(self) -> list[Endpoint]:
        return endpoints(self.config.listeners, {"pop3": False, "pop3s": True})

    async def start(self) -> None:
        self.limits.draining = False
        await self.listeners.open(self._wanted())

    async def stop(self) -> None:
        self.limits.draining = True
        self.listeners.close()
        await drain(self._tasks, self._sessions, DRAIN_SECONDS)
        await self.listeners.wait_closed()
        log.info("pop3=stopped")

    async def reload(self, new: Config) -> None:
        """Bind listeners added to the config, close the ones removed, rebind implicit
        TLS after a certificate change."""
        self.config = new
        await self.listeners.update(self._wanted())

    def status(self) -> dict[str, Any]:
        return {
            "listening": sorted(self.listeners.listening()),
            "connections": len(self._tasks),
            "sessions": len(self.locks),
        }

    # ------------------------------------------------------------ connections

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, implicit: bool
    ) -> None:
        def session(ip: str) -> Pop3Session:
            log.info("pop3=connect ip=%s tls=%s", ip, implicit)
            env = SessionEnv(
                store=self.deps.store,
                auth=self.deps.auth,
                tls_context=self.deps.tls.context,
                locks=self.locks,
                timeout=float(self.config.limits.command_timeout),
                loopback_plaintext=self.loopback_plaintext,
            )
            return Pop3Session(env, reader, writer, new_conn_id("pop3"), ip, implicit)

        busy = b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
        await serve_session("pop3", self.limits, self._tasks, self._sessions, writer, busy, session)


def create(config: Config, deps: Pop3Deps) -> list[Service]:
    return [Pop3Service(config, deps)]


__all__ = ["Pop3Deps", "Pop3Service", "create"]
