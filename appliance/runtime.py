"""What the daemon and its services share at run time: the Service protocol, the ctl
handler table, and the Supervisor that owns the running config and hands a new one to
every service on reload.

This module sits on the bottom floor: it imports only ``config`` and ``tls``. A service
module imports it, never ``appliance.daemon``; each service's ``create(...)`` receives
the few objects it uses (see appliance.daemon.create_services).

Threading contract: :meth:`Supervisor.reload` reads and validates the file and loads the
certificate in a worker thread, into new objects nobody else holds; the running config
and the live SSLContext are replaced on the event loop, and each service's
``reload(new)`` runs on the loop. No service mutates shared config from a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from appliance import __version__, config
from appliance.tls import TlsManager

log = logging.getLogger(__name__)

# ctl command name -> async handler(args) -> JSON-able result (see appliance.ctl.service)
CtlHandler = Callable[[dict[str, Any]], Awaitable[Any]]
CtlHandlers = dict[str, CtlHandler]


class CommandError(Exception):
    """A ctl handler's refusal; the text is sent to the client."""


def register(handlers: CtlHandlers, name: str, handler: CtlHandler) -> None:
    """Add a ctl command to the daemon's one handler table (services call this in their
    ``create(...)``; the ctl service serves the table)."""
    handlers[name] = handler


class Service(Protocol):
    """A daemon service: ``start`` opens listeners, ``stop`` stops accepting and drains,
    ``reload`` receives the new config (already validated; on the event loop)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def reload(self, new: config.Config) -> None: ...

    def status(self) -> dict[str, Any]: ...


class Supervisor:
    """The running config, the services, status and reload (what ctl's status, reload
    and stop commands act on)."""

    def __init__(self, cfg: config.Config, tls: TlsManager) -> None:
        self.config = cfg
        self.tls = tls
        self.services: list[Service] = []
        self.started = time.time()
        self.request_stop: Callable[[], None] = lambda: None
        self._reloading = asyncio.Lock()  # bound to the loop at its first use

    async def reload(self) -> str | None:
        """Re-read the config file and the certificate; returns an error text (the old
        config and certificate stay in force) or None. Reloads run one at a time (SIGHUP
        and ctl may ask at once)."""
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> str | None:
        source = self.config.source
        if source is None:
            return "no config file to reload"
        try:
            new = await asyncio.to_thread(config.load, source)
        except config.ConfigError as exc:
            log.error("reload=rejected reason=%s", exc)
            return str(exc)
        try:  # a new SSLContext nobody holds yet (None: the files did not change)
            context = await asyncio.to_thread(self.tls.load)
        except (OSError, ValueError) as exc:
            log.error("reload=tls-failed reason=%s", exc)
            return f"certificate: {exc}"
        # On the loop from here: swap, then hand the new config to every service.
        self.config = new
        if context is not None:
            self.tls.install(context)
        log.info("reload=ok source=%s", new.source)
        for svc in self.services:
            await svc.reload(new)
        return None

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "hostname": self.config.hostname,
            "uptime": round(time.time() - self.started, 1),
            "services": {svc.name: svc.status() for svc in self.services},
        }
