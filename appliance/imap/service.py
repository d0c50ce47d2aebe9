"""The IMAP service: listeners (STARTTLS and implicit TLS), connection limits, sessions.

Entry point for the daemon: ``create(config, deps) -> [ImapService]``. Listeners,
per-IP limits and rebinding on reload are appliance.listeners'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from appliance.config import Config
from appliance.imap import context, notify
from appliance.imap import handlers_auth as ha
from appliance.imap import handlers_ext as hext
from appliance.imap import handlers_mailbox as hm
from appliance.imap import handlers_message as hmsg
from appliance.imap.connection import Connection
from appliance.imap.session import (
    ANY,
    AUTH,
    NOT_AUTH,
    SELECTED,
    Handler,
    ImapDeps,
    Session,
    clean_spool_dir,
    spool_dir,
)
from appliance.listeners import (
    ConnectionLimits,
    Endpoint,
    ListenerSet,
    ProtocolFactory,
    endpoints,
    finish,
    stream_protocol,
)
from appliance.runtime import Service

log = logging.getLogger(__name__)

HANDLERS: dict[str, tuple[frozenset[str], Handler]] = {
    "CAPABILITY": (ANY, ha.capability),
    "NOOP": (ANY, ha.noop),
    "LOGOUT": (ANY, ha.logout),
    "ID": (ANY, ha.id_),
    "STARTTLS": (NOT_AUTH, ha.starttls),
    "LOGIN": (NOT_AUTH, ha.login),
    "AUTHENTICATE": (NOT_AUTH, ha.authenticate),
    "ENABLE": (AUTH, ha.enable),
    "COMPRESS": (AUTH, ha.compress),
    "IDLE": (AUTH, ha.idle),
    "SELECT": (AUTH, hm.select),
    "EXAMINE": (AUTH, hm.select),
    "CREATE": (AUTH, hm.create),
    "DELETE": (AUTH, hm.delete),
    "RENAME": (AUTH, hm.rename),
    "SUBSCRIBE": (AUTH, hm.subscribe),
    "UNSUBSCRIBE": (AUTH, hm.subscribe),
    "LIST": (AUTH, hm.list_),
    "LSUB": (AUTH, hm.list_),
    "NAMESPACE": (AUTH, hm.namespace),
    "STATUS": (AUTH, hm.status),
    "APPEND": (AUTH, hm.append),
    "GETQUOTA": (AUTH, hm.getquota),
    "GETQUOTAROOT": (AUTH, hm.getquotaroot),
    "CHECK": (SELECTED, ha.check),
    "CLOSE": (SELECTED, hmsg.close),
    "UNSELECT": (SELECTED, hmsg.close),
    "EXPUNGE": (SELECTED, hmsg.expunge),
    "FETCH": (SELECTED, hmsg.fetch_),
    "STORE": (SELECTED, hmsg.store),
    "COPY": (SELECTED, hmsg.copy_move),
    "MOVE": (SELECTED, hmsg.copy_move),
    "SEARCH": (SELECTED, hext.search_),
    "SORT": (SELECTED, hext.sort_),
    "THREAD": (SELECTED, hext.thread_),
    "CANCELUPDATE": (SELECTED, context.cancelupdate),
    "NOTIFY": (AUTH, notify.notify_),  # RFC 5465
}


class ImapService:
    name = "imap"

    def __init__(self, config: Config, deps: ImapDeps) -> None:
        self.config = config  # replaced on reload; each new connection reads it
        self.deps = deps
        self.sessions: set[Session] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.limits = ConnectionLimits(lambda: self.config.limits)
        self.listeners = ListenerSet("imap", deps.tls, self._factory)

    def _factory(self, endpoint: Endpoint) -> ProtocolFactory:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(reader, writer, endpoint.implicit_tls)

        return stream_protocol(accept)

    def _wanted(self) -> list[Endpoint]:
        return endpoints(self.config.listeners, {"imap": False, "imaps": True})

    async def start(self) -> None:
        # Literals spooled by a run that was killed are removed before anyone connects.
        removed = await asyncio.to_thread(clean_spool_dir, spool_dir(self.config))
        if removed:
            log.info("imap=spool-cleaned orphans=%d", removed)
        self.limits.draining = False
        await self.listeners.open(self._wanted())

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, implicit: bool
    ) -> None:
        conn = Connection(reader, writer)
        ip = conn.peer_ip
        refusal = self.limits.admit(ip)
        if refusal is not None:
            log.warning("imap=refused ip=%s reason=%s", ip, refusal)
            text = "Server shutting down" if refusal == "draining" else "Too many connections"
            with contextlib.suppress(Exception):
                conn.write(f"* BYE {text}, try again later\r\n".encode())
                await asyncio.wait_for(conn.flush(), 5)
            await conn.close()
            return
        session = Session(self.config, self.deps, conn, HANDLERS, implicit)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.limits.release(ip)
            if task is not None:
                self.tasks.discard(task)

    async def stop(self) -> None:
        """Stop accepting, say BYE to every session, wait briefly for them to end."""
        self.limits.draining = True
        self.listeners.close()
        await asyncio.gather(
            *(s.bye("Server shutting down") for s in list(self.sessions)), return_exceptions=True
        )
        for session in list(self.sessions):
            session.conn.abort()
        await finish(self.tasks, 5)
        await self.listeners.wait_closed()
        log.info("imap=stopped")

    async def reload(self, new: Config) -> None:
        """Limits apply to new connections; listeners follow the new config and the
        current certificate."""
        self.config = new
        await self.listeners.update(self._wanted())

    def addresses(self) -> list[str]:
        return self.listeners.listening()

    def status(self) -> dict[str, Any]:
        return {
            "listening": self.addresses(),
            "sessions": len(self.sessions),
            "connections_total": self.limits.stats["connections_total"],
            "users": sorted({s.user for s in self.sessions if s.user}),
        }


def create(config: Config, deps: ImapDeps) -> list[Service]:
    return [ImapService(config, deps)]
