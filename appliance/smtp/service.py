"""The SMTP service: MX (25), submission (587, STARTTLS) and submissions (465, TLS).

``create(config, deps)`` returns one service owning every SMTP listener, so the
connection limits (``limits.max_connections``, ``limits.max_connections_per_ip``) hold
across all of them. Limits, sizes and timeouts are read from the config in force when a
connection arrives, so a reload applies to new connections; ``reload(new)`` also opens,
closes and (after a certificate change) rebinds listeners (appliance.listeners).

``stop`` stops accepting, lets transactions in flight (DATA and delivery) finish, then
closes the remaining connections with 421.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from appliance.config import Config
from appliance.listeners import Endpoint, ListenerSet, ProtocolFactory, endpoints
from appliance.runtime import Service
from appliance.smtp.session import PillarboxSMTP
from appliance.smtp.spool import clean_spool_dir
from appliance.smtp.state import KINDS, ServerState, SmtpDeps

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0


class SmtpService:
    name = "smtp"

    def __init__(self, config: Config, deps: SmtpDeps) -> None:
        self.state = ServerState(config, deps, config.data_dir / "incoming")
        self.listeners = ListenerSet("smtp", deps.tls, self._factory)

    @property
    def config(self) -> Config:
        return self.state.config

    def _factory(self, endpoint: Endpoint) -> ProtocolFactory:
        kind = next(k for k in KINDS.values() if k.name == endpoint.kind)
        return lambda: PillarboxSMTP(self.state, kind)

    def _wanted(self) -> list[Endpoint]:
        kinds: dict[str, bool] = {k.name: k.implicit_tls for k in KINDS.values()}
        return endpoints(self.config.listeners, kinds)

    async def start(self) -> None:
        self.state.limits.draining = False
        removed = await asyncio.to_thread(clean_spool_dir, self.state.spool_dir)
        if removed:
            log.info("smtp=spool-cleaned orphans=%s", removed)
        await self.listeners.open(self._wanted())

    async def stop(self) -> None:
        state = self.state
        state.limits.draining = True
        self.listeners.close()  # stop accepting; open connections stay
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        try:
            await asyncio.wait_for(state.idle.wait(), DRAIN_SECONDS)
        except TimeoutError:
            log.warning("smtp=drain-timeout in_flight=%s", state.in_flight)
        if state.tasks:  # deliveries whose client went away still finish
            await asyncio.wait(set(state.tasks), timeout=max(0.1, deadline - loop.time()))
        for conn in list(state.sessions):
            conn.shutdown(f"421 4.3.2 {self.config.hostname} Service shutting down")
        await self.listeners.wait_closed()
        log.info("smtp=stopped")

    async def reload(self, new: Config) -> None:
        """Limits and sizes apply to new connections; listeners are opened and closed to
        match the new config (open connections on a removed listener finish normally)."""
        self.state.config = new
        await self.listeners.update(self._wanted())
        log.info("smtp=reloaded listeners=%s", len(self.listeners.listening()))

    def status(self) -> dict[str, Any]:
        return {
            "listening": self.listeners.listening(),
            "listeners": self.listeners.addresses(),
            "connections": self.state.total,
            "in_flight": self.state.in_flight,
            **dict(self.state.stats),
        }


def create(config: Config, deps: SmtpDeps) -> list[Service]:
    return [SmtpService(config, deps)]
