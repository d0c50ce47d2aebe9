"""ClamAV: a small clamd client (INSTREAM over a Unix or TCP socket) and its Filter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from appliance.filters.base import InboundMessage, Verdict

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
HOSTNAME_HEADER = "X-Virus-Scanned"


class ClamdError(Exception):
    """clamd is unreachable or reported an error for this scan."""


class ClamdTooLarge(ClamdError):
    """The message exceeds clamd's StreamMaxLength: it was not scanned."""


@dataclass(frozen=True)
class ScanReport:
    infected: bool
    signature: str = ""


class ClamdClient:
    def __init__(
        self, address: str, deadline: float = 60.0, max_bytes: int = 25 * 1024 * 1024
    ) -> None:
        self.address = address  # "/run/clamav/clamd.ctl" or "127.0.0.1:3310"
        self.deadline = deadline
        self.max_bytes = max_bytes  # clamd's default StreamMaxLength is 25M

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.startswith("/"):
            return await asyncio.open_unix_connection(self.address)
        host, _, port = self.address.rpartition(":")
        return await asyncio.open_connection(host.strip("[]"), int(port))

    async def _command(self, payload: Path | None, command: bytes) -> str:
        try:
            async with asyncio.timeout(self.deadline):
                reader, writer = await self._connect()
                # Read while sending: clamd answers and hangs up early when the stream
                # exceeds its StreamMaxLength, and the reply must not be lost to the reset.
                replying = asyncio.ensure_future(reader.readuntil(b"\0"))
                try:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        await self._send(writer, command, payload)
                    reply = await replying
                finally:
                    replying.cancel()
                    writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            raise ClamdError(f"clamd {self.address}: {exc.__class__.__name__}: {exc}") from exc
        return reply.rstrip(b"\0").decode("utf-8", "replace").strip()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, command: bytes, payload: Path | None) -> None:
        writer.write(b"z" + command + b"\0")
        if payload is not None:
            fh = await asyncio.to_thread(payload.open, "rb")
            try:
                while chunk := await asyncio.to_thread(fh.read, CHUNK):
                    # clamd INSTREAM: 4-byte network-order length, then the data.
                    writer.write(struct.pack("!L", len(chunk)) + chunk)
                    await writer.drain()
            finally:
                await asyncio.to_thread(fh.close)
            writer.write(struct.pack("!L", 0))
        await writer.drain()

    async def ping(self) -> bool:
        try:
            return await self._command(None, b"PING") == "PONG"
        except ClamdError:
            return False

    async def scan(self, path: Path) -> ScanReport:
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except OSError as exc:
            raise ClamdError(f"cannot read the message: {exc}") from exc
        if size > self.max_bytes:
            raise ClamdTooLarge(f"{size} bytes is over the scan limit")
        reply = await self._command(path, b"INSTREAM")
        # Replies: "stream: OK", "stream: <name> FOUND", "<text> ERROR".
        if reply.endswith("FOUND"):
            name = reply.removeprefix("stream:").removesuffix("FOUND").strip()
            return ScanReport(True, name)
        if reply.endswith("OK"):
            return ScanReport(False)
        if "size limit exceeded" in reply.lower():
            raise ClamdTooLarge(reply)
        raise ClamdError(reply)


class ClamavFilter:
    name = "clamav"

    def __init__(self, client: ClamdClient, hostname: str, tempfail_when_down: bool = True) -> None:
        self.client = client
        self.hostname = hostname
        self.tempfail_when_down = tempfail_when_down

    async def check(self, msg: InboundMessage) -> Verdict:
        try:
            report = await self.client.scan(msg.path)
        except ClamdTooLarge:
            log.warning("clamav=too-large size=%s", msg.size)
            return Verdict(headers=((HOSTNAME_HEADER, "not scanned (too large)"),))
        except ClamdError as exc:
            log.error("clamav=unavailable reason=%s", exc)
            if self.tempfail_when_down:
                return Verdict(
                    "tempfail",
                    reason="Virus scanner unavailable, try again later",
                    smtp_code=451,
                    enhanced="4.7.0",
                )
            return Verdict(headers=((HOSTNAME_HEADER, "not scanned (scanner unavailable)"),))
        if report.infected:
            log.warning("clamav=infected signature=%s ip=%s", report.signature, msg.client_ip)
            return Verdict(
                "reject",
                reason=f"Message contains a virus ({report.signature})",
                smtp_code=554,
                enhanced="5.7.0",
            )
        return Verdict(headers=((HOSTNAME_HEADER, f"ClamAV at {self.hostname}: clean"),))
