"""Message bodies go to a file while they arrive, never whole into memory.

:class:`SpoolWriter` receives the decoded DATA (or BDAT) bytes line by line, keeps the
header section in memory until it is complete (capped), then writes our trace header,
any headers to add (Message-ID/Date on submission) and the original header section,
and streams the body through a small buffer. File writes run in a worker thread.

The spool file is not fsynced: nothing is acknowledged until the store and the queue
have made their own durable copies; a crash leaves only an orphan that
:func:`clean_spool_dir` removes on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from appliance.queue.spool import message_id

log = logging.getLogger(__name__)

FLUSH_BYTES = 256 * 1024
HEADER_CAP = 256 * 1024  # header sections beyond this are streamed without inspection

HeaderHook = Callable[[bytes], bytes]  # header section -> lines to insert before it
HeaderRewrite = Callable[[bytes], bytes]  # header section -> the section to store


def new_id() -> str:
    # The same id the queue entry takes (appliance.queue.spool), so "queued as" matches.
    return message_id(time.time())


def clean_spool_dir(path: Path) -> int:
    """Remove orphans of an earlier run (blocking). Returns how many were removed."""
    path.mkdir(parents=True, exist_ok=True)
    removed = 0
    for entry in path.iterdir():
        if entry.is_file() and entry.name.endswith(".eml"):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


def header_names(section: bytes) -> set[str]:
    """Lower-cased names of the header fields in a header section."""
    names: set[str] = set()
    for line in section.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.add(line.split(b":", 1)[0].strip().decode("ascii", "replace").lower())
    return names


class SpoolWriter:
    def __init__(
        self,
        path: Path,
        fh: BinaryIO,
        prefix: bytes,
        hook: HeaderHook | None,
        rewrite: HeaderRewrite | None = None,
    ) -> None:
        self.path = path
        self._fh = fh
        self._prefix = prefix
        self._hook = hook
        self._rewrite = rewrite
        self._header: bytearray | None = bytearray()  # None once the header section is out
        self._buf = bytearray()
        self.size = 0  # message bytes received (without our prefix)
        self.written = 0  # bytes in the file, prefix included

    @classmethod
    async def create(
        cls,
        directory: Path,
        prefix: bytes,
        hook: HeaderHook | None = None,
        rewrite: HeaderRewrite | None = None,
    ) -> SpoolWriter:
        path = directory / f"{new_id()}.eml"

        def _open() -> BinaryIO:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            return os.fdopen(fd, "wb")

        return cls(path, await asyncio.to_thread(_open), prefix, hook, rewrite)

    def set_prefix(self, prefix: bytes) -> None:
        """Set the trace header written before the message (before the first line)."""
        assert self._header is not None and not self._header, "prefix after data"
        self._prefix = prefix

    def _append_header_line(self, line: bytes) -> None:
        assert self._header is not None
        self._header += line
        if line == b"\r\n" or len(self._header) > HEADER_CAP:
            self._end_header()

    def append_block(self, block: bytes) -> bool:
        """Add whole message lines (``block`` ends with CRLF) to the buffer, without
        waiting; True when FLUSH_BYTES are buffered and the caller should await
        :meth:`flush`. The header section is taken line by line to find its end."""
        self.size += len(block)
        pos = 0
        while self._header is not None and pos < len(block):
            end = block.index(b"\r\n", pos) + 2
            self._append_header_line(block[pos:end])
            pos = end
        self._buf += block[pos:] if pos else block
        return len(self._buf) >= FLUSH_BYTES

    def _end_header(self) -> None:
        assert self._header is not None
        section = bytes(self._header)
        self._header = None
        if self._rewrite is not None and len(section) <= HEADER_CAP:
            section = self._rewrite(section)
        extra = self._hook(section) if self._hook and len(section) <= HEADER_CAP else b""
        self._buf[:0] = self._prefix + extra + section

    async def flush(self) -> None:
        """Write the buffered lines to the file (in a worker thread)."""
        data = bytes(self._buf)
        self._buf.clear()
        if data:
            await asyncio.to_thread(self._fh.write, data)
            self.written += len(data)

    async def finish(self) -> Path:
        """Write what is left and close; the file is complete afterwards."""
        if self._header is not None:
            self._end_header()
        await self.flush()
        await asyncio.to_thread(self._fh.close)
        return self.path

    async def discard(self) -> None:
        self._buf.clear()
        self._header = None

        def _remove() -> None:
            self._fh.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

        await asyncio.to_thread(_remove)
