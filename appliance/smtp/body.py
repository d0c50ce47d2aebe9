"""Message body intake shared by DATA and BDAT: line checks, size limit, spooling.

:class:`BodySink` takes complete lines (CRLF included, transparency dots already
removed), refuses bare CR/LF (RFC 5321 2.3.8), NUL octets, over-long lines and oversize
messages, and writes the rest to the spool. Problems are remembered and answered once, at the end
of the message, so the reply never lands in the middle of the client's data.
:class:`ChunkLines` cuts BDAT chunks (RFC 3030), which may split lines anywhere, back
into lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from appliance.smtp.spool import SpoolWriter

log = logging.getLogger(__name__)

MAX_LINE = 1000  # RFC 5321 4.5.3.1.6: text line incl. CRLF (plus one transparency dot)

BARE_EOL = "550 5.5.2 Bare CR or LF in message data is not allowed"
NUL_DATA = "554 5.6.0 Message contains NUL characters"
LINE_TOO_LONG = "550 5.6.0 Line too long (RFC 5321 4.5.3.1.6)"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
LOCAL_FAILURE = "451 4.3.0 Temporary local failure, try again later"


class BodySink:
    def __init__(self, spool: SpoolWriter, limit: int) -> None:
        self.spool = spool
        self.limit = limit
        self.bare = self.nul = self.too_long = self.too_big = self.failed = False

    @property
    def refused(self) -> bool:
        return self.bare or self.nul or self.too_long or self.too_big or self.failed

    def add(self, lines: bytes) -> bool:
        """Take whole lines as they go to the spool (``lines`` ends with CRLF, or is
        empty); True when the spool's buffer is full and :meth:`flush` is due."""
        if not lines:
            return False
        crlf = lines.count(b"\r\n")
        # RFC 5321 2.3.8: every CR and every LF belongs to a CRLF pair
        if lines.count(b"\r") != crlf or lines.count(b"\n") != crlf or lines[-2:] != b"\r\n":
            self.bare = True
        # RFC 2045 2.7/2.8: 7bit and 8bit data never hold NUL; only a BINARYMIME body
        # may (RFC 3030 3), and BINARYMIME is not offered. Refused, never stripped.
        if b"\x00" in lines:
            self.nul = True
        if self.refused:
            return False
        if self.spool.size + len(lines) > self.limit:
            self.too_big = True  # RFC 1870 6.3: read on, answer 552 at the end
            return False
        return self.spool.append_block(lines)

    def add_data(self, block: bytes, limit: int) -> bool:
        """:meth:`add` for DATA: ``block`` is whole lines with their transparency dots;
        ``limit`` is the longest line allowed, without its CRLF."""
        if len(block) > limit and max(map(len, block.split(b"\r\n"))) > limit:
            self.too_long = True
        if not self.refused:
            # RFC 5321 4.5.2: remove the transparency dot that starts a line
            if b"\r\n." in block:
                block = block.replace(b"\r\n.", b"\r\n")
            if block[:1] == b".":
                block = block[1:]
        return self.add(block)

    async def flush(self) -> None:
        try:
            await self.spool.flush()
        except OSError as exc:
            log.error("smtp=spool-write-failed error=%r", exc)
            self.failed = True

    def reply(self) -> str | None:
        """The refusal for the whole message, or None when it may be delivered."""
        if self.failed:
            return LOCAL_FAILURE
        if self.bare:
            return BARE_EOL
        if self.nul:
            return NUL_DATA
        if self.too_long:
            return LINE_TOO_LONG
        if self.too_big:
            return TOO_BIG
        return None


class ChunkLines:
    """Reassemble lines from BDAT chunks; no dot-unstuffing (RFC 3030 2)."""

    def __init__(self, max_line: int = MAX_LINE + 1) -> None:
        self.max_line = max_line
        self._pending = bytearray()
        self.too_long = False

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        lines: list[bytes] = []
        start = 0
        while True:
            end = self._pending.find(b"\r\n", start)
            if end < 0:
                break
            line = bytes(self._pending[start : end + 2])
            if len(line) > self.max_line + 2:
                self.too_long = True
            lines.append(line)
            start = end + 2
        del self._pending[:start]
        if len(self._pending) > self.max_line + 2:
            self.too_long = True
            keep = self._pending[-1:] if self._pending.endswith(b"\r") else b""
            self._pending[:] = keep  # drop the overlong part; the message is refused anyway
        return lines

    def finish(self) -> bytes:
        """The last line when the message does not end with CRLF (completed with one)."""
        tail = bytes(self._pending)
        self._pending.clear()
        return tail + b"\r\n" if tail else b""


@dataclass
class Chunked:
    """A BDAT transfer in progress."""

    spool: SpoolWriter
    sink: BodySink
    lines: ChunkLines
