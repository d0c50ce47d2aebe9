"""One listener set for SMTP, IMAP and POP3: bind, rebind on reload, per-IP limits, drain.

A service describes what it wants as :class:`Endpoint` values (from its config) and a
protocol factory per endpoint; :class:`ListenerSet` binds them, and on reload closes the
removed ones, binds the added ones and rebinds every implicit-TLS listener whose
SSLContext is no longer the current one (a certificate reload: appliance.tls), keeping
the others' sockets and ports. Closing a listener stops accepting; its open connections
stay and finish normally.

:class:`ConnectionLimits` is the one admission rule: ``[limits] max_connections`` across
all listeners of a service, ``max_connections_per_ip`` per client address. A refusal is
rendered by each protocol in its own words (421, ``* BYE``, ``-ERR [SYS/TEMP]``).

Everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.config import Limits, Listeners
from appliance.tls import HANDSHAKE_SECONDS

log = logging.getLogger(__name__)

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Refusal = Literal["draining", "global", "per_ip"]


class ServerTls(Protocol):
    """The current server SSLContext (appliance.tls.TlsManager)."""

    @property
    def context(self) -> ssl.SSLContext: ...


@dataclass(frozen=True, order=True)
class Endpoint:
    kind: str  # the listener's config key: "smtp", "submissions", "imap", "pop3s" ...
    host: str
    port: int
    implicit_tls: bool = False  # TLS from the first byte (RFC 8314 3.3)


def endpoints(listeners: Listeners, kinds: dict[str, bool]) -> list[Endpoint]:
    """The endpoints of the ``[listeners]`` keys in ``kinds`` (key -> implicit TLS)."""
    return [
        Endpoint(kind, listen.host, listen.port, implicit_tls)
        for kind, implicit_tls in kinds.items()
        for listen in getattr(listeners, kind)
    ]


class ConnectionLimits:
    """Open connections per client IP and in total, against ``[limits]``."""

    def __init__(self, limits: Callable[[], Limits]) -> None:
        self._limits = limits
        self.per_ip: collections.Counter[str] = collections.Counter()
        self.total = 0
        self.draining = False
        self.stats: collections.Counter[str] = collections.Counter()

    def admit(self, ip: str) -> Refusal | None:
        """Count a new connection, or say why it is refused (then nothing is counted)."""
        limits = self._limits()
        if self.draining:
            return "draining"
        if self.total >= limits.max_connections:
            self.stats["refused_global"] += 1
            return "global"
        if self.per_ip[ip] >= limits.max_connections_per_ip:
            self.stats["refused_per_ip"] += 1
            return "per_ip"
        self.total += 1
        self.per_ip[ip] += 1
        self.stats["connections_total"] += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


def stream_protocol(handler: StreamHandler, limit: int = 2**16) -> ProtocolFactory:
    """A protocol factory that serves each connection as ``handler(reader, writer)``, the
    way ``asyncio.start_server`` does; ``limit`` bounds the reader's line buffer."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, handler, loop=loop)

    return factory


class ListenerSet:
    def __init__(
        self, name: str, tls: ServerTls, factory: Callable[[Endpoint], ProtocolFactory]
    ) -> None:
        self.name = name
        self.tls = tls
        self.factory = factory
        self._servers: dict[Endpoint, tuple[ssl.SSLContext | None, asyncio.Server]] = {}

    async def _bind(self, endpoint: Endpoint) -> None:
        context = self.tls.context if endpoint.implicit_tls else None
        server = await asyncio.get_running_loop().create_server(
            self.factory(endpoint),
            endpoint.host,
            endpoint.port,
            ssl=context,
            # a TLS handshake is not yet a counted connection: bound how long it may take
            ssl_handshake_timeout=HANDSHAKE_SECONDS if context else None,
            reuse_address=True,
        )
        self._servers[endpoint] = (context, server)
        log.info(
            "%s=listening listener=%s address=%s tls=%s",
            self.name,
            endpoint.kind,
            ",".join(_addresses(server)),
            "implicit" if context else "starttls",
        )

    def _unbind(self, endpoint: Endpoint) -> None:
        _, server = self._servers.pop(endpoint)
        server.close()
        log.info(
            "%s=listener-closed listener=%s address=%s:%s",
            self.name,
            endpoint.kind,
            endpoint.host,
            endpoint.port,
        )

    async def open(self, endpoints: Iterable[Endpoint]) -> None:
        """Bind every endpoint (start); on a failure the ones bound are closed again."""
        try:
            for endpoint in sorted(set(endpoints)):
                await self._bind(endpoint)
        except OSError:
            self.close()
            raise

    async def update(self, endpoints: Iterable[Endpoint]) -> None:
        """Match the wanted endpoints (reload); a failed bind is logged, not raised."""
        wanted = set(endpoints)
        for endpoint in sorted(self._servers):
            context, _ = self._servers[endpoint]
            if endpoint not in wanted or (
                endpoint.implicit_tls and context is not self.tls.context
            ):
                self._unbind(endpoint)
        for endpoint in sorted(wanted - set(self._servers)):
            try:
                await self._bind(endpoint)
            except OSError as exc:
                log.error(
                    "%s=listen-failed address=%s:%s error=%s",
                    self.name,
                    endpoint.host,
                    endpoint.port,
                    exc,
                )

    def close(self) -> None:
        """Stop accepting on every listener; open connections stay."""
        for _, server in self._servers.values():
            server.close()

    async def wait_closed(self) -> None:
        """After :meth:`close` and the connections' end: forget the listeners."""
        servers, self._servers = self._servers, {}
        for _, server in servers.values():
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    def addresses(self) -> dict[str, list[str]]:
        """Bound addresses by listener kind, ``host:port`` (``[v6]:port``)."""
        out: dict[str, list[str]] = {}
        for endpoint, (_, server) in sorted(self._servers.items()):
            out.setdefault(endpoint.kind, []).extend(_addresses(server))
        return out

    def listening(self) -> list[str]:
        return [a for addrs in self.addresses().values() for a in addrs]


class Idles(Protocol):
    @property
    def idle(self) -> bool:
        """True while the session waits for a command (nothing half done)."""
        ...


class Session(Idles, Protocol):
    async def run(self) -> None: ...


async def serve_session(
    kind: str,
    limits: ConnectionLimits,
    tasks: set[asyncio.Task[None]],
    sessions: dict[asyncio.Task[None], Session],
    writer: asyncio.StreamWriter,
    busy_reply: bytes,
    session_for: Callable[[str], Session],
) -> None:
    """One connection of a line protocol (POP3, ManageSieve): admitted by ``limits`` or
    answered ``busy_reply`` and closed; else ``session_for(ip)`` runs, tracked in
    ``tasks``/``sessions`` for :func:`drain`; then released and closed."""
    task = asyncio.current_task()
    assert task is not None
    ip = str((writer.get_extra_info("peername") or ("?", 0))[0])
    tasks.add(task)
    refusal = limits.admit(ip)
    try:
        if refusal is not None:
            log.warning("%s=refused ip=%s reason=%s", kind, ip, refusal)
            writer.write(busy_reply)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), 5)
            return
        session = session_for(ip)
        sessions[task] = session
        await session.run()
    except asyncio.CancelledError:
        log.info("%s=cancelled", kind)
    except Exception:
        log.exception("%s=session-crashed", kind)
    finally:
        tasks.discard(task)
        sessions.pop(task, None)
        if refusal is None:
            limits.release(ip)
        writer.close()
        # Cancelled again while closing (daemon stop): end quietly, or Python 3.11's
        # stream callback logs the cancelled task's exception() as an error.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(writer.wait_closed(), 5)


async def drain(
    tasks: set[asyncio.Task[None]],
    sessions: Mapping[asyncio.Task[None], Idles],
    seconds: float,
) -> None:
    """End each session as soon as it waits for a command (a session busy with one may
    finish it and is checked again after its reply) for up to ``seconds``; then
    :func:`finish` the rest."""
    deadline = time.monotonic() + seconds
    ended: set[asyncio.Task[None]] = set()
    while tasks and time.monotonic() < deadline:
        for task, session in list(sessions.items()):
            if session.idle and task not in ended:
                ended.add(task)
                task.cancel()
        await asyncio.wait(set(tasks), timeout=0.05)
    await finish(tasks, 0)


async def finish(tasks: set[asyncio.Task[None]], seconds: float) -> None:
    """Wait up to ``seconds`` for connection tasks to end; cancel the rest and give them
    a short moment to unwind."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=max(0.0, seconds))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=2.0)


def _addresses(server: asyncio.Server) -> list[str]:
    out = []
    for sock in server.sockets:
        host, port = sock.getsockname()[:2]
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return out
