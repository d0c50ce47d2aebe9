"""A line-level IMAP test client over TLS: exact wire assertions, literals joined."""

from __future__ import annotations

import re
import socket
import ssl
import time
import zlib

_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")


class RawClient:
    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        raw = socket.create_connection((host, port), timeout=15)
        self.sock = context.wrap_socket(raw)
        self.buffer = b""
        self.counter = 0
        self.inflate: zlib._Decompress | None = None
        self.deflate: zlib._Compress | None = None
        self.greeting = self.line()

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        if self.inflate is not None:
            data = self.inflate.decompress(data)
        self.buffer += data

    def line(self) -> bytes:
        """One response line, with any literals folded in."""
        out = b""
        for _ in range(10000):
            while b"\r\n" not in self.buffer:
                self._recv()
            head, _, self.buffer = self.buffer.partition(b"\r\n")
            out += head + b"\r\n"
            match = _LITERAL.search(out)
            if not match:
                return out
            size = int(match.group(1))
            while len(self.buffer) < size:
                self._recv()
            out += self.buffer[:size]
            self.buffer = self.buffer[size:]
        raise AssertionError("response too long")

    def write(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def command(self, text: str | bytes) -> list[bytes]:
        """Send ``tag text``; return every line up to and including the tagged one."""
        self.counter += 1
        tag = b"c%d" % self.counter
        body = text.encode() if isinstance(text, str) else text
        self.write(tag + b" " + body + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes, timeout: float = 15) -> list[bytes]:
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.line()
            lines.append(got)
            if got.startswith(tag + b" "):
                return lines
        raise AssertionError(f"no tagged response for {tag!r}: {lines!r}")

    def ok(self, text: str | bytes) -> list[bytes]:
        lines = self.command(text)
        assert b" OK " in lines[-1], lines
        return lines

    def close(self) -> None:
        self.sock.close()
