"""Buffered IMAP transport over asyncio streams: lines, literals, STARTTLS, COMPRESS.

The session reads through this class so that it owns the buffer: after STARTTLS any
plaintext the client pipelined is thrown away (RFC 9051 6.2.1), and COMPRESS=DEFLATE
(RFC 4978) only has to wrap two byte paths.

Memory: the buffer grows by at most READ_CHUNK bytes per fill, inflated data included
(a deflate bomb is inflated one chunk at a time, the rest of its input waits as
compressed bytes), so the caller's line and literal limits bound it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
import time
import zlib
from pathlib import Path
from typing import BinaryIO

READ_CHUNK = 65536
WRITE_BUFFER = 64 * 1024
LITERAL_PREFIX = "imap-literal-"  # spooled literals; swept at service start


class LineTooLong(Exception):
    """A command line longer than the limit (the rest of the line was discarded)."""


class ConnectionClosed(Exception):
    pass


def _mkstemp(directory: Path | None) -> tuple[int, str]:
    if directory is not None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=LITERAL_PREFIX, dir=directory)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self._inflate: zlib._Decompress | None = None
        self._inflate_tail = b""  # compressed input not inflated yet (bounded output)
        self._deflate: zlib._Compress | None = None
        peer = writer.get_extra_info("peername")
        self.peer_ip: str = str(peer[0]) if peer else "?"
        self.tls = writer.get_extra_info("sslcontext") is not None
        self.compressed = False
        self.bytes_out = 0
        # Responses are gathered here and handed to the transport in large writes (one
        # TLS record per ~16 KB instead of one per FETCH line); flush() is the boundary.
        self._out = bytearray()

    async def _fill(self) -> None:
        if self._inflate is None:
            self.buffer += await self._read_raw()
            return
        if self._inflate.eof:  # the client ended its DEFLATE stream: nothing can follow
            raise ConnectionClosed()
        if self._inflate_tail:  # more output from input already read: let others run first
            await asyncio.sleep(0)
        data = self._inflate_tail or await self._read_raw()
        # Inflate at most READ_CHUNK bytes per call (one compressed chunk can hold ~64 MB):
        # the rest of the input stays compressed until the reader asks for more.
        try:
            self.buffer += self._inflate.decompress(data, READ_CHUNK)
        except zlib.error:  # corrupt DEFLATE data: the stream cannot be resynchronised
            raise ConnectionClosed() from None
        self._inflate_tail = self._inflate.unconsumed_tail

    async def _read_raw(self) -> bytes:
        data = await self.reader.read(READ_CHUNK)
        if not data:
            raise ConnectionClosed()
        return data

    async def read_line(self, limit: int) -> bytes:
        """One line without its CRLF (a bare LF is accepted)."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                if end > limit:
                    raise LineTooLong()
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > limit:
                await self._discard_line()
                raise LineTooLong()
            start = len(self.buffer)
            await self._fill()

    async def _discard_line(self) -> None:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                del self.buffer[: end + 1]
                return
            self.buffer.clear()
            await self._fill()

    async def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_to_file(self, size: int, directory: Path | None = None) -> Path:
        """Stream ``size`` bytes into a new temporary file (large APPEND literals)."""
        fd, name = await asyncio.to_thread(_mkstemp, directory)
        path = Path(name)
        fh: BinaryIO = os.fdopen(fd, "wb")
        try:
            remaining = size
            while remaining:
                if not self.buffer:
                    await self._fill()
                chunk = bytes(self.buffer[:remaining])
                del self.buffer[: len(chunk)]
                remaining -= len(chunk)
                await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(fh.close)
        except BaseException:
            fh.close()
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return path

    async def discard(self, size: int) -> None:
        remaining = size
        while remaining:
            if not self.buffer:
                await self._fill()
            take = min(remaining, len(self.buffer))
            del self.buffer[:take]
            remaining -= take

    async def linger(self, seconds: float) -> None:
        """Read and drop what the client still sends, for at most ``seconds``, so that a
        reply written just before closing is not lost to a TCP reset."""
        self.buffer.clear()
        self._inflate_tail = b""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError, ConnectionError, OSError, ssl.SSLError):
            while (left := deadline - time.monotonic()) > 0:
                if not await asyncio.wait_for(self.reader.read(READ_CHUNK), left):
                    return

    def write(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self._out += data
        if len(self._out) >= WRITE_BUFFER:
            self._push()

    def _push(self) -> None:
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        if self._deflate is not None:
            data = self._deflate.compress(data)
        if data:
            self.writer.write(data)

    async def flush(self) -> None:
        self._push()
        if self._deflate is not None:
            self.writer.write(self._deflate.flush(zlib.Z_SYNC_FLUSH))
        await self.writer.drain()

    async def start_tls(self, context: ssl.SSLContext, handshake_timeout: float) -> None:
        # RFC 9051 6.2.1: anything the client sent before the handshake is discarded.
        self.buffer.clear()
        self._push()
        await self.writer.drain()
        await self.writer.start_tls(context, ssl_handshake_timeout=handshake_timeout)
        self.tls = True

    def start_compress(self) -> None:
        # RFC 4978 3: raw DEFLATE (no zlib header) in both directions from here on.
        self._push()  # the tagged OK goes out uncompressed
        self._inflate = zlib.decompressobj(-15)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        # Data that arrived after the tagged OK is already compressed: _fill inflates it.
        self._inflate_tail = bytes(self.buffer)
        self.buffer.clear()
        self.compressed = True

    def abort(self) -> None:
        """Drop the connection now (server shutdown after BYE)."""
        transport = self.writer.transport
        # A closed TLS transport cannot be aborted on Python 3.11.2 (Debian 12, the
        # image's Python): a second close() drops its protocol and abort() then raises
        # AttributeError, which made IMAP's stop() fail at shutdown.
        if not transport.is_closing():
            transport.abort()

    async def close(self) -> None:
        try:
            self._push()
            if self._deflate is not None:
                self.writer.write(self._deflate.flush(zlib.Z_FINISH))
                self._deflate = None
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, TimeoutError, ssl.SSLError):
            pass
