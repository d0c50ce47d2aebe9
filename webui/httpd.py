"""The web UI's HTTP/1.1 server: an asyncio front that reads whole requests, a bounded
thread pool that runs the WSGI app.

Ports 80 and 443 face the internet (ACME HTTP-01, MTA-STS), so a slow client must cost a
socket, not a thread: the event loop reads each request head and body with h11 under
deadlines, and only a complete request reaches one of ``workers`` threads. Limits
(:class:`HttpLimits`):

- ``max_connections`` in all and ``max_per_ip`` from one address; a connection beyond
  either is closed at once, before any TLS handshake.
- ``handshake_timeout`` for TLS, ``header_timeout`` for the whole request head (counted
  from its first byte, so trickling one byte at a time does not extend it),
  ``body_timeout`` for the whole body, ``keepalive_timeout`` between requests,
  ``write_timeout`` for each block of the answer.
- ``max_header_bytes`` for the request head (431), ``max_body_bytes`` for the body (413);
  a body over ``memory_body_bytes`` goes to a temporary file, and all such bodies in
  flight together may hold at most ``max_spooled_bytes`` (beyond it: 503, Retry-After),
  so uploads cost neither RAM nor unbounded disk;
  ``max_prefix_body_bytes`` and ``prefix_body_timeout`` instead below ``body_prefix``
  (webmail's attachment uploads).

Threading: one event loop thread owns every socket; WSGI calls run in the pool and hand
their answer back as bytes. A streamed answer is pulled from the pool block by block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import unquote_to_bytes

import h11

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

READ_SIZE = 64 * 1024
BUFFERED_ANSWER = 256 * 1024  # answers up to this size leave the worker in one piece


class _Timeout(Exception):
    def __init__(self, partial: bool = True) -> None:
        super().__init__()
        self.partial = partial  # some bytes of the awaited event had arrived


class _Closed(Exception):
    pass


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 500
    max_per_ip: int = 20
    workers: int = 16
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    write_timeout: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    # Paths below this prefix may send up to max_prefix_body_bytes within
    # prefix_body_timeout seconds (webmail's attachment uploads).
    body_prefix: bytes = b""
    max_prefix_body_bytes: int = 0
    prefix_body_timeout: float = 0.0
    # Bodies larger than this are kept in a temporary file, not in memory; the bytes of
    # all such bodies being received or served at once are bounded by max_spooled_bytes.
    memory_body_bytes: int = 64 * 1024
    max_spooled_bytes: int = 256 * 1024 * 1024


@dataclass
class _Answer:
    status: str
    headers: list[tuple[str, str]]
    head: list[bytes]
    rest: Iterator[bytes] | None
    close: Callable[[], None] | None


def _run_app(app: WsgiApp, environ: dict[str, Any]) -> _Answer:
    """Call the app in a worker thread; keep up to BUFFERED_ANSWER bytes of its answer."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    written: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, list(headers))]
        return written.append

    result = app(environ, start_response)
    close = getattr(result, "close", None)
    iterator = iter(result)
    head = list(written)
    size = sum(map(len, head))
    rest: Iterator[bytes] | None = None
    for block in iterator:
        if block:
            head.append(block)
            size += len(block)
        if size > BUFFERED_ANSWER:
            rest = iterator
            break
    else:
        if close is not None:
            close()
            close = None
    if not started:
        raise RuntimeError("the WSGI app returned without calling start_response")
    status, headers = started[0]
    return _Answer(status, headers, head, rest, close)


def _next_block(it: Iterator[bytes]) -> bytes:
    """The next block of a streamed answer; b"" at its end (a WSGI block is never empty
    here: empty blocks are skipped)."""
    for block in it:
        if block:
            return block
    return b""


def _path_parts(target: bytes) -> tuple[bytes, bytes]:
    """Origin-form or absolute-form request target -> (raw path, query)."""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"//", 1)[1]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    return path, query


class _Spool:
    """One request's share of the server's budget for bodies kept on disk: a body over
    ``memory_body_bytes`` is written to a temporary file whole, so it is charged whole."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.held = 0

    def need(self, size: int) -> bool:
        """Hold room for a body of ``size`` bytes; False when the budget is spent."""
        lim = self.server.limits
        want = size if size > lim.memory_body_bytes else 0
        if want <= self.held:
            return True
        if self.server.spooled + want - self.held > lim.max_spooled_bytes:
            return False
        self.server.spooled += want - self.held
        self.held = want
        return True

    def release(self) -> None:
        self.server.spooled -= self.held
        self.held = 0


class HttpServer:
    """Serves one WSGI app on any number of listening sockets (see :meth:`serve_socket`)."""

    def __init__(self, app: WsgiApp, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits
        self.pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="web-worker")
        self.per_ip: Counter[str] = Counter()
        self.total = 0
        self.spooled = 0  # bytes of bodies kept on disk right now (event loop only)

    async def serve_socket(
        self, sock: socket.socket, tls: Callable[[], ssl.SSLContext] | None = None
    ) -> asyncio.Server:
        """Start accepting on ``sock``; ``tls`` gives the current context (reloadable)."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Cancelled at shutdown: end quietly (Python 3.11's stream callback logs a
            # cancelled handler task as an error).
            with contextlib.suppress(asyncio.CancelledError):
                await self._connection(reader, writer, sock, tls)

        return await asyncio.start_server(handle, sock=sock, limit=READ_SIZE)

    async def _connection(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sock: socket.socket,
        tls: Callable[[], ssl.SSLContext] | None,
    ) -> None:
        peer = writer.get_extra_info("peername") or ("-", 0)
        ip = str(peer[0])
        lim = self.limits
        if self.total >= lim.max_connections or self.per_ip[ip] >= lim.max_per_ip:
            log.warning("web=connection-refused ip=%s per_ip=%d", ip, self.per_ip[ip])
            writer.transport.abort()
            return
        self.total += 1
        self.per_ip[ip] += 1
        try:
            if tls is not None:
                await writer.start_tls(tls(), ssl_handshake_timeout=lim.handshake_timeout)
            await self._requests(reader, writer, peer, sock, tls is not None)
        except (_Timeout, _Closed, ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except Exception:
            log.exception("web=connection-error ip=%s", ip)
        finally:
            self.total -= 1
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]
            writer.close()

    async def _event(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first_wait: float,
        within: float,
    ) -> Any:
        """The next h11 event. Waits up to ``first_wait`` for a first byte, then the whole
        event must arrive ``within`` seconds of that byte."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if conn.they_are_waiting_for_100_continue:
                await self._send(
                    writer, conn, h11.InformationalResponse(status_code=100, headers=[])
                )
            wait = first_wait if deadline is None else deadline - loop.time()
            if wait <= 0:
                raise _Timeout(deadline is not None)
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), wait)
            except TimeoutError:
                raise _Timeout(deadline is not None) from None
            if deadline is None:
                deadline = loop.time() + within
            conn.receive_data(data)

    async def _send(self, writer: asyncio.StreamWriter, conn: h11.Connection, event: Any) -> None:
        data = conn.send(event)
        if data:
            writer.write(data)
            try:
                await asyncio.wait_for(writer.drain(), self.limits.write_timeout)
            except TimeoutError:
                raise _Timeout from None

    async def _error(
        self,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        code: int,
        text: str,
        retry_after: int = 0,
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{text}\n".encode()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        if retry_after:
            headers.append(("Retry-After", str(retry_after)))
        try:
            await self._send(writer, conn, h11.Response(status_code=code, headers=headers))
            await self._send(writer, conn, h11.Data(data=body))
            await self._send(writer, conn, h11.EndOfMessage())
        except h11.LocalProtocolError:
            pass

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: tuple[Any, ...],
        sock: socket.socket,
        https: bool,
    ) -> None:
        lim = self.limits
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=lim.max_header_bytes)
        first = True
        while True:
            wait = lim.header_timeout if first else lim.keepalive_timeout
            first = False
            try:
                request = await self._event(conn, reader, writer, wait, lim.header_timeout)
            except h11.RemoteProtocolError as exc:
                code = exc.error_status_hint
                await self._error(writer, conn, code, "Request header too large or malformed")
                return
            except _Timeout as exc:
                if exc.partial:
                    # RFC 9110 15.5.9: 408 for a request head that did not arrive in time.
                    await self._error(writer, conn, 408, "Request timeout")
                return  # else an idle keep-alive connection: just close it
            if isinstance(request, h11.ConnectionClosed):
                return
            if not isinstance(request, h11.Request):
                return
            head_size = len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)
            if head_size > lim.max_header_bytes:
                # RFC 6585 5: 431 Request Header Fields Too Large (h11 bounds only an
                # incomplete head; one that arrived whole in a single read is checked here).
                await self._error(writer, conn, 431, "Request header too large")
                return
            length = _content_length(request.headers)
            max_body, body_timeout = lim.max_body_bytes, lim.body_timeout
            if lim.body_prefix and _path_parts(request.target)[0].startswith(lim.body_prefix):
                max_body = max(max_body, lim.max_prefix_body_bytes)
                body_timeout = max(body_timeout, lim.prefix_body_timeout)
            if length is not None and length > max_body:
                # RFC 9110 15.5.14: 413 Content Too Large, then close.
                await self._error(writer, conn, 413, "Request body too large")
                return
            spool = _Spool(self)
            with tempfile.SpooledTemporaryFile(max_size=lim.memory_body_bytes) as body:
                try:
                    if length is not None and not spool.need(length):
                        await self._busy(writer, conn)
                        return
                    await self._request_with_body(
                        writer,
                        conn,
                        reader,
                        request,
                        body,
                        spool.need,
                        max_body,
                        body_timeout,
                        peer,
                        sock,
                        https,
                    )
                finally:
                    spool.release()
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                return
            if conn.our_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _request_with_body(
        self,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        request: h11.Request,
        body: IO[bytes],
        charge: Callable[[int], bool],
        max_body: int,
        body_timeout: float,
        peer: tuple[Any, ...],
        sock: socket.socket,
        https: bool,
    ) -> None:
        """Read the body (into ``body``) under its deadline and bounds, then answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + body_timeout
        size = 0
        try:
            while True:
                event = await self._event(
                    conn, reader, writer, deadline - loop.time(), body_timeout
                )
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > max_body:
                        await self._error(writer, conn, 413, "Request body too large")
                        return
                    if not charge(size):  # chunked: charged as it grows
                        await self._busy(writer, conn)
                        return
                    body.write(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
                if loop.time() > deadline:
                    raise _Timeout
        except h11.RemoteProtocolError:
            await self._error(writer, conn, 400, "Malformed request body")
            return
        except _Timeout:
            await self._error(writer, conn, 408, "Request timeout")
            return
        body.seek(0)
        environ = self._environ(request, body, size, peer, sock, https)
        await self._answer(writer, conn, request, environ)

    async def _busy(self, writer: asyncio.StreamWriter, conn: h11.Connection) -> None:
        # RFC 9110 15.6.4: 503 with Retry-After while the upload budget is spent.
        await self._error(writer, conn, 503, "Too many uploads at once: try again shortly", 30)

    def _environ(
        self,
        request: h11.Request,
        body: IO[bytes],
        size: int,
        peer: tuple[Any, ...],
        sock: socket.socket,
        https: bool,
    ) -> dict[str, Any]:
        raw_path, query = _path_parts(request.target)
        host, port = sock.getsockname()[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            # PEP 3333: native strings carry the bytes as latin-1.
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "REQUEST_URI": request.target.decode("latin-1"),
            "RAW_URI": request.target.decode("latin-1"),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": str(peer[0]),
            "REMOTE_PORT": str(peer[1]) if len(peer) > 1 else "0",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if https else "http",
            "wsgi.input": body,
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name_b, value_b in request.headers:
            name = name_b.decode("latin-1").upper()
            if "_" in name:  # "X_Forwarded_For" must not pass for X-Forwarded-For
                continue
            value = value_b.decode("latin-1")
            if name == "CONTENT-TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if name == "CONTENT-LENGTH":
                continue
            key = "HTTP_" + name.replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        environ["CONTENT_LENGTH"] = str(size)
        return environ

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        request: h11.Request,
        environ: dict[str, Any],
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(self.pool, _run_app, self.app, environ)
        except Exception:
            log.exception("web=app-error path=%s", environ.get("PATH_INFO"))
            await self._error(writer, conn, 500, "Internal server error")
            return
        try:
            code_text, _, reason = answer.status.partition(" ")
            headers = [
                (k, v)
                for k, v in answer.headers
                if k.lower() not in ("connection", "transfer-encoding", "keep-alive")
            ]
            await self._send(
                writer,
                conn,
                h11.Response(status_code=int(code_text), headers=headers, reason=reason),
            )
            head_only = request.method == b"HEAD"
            for block in answer.head:
                if not head_only:
                    await self._send(writer, conn, h11.Data(data=block))
            if answer.rest is not None:
                while True:
                    block = await loop.run_in_executor(self.pool, _next_block, answer.rest)
                    if not block:
                        break
                    if not head_only:
                        await self._send(writer, conn, h11.Data(data=block))
            await self._send(writer, conn, h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            log.error("web=bad-answer path=%s error=%s", environ.get("PATH_INFO"), exc)
            raise _Closed from exc
        finally:
            if answer.close is not None:
                await loop.run_in_executor(self.pool, answer.close)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock
