"""rspamd over its HTTP API: /checkv2 scans, /learnspam and /learnham train.

A minimal HTTP/1.1 client on asyncio streams (one request per connection) keeps the
message streaming from the spool file instead of loading it into memory at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from appliance.filters.base import InboundMessage, Verdict

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_REPLY = 4 * 1024 * 1024


class RspamdError(Exception):
    """rspamd could not be reached or answered nonsense."""


@dataclass(frozen=True)
class ScanResult:
    score: float
    required: float
    action: str  # rspamd's own action ("no action", "add header", "soft reject", ...)
    symbols: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class SpamThresholds:
    header: float = 5.0
    junk: float = 6.0
    reject: float = 15.0


async def _request(
    url: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: Path | None,
    deadline: float,
) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise RspamdError(f"unsupported URL {url!r}")
    host, port = parts.hostname, parts.port or 80
    try:
        size = (await asyncio.to_thread(body.stat)).st_size if body is not None else 0
    except OSError as exc:
        raise RspamdError(f"cannot read the message: {exc}") from exc
    lines = [f"POST {parts.path.rstrip('/')}{path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers if "\r" not in v and "\n" not in v]
    lines += [f"Content-Length: {size}", "Connection: close", "", ""]
    try:
        async with asyncio.timeout(deadline):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write("\r\n".join(lines).encode("utf-8"))
                if body is not None:
                    fh = await asyncio.to_thread(body.open, "rb")
                    try:
                        while chunk := await asyncio.to_thread(fh.read, CHUNK):
                            writer.write(chunk)
                            await writer.drain()
                    finally:
                        await asyncio.to_thread(fh.close)
                await writer.drain()
                raw = await reader.read(MAX_REPLY)
                while len(raw) < MAX_REPLY and (more := await reader.read(MAX_REPLY)):
                    raw += more
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        raise RspamdError(f"{url}{path}: {exc.__class__.__name__}: {exc}") from exc
    head, sep, payload = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise RspamdError(f"{url}{path}: malformed HTTP reply")
    if b"transfer-encoding: chunked" in head.lower():
        payload = _dechunk(payload)
    return int(status_line[1]), payload


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise RspamdError("malformed chunked reply") from None
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


class RspamdClient:
    def __init__(
        self, url: str, controller_url: str, password: str = "", deadline: float = 30.0
    ) -> None:
        self.url = url
        self.controller_url = controller_url
        self.password = password
        self.deadline = deadline

    async def check(self, msg: InboundMessage) -> ScanResult:
        headers = [("IP", msg.client_ip), ("Helo", msg.helo), ("From", msg.mail_from)]
        if msg.client_name:
            headers.append(("Hostname", msg.client_name))
        if msg.authenticated_user:
            headers.append(("User", msg.authenticated_user))
        headers += [("Rcpt", rcpt) for rcpt in msg.rcpt_to]  # one field per recipient
        status, payload = await _request(self.url, "/checkv2", headers, msg.path, self.deadline)
        if status != 200:
            raise RspamdError(f"/checkv2 answered HTTP {status}")
        try:
            data: dict[str, Any] = json.loads(payload)
            symbols = data.get("symbols") or {}
            return ScanResult(
                score=float(data["score"]),
                required=float(data.get("required_score", 0.0)),
                action=str(data.get("action", "")),
                symbols=tuple(
                    sorted(
                        ((str(name), float(s.get("score", 0.0))) for name, s in symbols.items()),
                        key=lambda item: -abs(item[1]),
                    )
                ),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RspamdError(f"/checkv2: unexpected reply {payload[:200]!r}") from exc

    async def learn(self, kind: Literal["spam", "ham"], path: Path) -> bool:
        """Train the Bayes classifier; True when learned (or already known)."""
        headers = [("Password", self.password)] if self.password else []
        endpoint = "/learnspam" if kind == "spam" else "/learnham"
        status, payload = await _request(
            self.controller_url, endpoint, headers, path, self.deadline
        )
        if status == 200:
            return True
        if status == 208 or b"already learned" in payload.lower():
            return True
        if status == 204:
            log.info("rspamd=not-learned endpoint=%s", endpoint)  # e.g. too few tokens
            return False
        raise RspamdError(f"{endpoint} answered HTTP {status}: {payload[:200]!r}")


def spam_verdict(result: ScanResult, thresholds: SpamThresholds) -> Verdict:
    """Score -> X-Spam headers and the configured action."""
    is_spam = result.score >= thresholds.header
    symbols = ", ".join(f"{name}({score:.2f})" for name, score in result.symbols[:30])
    headers = (
        ("X-Spam", "Yes" if is_spam else "No"),
        ("X-Spam-Score", f"{result.score:.2f} / {thresholds.junk:.2f}"),
        ("X-Spam-Symbols", symbols or "none"),
    )
    if result.score >= thresholds.reject:
        return Verdict(
            "reject", headers, reason="Message rejected as spam", smtp_code=550, enhanced="5.7.1"
        )
    if result.action == "soft reject":
        # rspamd's own rate limit / greylisting asked the client to come back later.
        return Verdict(
            "tempfail", headers, reason="Try again later", smtp_code=451, enhanced="4.7.1"
        )
    if result.score >= thresholds.junk:
        return Verdict("junk", headers, reason="spam score")
    return Verdict(headers=headers)


class RspamdFilter:
    name = "rspamd"

    def __init__(self, client: RspamdClient, thresholds: SpamThresholds) -> None:
        self.client = client
        self.thresholds = thresholds

    async def check(self, msg: InboundMessage) -> Verdict:
        if msg.authenticated_user:
            return Verdict()
        try:
            result = await self.client.check(msg)
        except RspamdError as exc:
            # Never lose or bounce mail because the scanner is down.
            log.error("rspamd=unavailable reason=%s", exc)
            return Verdict(headers=(("X-Spam-Status", "unknown (scanner unavailable)"),))
        log.info("rspamd score=%.2f action=%s ip=%s", result.score, result.action, msg.client_ip)
        return spam_verdict(result, self.thresholds)
