"""A small FastCGI client (the FastCGI 1.0 specification, Open Market 1996): one
Responder request per connection over a Unix socket, as php-fpm serves them.

:func:`call` sends FCGI_BEGIN_REQUEST (role Responder, connection closed after the
request), the CGI parameters as FCGI_PARAMS, the request body as FCGI_STDIN (read from a
file object in blocks, never whole), then reads FCGI_STDOUT until the end of the CGI
response head, parses it (RFC 3875 6.3: Status, Location, other header fields) and
returns the head with an iterator over the rest of the body, read block by block as the
caller sends it on. FCGI_STDERR text is logged; FCGI_END_REQUEST ends the answer.

Every socket operation has ``timeout`` seconds; the response head is bounded by
``MAX_HEAD`` bytes. Errors are :class:`FastCgiError` (``unavailable`` when nothing
listens on the socket, ``timeout`` when the application did not answer in time).
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
REQUEST_ID = 1
MAX_CONTENT = 0xFFFF  # FastCGI 3.3: contentLength is 16 bits
BLOCK = 32 * 1024  # request body read size (under MAX_CONTENT)
MAX_HEAD = 64 * 1024  # the CGI response head
MAX_STDERR_LOG = 2000  # characters of one FCGI_STDERR record logged
_HEADER = struct.Struct("!BBHHBx")


class FastCgiError(Exception):
    def __init__(self, text: str, *, unavailable: bool = False, timeout: bool = False) -> None:
        super().__init__(text)
        self.unavailable = unavailable
        self.timeout = timeout


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: Iterator[bytes]  # the rest of FCGI_STDOUT, block by block
    close: Closer


class Closer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def __call__(self) -> None:
        self.sock.close()


def _record(kind: int, content: bytes = b"") -> bytes:
    padding = -len(content) % 8
    return (
        _HEADER.pack(VERSION, kind, REQUEST_ID, len(content), padding) + content + b"\0" * padding
    )


def _stream(kind: int, data: bytes) -> bytes:
    """``data`` as records of at most MAX_CONTENT bytes (no terminating empty record)."""
    return b"".join(
        _record(kind, data[i : i + MAX_CONTENT]) for i in range(0, len(data), MAX_CONTENT)
    )


def _length(n: int) -> bytes:
    # FastCGI 3.4: lengths under 128 take one byte, others four with the high bit set.
    return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)


def encode_params(params: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in params.items():
        n, v = name.encode("latin-1"), value.encode("latin-1")
        out += _length(len(n)) + _length(len(v)) + n + v
    return bytes(out)


class _Reader:
    """Records from the socket: ``next()`` -> (type, content)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(max(BLOCK, n - len(self.buf)))
            except TimeoutError:
                raise FastCgiError("the application did not answer in time", timeout=True) from None
            if not chunk:
                raise FastCgiError("the application closed the connection mid-answer")
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def next(self) -> tuple[int, bytes]:
        version, kind, _rid, length, padding = _HEADER.unpack(self._exactly(_HEADER.size))
        if version != VERSION:
            raise FastCgiError(f"not a FastCGI answer (version {version})")
        content = self._exactly(length + padding)[:length]
        return kind, content


def _log_stderr(content: bytes) -> None:
    text = content.decode("utf-8", "replace").strip()
    if text:
        log.warning("fastcgi=stderr text=%s", text[:MAX_STDERR_LOG])


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    """RFC 3875 6.3: the CGI response head -> (status, reason, header fields)."""
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    location = False
    for line in head.decode("latin-1").replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise FastCgiError(f"malformed CGI header line {line[:80]!r}")
        value = value.strip()
        if name.lower() == "status":
            # RFC 3875 6.3.3: Status: 3-digit code SP reason-phrase
            code, _, text = value.partition(" ")
            if not (code.isdigit() and len(code) == 3):
                raise FastCgiError(f"malformed CGI Status {value[:80]!r}")
            status, reason = int(code), text or ""
            continue
        if name.lower() == "location":
            location = True
        headers.append((name, value))
    if location and status == 200:
        status, reason = 302, "Found"  # RFC 3875 6.2.3: a client redirect
    return status, reason, headers


def _body(reader: _Reader, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        kind, content = reader.next()
        if kind == STDOUT:
            if content:
                yield content
        elif kind == STDERR:
            _log_stderr(content)
        elif kind == END_REQUEST:
            return


def call(
    socket_path: Path,
    params: Mapping[str, str],
    body: BinaryIO,
    length: int,
    timeout: float,
) -> Response:
    """One Responder request; ``length`` bytes of ``body`` go as FCGI_STDIN."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise FastCgiError(f"nothing listens on {socket_path}", unavailable=True) from exc
        except TimeoutError:
            raise FastCgiError(f"{socket_path} did not accept", unavailable=True) from None
        # FastCGI 5.1: role Responder; flags 0 = close the connection after this request.
        begin = struct.pack("!HB5x", RESPONDER, 0)
        sock.sendall(
            _record(BEGIN_REQUEST, begin) + _stream(PARAMS, encode_params(params)) + _record(PARAMS)
        )
        left = length
        while left > 0:
            block = body.read(min(BLOCK, left))
            if not block:
                break
            left -= len(block)
            sock.sendall(_record(STDIN, block))
        sock.sendall(_record(STDIN))
        reader = _Reader(sock)
        out = bytearray()
        while True:
            kind, content = reader.next()
            if kind == STDOUT:
                out += content
                end = out.find(b"\r\n\r\n")
                cut = 4
                if end < 0:
                    end, cut = out.find(b"\n\n"), 2
                if end >= 0:
                    status, reason, headers = _parse_head(bytes(out[:end]))
                    rest = bytes(out[end + cut :])
                    return Response(status, reason, headers, _body(reader, rest), Closer(sock))
                if len(out) > MAX_HEAD:
                    raise FastCgiError("CGI response head too large")
            elif kind == STDERR:
                _log_stderr(content)
            elif kind == END_REQUEST:
                raise FastCgiError("the application ended without a response head")
    except FastCgiError:
        sock.close()
        raise
    except TimeoutError:
        sock.close()
        raise FastCgiError("the application did not answer in time", timeout=True) from None
    except OSError as exc:
        sock.close()
        raise FastCgiError(f"FastCGI connection failed: {exc}") from exc
