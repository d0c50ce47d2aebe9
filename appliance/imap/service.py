"""The IMAP service: listeners (STARTTLS and implicit TLS), connection limits, sessions.

Entry point for the daemon: ``create(ctx) -> [ImapService]`` (see appliance.daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from appliance.config import Listen
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
    Session,
    clean_spool_dir,
    spool_dir,
)
from appliance.tls import HANDSHAKE_SECONDS

if TYPE_CHECKING:
    from appliance.daemon import Context, Service

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

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.servers: list[tuple[Listen, bool, asyncio.Server]] = []
        self.sessions: set[Session] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.per_ip: Counter[str] = Counter()
        self.total_connections = 0

    def _wanted(self) -> list[tuple[Listen, bool]]:
        listeners = self.ctx.config.listeners
        return [(a, False) for a in listeners.imap] + [(a, True) for a in listeners.imaps]

    async def start(self) -> None:
        # Literals spooled by a run that was killed are removed before anyone connects.
        removed = await asyncio.to_thread(clean_spool_dir, spool_dir(self.ctx.config))
        if removed:
            log.info("imap=spool-cleaned orphans=%d", removed)
        for listen, implicit in self._wanted():
            await self._listen(listen, implicit)

    async def _listen(self, listen: Listen, implicit: bool) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(reader, writer, implicit)

        server = await asyncio.start_server(
            accept,
            listen.host,
            listen.port,
            ssl=self.ctx.tls.context if implicit else None,
            ssl_handshake_timeout=HANDSHAKE_SECONDS if implicit else None,
            reuse_address=True,
        )
        self.servers.append((listen, implicit, server))
        log.info("imap=listening addr=%s tls=%s", listen, "implicit" if implicit else "starttls")

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, implicit: bool
    ) -> None:
        conn = Connection(reader, writer)
        limits = self.ctx.config.limits
        ip = conn.peer_ip
        if len(self.sessions) >= limits.max_connections or (
            self.per_ip[ip] >= limits.max_connections_per_ip
        ):
            log.warning("imap=refused ip=%s reason=connection-limit", ip)
            with contextlib.suppress(Exception):
                conn.write(b"* BYE Too many connections, try again later\r\n")
                await asyncio.wait_for(conn.flush(), 5)
            await conn.close()
            return
        session = Session(self.ctx, conn, HANDLERS, implicit)
        self.sessions.add(session)
        self.per_ip[ip] += 1
        self.total_connections += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]
            if task is not None:
                self.tasks.discard(task)

    async def _close_servers(self) -> None:
        for _, _, server in self.servers:
            server.close()
        for _, _, server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self.servers = []

    async def stop(self) -> None:
        """Stop accepting, say BYE to every session, wait briefly for them to end."""
        for _, _, server in self.servers:
            server.close()
        await asyncio.gather(
            *(s.bye("Server shutting down") for s in list(self.sessions)), return_exceptions=True
        )
        for session in list(self.sessions):
            session.conn.abort()
        if self.tasks:
            _, pending = await asyncio.wait(list(self.tasks), timeout=5)
            for task in pending:
                task.cancel()
        await self._close_servers()
        log.info("imap=stopped")

    async def reload(self) -> None:
        """Rebind when the listener addresses changed; TLS reloads in place."""
        current = [(listen, implicit) for listen, implicit, _ in self.servers]
        if current == self._wanted():
            return
        await self._close_servers()
        await self.start()

    def addresses(self) -> list[str]:
        out = []
        for _, _, server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    def status(self) -> dict[str, Any]:
        return {
            "listening": self.addresses(),
            "sessions": len(self.sessions),
            "connections_total": self.total_connections,
            "users": sorted({s.user for s in self.sessions if s.user}),
        }


def create(ctx: Context) -> list[Service]:
    return [ImapService(ctx)]
