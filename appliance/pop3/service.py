"""POP3 listeners: ``listeners.pop3`` (STLS offered) and ``listeners.pop3s`` (implicit
TLS, RFC 8314). Connection limits come from ``limits``; ``stop`` stops accepting and
gives running sessions a short time to finish (a session cut off deletes nothing).

Entry point for the daemon: ``create(ctx) -> [Pop3Service]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from appliance.config import Listen
from appliance.daemon import Context, Service
from appliance.log import new_conn_id
from appliance.pop3.session import MAX_LINE, MaildropLocks, Pop3Session, SessionEnv
from appliance.tls import HANDSHAKE_SECONDS

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0  # below the daemon's own stop budget


class Pop3Service:
    name = "pop3"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.locks = MaildropLocks()
        self._servers: dict[tuple[str, Listen], asyncio.Server] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: dict[asyncio.Task[None], Pop3Session] = {}
        self._per_ip: dict[str, int] = {}
        self.accepting = False
        # Plaintext logins need TLS from every address (session.plaintext_ok); only the
        # tests of command semantics turn this on for loopback.
        self.loopback_plaintext = False

    # ------------------------------------------------------------ lifecycle

    def _wanted(self) -> set[tuple[str, Listen]]:
        listeners = self.ctx.config.listeners
        return {("pop3", a) for a in listeners.pop3} | {("pop3s", a) for a in listeners.pop3s}

    async def _bind(self, kind: str, listen: Listen) -> None:
        implicit = kind == "pop3s"

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(reader, writer, implicit)

        server = await asyncio.start_server(
            handle,
            listen.host,
            listen.port,
            ssl=self.ctx.tls.context if implicit else None,
            ssl_handshake_timeout=HANDSHAKE_SECONDS if implicit else None,
            limit=MAX_LINE * 64,
        )
        self._servers[(kind, listen)] = server
        log.info("pop3=listening kind=%s addr=%s", kind, _addresses(server))

    async def start(self) -> None:
        self.accepting = True
        for kind, listen in sorted(self._wanted(), key=str):
            await self._bind(kind, listen)

    async def stop(self) -> None:
        self.accepting = False
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        # Sessions waiting for a command end now (no UPDATE state); a session busy
        # with a command may finish it. Checked repeatedly: a session becomes idle
        # right after it has sent a reply.
        deadline = time.monotonic() + DRAIN_SECONDS
        ended: set[asyncio.Task[None]] = set()
        while self._tasks and time.monotonic() < deadline:
            for task, session in list(self._sessions.items()):
                if session.idle and task not in ended:
                    ended.add(task)
                    task.cancel()
            await asyncio.wait(set(self._tasks), timeout=0.05)
        pending = {t for t in self._tasks if not t.done()}
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        log.info("pop3=stopped")

    async def reload(self) -> None:
        """Bind listeners added to the config, close the ones removed."""
        wanted = self._wanted()
        for key in set(self._servers) - wanted:
            self._servers.pop(key).close()
            log.info("pop3=unbound kind=%s addr=%s", key[0], key[1])
        for kind, listen in sorted(wanted - set(self._servers), key=str):
            try:
                await self._bind(kind, listen)
            except OSError as exc:
                log.error("pop3=bind-failed kind=%s addr=%s error=%r", kind, listen, exc)

    def status(self) -> dict[str, Any]:
        return {
            "listening": sorted(a for s in self._servers.values() for a in _addresses(s)),
            "connections": len(self._tasks),
            "sessions": len(self.locks),
        }

    # ------------------------------------------------------------ connections

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, implicit: bool
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername") or ("?", 0)
        ip = str(peer[0])
        cid = new_conn_id("pop3")
        limits = self.ctx.config.limits
        self._tasks.add(task)
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        try:
            if (
                not self.accepting
                or len(self._tasks) > limits.max_connections
                or self._per_ip[ip] > limits.max_connections_per_ip
            ):
                log.warning("pop3=refused ip=%s reason=too-many-connections", ip)
                writer.write(b"-ERR [SYS/TEMP] Too many connections, try again later\r\n")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.drain(), 5)
                return
            log.info("pop3=connect ip=%s tls=%s", ip, implicit)
            env = SessionEnv(
                store=self.ctx.store,
                auth=self.ctx.auth,
                tls_context=self.ctx.tls.context,
                locks=self.locks,
                timeout=float(limits.command_timeout),
                loopback_plaintext=self.loopback_plaintext,
            )
            session = Pop3Session(env, reader, writer, cid, ip, implicit)
            self._sessions[task] = session
            await session.run()
        except asyncio.CancelledError:
            log.info("pop3=cancelled")
        except Exception:
            log.exception("pop3=session-crashed")
        finally:
            self._tasks.discard(task)
            self._sessions.pop(task, None)
            self._per_ip[ip] -= 1
            if not self._per_ip[ip]:
                del self._per_ip[ip]
            writer.close()
            # Cancelled again while closing (daemon stop): end quietly, or Python 3.11's
            # stream callback logs the cancelled task's exception() as an error.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 5)


def _addresses(server: asyncio.Server) -> list[str]:
    result = []
    for sock in server.sockets:
        host, port = sock.getsockname()[:2]
        result.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return result


def create(ctx: Context) -> list[Service]:
    return [Pop3Service(ctx)]


__all__ = ["Pop3Service", "create"]
