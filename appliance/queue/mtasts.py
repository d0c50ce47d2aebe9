"""MTA-STS (RFC 8461): policy discovery, HTTPS fetch, cache and MX matching.

The HTTPS fetcher is a plug point (:class:`PolicyFetcher`) so tests serve policies from a
local HTTPS server. The cache lives in memory for the life of the daemon.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from appliance import atomicfile
from appliance.dns import DnsError, Resolver

log = logging.getLogger(__name__)

Mode = Literal["enforce", "testing", "none"]
MAX_POLICY_BYTES = 64 * 1024
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: max_age at most one year


class PolicyError(Exception):
    """A policy that could not be fetched or parsed."""


@dataclass(frozen=True)
class Policy:
    mode: Mode
    mx: tuple[str, ...]
    max_age: int
    id: str = ""

    def matches(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: exact match, or "*." matching exactly one leftmost label."""
    p = pattern.lower().rstrip(".")
    h = host.lower().rstrip(".")
    if p.startswith("*."):
        label, dot, rest = h.partition(".")
        return bool(label) and bool(dot) and rest == p[2:]
    return p == h


def parse_txt(records: list[str]) -> str | None:
    """The policy id of the one ``v=STSv1`` record, or None (RFC 8461 3.1)."""
    sts = [r for r in records if r.replace(" ", "").startswith("v=STSv1;") or r == "v=STSv1"]
    if len(sts) != 1:
        return None  # RFC 8461 3.1: several records -> treat as no policy
    fields: dict[str, str] = {}
    for part in sts[0].split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    ident = fields.get("id", "")
    if not (0 < len(ident) <= 32 and ident.isalnum()):
        return None
    return ident


def parse_policy(text: str, ident: str = "") -> Policy:
    """Parse an RFC 8461 3.2 policy body (key: value lines, LF or CRLF)."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower())
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError("policy version is not STSv1")
    mode = fields.get("mode", "")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"policy mode {mode!r} is not enforce, testing or none")
    age_text = fields.get("max_age", "")
    if not age_text.isdigit() or len(age_text) > 10:
        raise PolicyError("policy max_age is missing or not a number")
    if mode != "none" and not mx:
        raise PolicyError("policy lists no mx")
    max_age = min(int(age_text), MAX_AGE_LIMIT)
    return Policy(mode, tuple(mx), max_age, ident)  # type: ignore[arg-type]


class PolicyFetcher(Protocol):
    async def fetch(self, domain: str) -> str:
        """The body of https://mta-sts.<domain>/.well-known/mta-sts.txt; PolicyError on
        any failure (TLS, status, media type, size, redirect)."""
        ...


class HttpsPolicyFetcher:
    """Fetches policies over verified HTTPS (RFC 8461 3.3). ``connect_to`` maps the
    policy host to the (address, port) to connect to; tests point it at loopback."""

    def __init__(
        self,
        context_factory: Callable[[], ssl.SSLContext],
        connect_to: Callable[[str], tuple[str, int]] = lambda host: (host, 443),
        timeout: float = 30.0,
    ) -> None:
        self.context_factory = context_factory
        self.connect_to = connect_to
        self.timeout = timeout

    def _fetch_blocking(self, domain: str) -> str:
        host = f"mta-sts.{domain}"
        address, port = self.connect_to(host)
        context = self.context_factory()
        try:
            raw = socket.create_connection((address, port), timeout=self.timeout)
            # RFC 8461 3.3: the certificate must be valid for mta-sts.<domain>.
            with context.wrap_socket(raw, server_hostname=host) as sock:
                request = (
                    f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                    "User-Agent: pillarbox\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
                )
                sock.sendall(request.encode("ascii"))
                response = http.client.HTTPResponse(sock)
                response.begin()
                # RFC 8461 3.3: redirects are not followed; only 200 counts.
                if response.status != 200:
                    raise PolicyError(f"{host}: HTTP status {response.status}")
                ctype = (response.getheader("Content-Type") or "").split(";")[0].strip()
                if ctype.lower() != "text/plain":
                    raise PolicyError(f"{host}: media type {ctype!r} is not text/plain")
                body = response.read(MAX_POLICY_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise PolicyError(f"{host}: {exc}") from exc
        if len(body) > MAX_POLICY_BYTES:
            raise PolicyError(f"{host}: policy larger than 64 KiB")
        return body.decode("utf-8", "replace")

    async def fetch(self, domain: str) -> str:
        return await asyncio.to_thread(self._fetch_blocking, domain)


@dataclass(frozen=True)
class _Cached:
    policy: Policy
    expires: float


class MtaSts:
    """Policy lookups with a cache honouring max_age (RFC 8461 5.1). With ``cache_file``
    the cache survives restarts, so a restart does not reopen a downgrade window."""

    def __init__(
        self,
        resolver: Resolver,
        fetcher: PolicyFetcher,
        clock: Callable[[], float],
        cache_file: Path | None = None,
    ) -> None:
        self.resolver = resolver
        self.fetcher = fetcher
        self.clock = clock
        self.cache_file = cache_file
        self._cache: dict[str, _Cached] = {}
        self._loaded = cache_file is None
        self._save_lock = asyncio.Lock()

    def _load_blocking(self) -> dict[str, _Cached]:
        assert self.cache_file is not None
        try:
            raw = json.loads(self.cache_file.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("queue_id=- event=mta-sts-cache-unreadable error=%s", exc)
            return {}
        result: dict[str, _Cached] = {}
        for domain, item in raw.items() if isinstance(raw, dict) else ():
            try:
                policy = Policy(item["mode"], tuple(item["mx"]), int(item["max_age"]), item["id"])
                result[str(domain)] = _Cached(policy, float(item["expires"]))
            except (KeyError, TypeError, ValueError):
                continue
        return result

    def _save_blocking(self, snapshot: dict[str, _Cached]) -> None:
        assert self.cache_file is not None
        data = {
            domain: {
                "mode": c.policy.mode,
                "mx": list(c.policy.mx),
                "max_age": c.policy.max_age,
                "id": c.policy.id,
                "expires": c.expires,
            }
            for domain, c in snapshot.items()
        }
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_text(self.cache_file, json.dumps(data))

    async def _ensure_loaded(self) -> None:
        if not self._loaded:
            loaded = await asyncio.to_thread(self._load_blocking)
            loaded.update(self._cache)
            self._cache = loaded
            self._loaded = True

    def _cached(self, domain: str) -> Policy | None:
        hit = self._cache.get(domain)
        if hit is None or hit.expires <= self.clock():
            return None
        return hit.policy

    async def policy(self, domain: str, log_id: str = "-") -> Policy | None:
        """The policy in force for ``domain`` (None = no MTA-STS, deliver as usual)."""
        found = await self._lookup(domain.lower().rstrip("."), log_id)
        return found if found is not None and found.mode != "none" else None

    async def _lookup(self, domain: str, log_id: str) -> Policy | None:
        await self._ensure_loaded()
        cached = self._cached(domain)
        try:
            ident = parse_txt(await self.resolver.lookup(f"_mta-sts.{domain}", "TXT"))
        except DnsError:
            ident = None
        if ident is None:
            return cached  # RFC 8461 5.1: a cached unexpired policy still applies
        if cached is not None and cached.id == ident:
            return cached
        try:
            fetched = parse_policy(await self.fetcher.fetch(domain), ident)
        except PolicyError as exc:
            log.warning(
                "queue_id=%s domain=%s event=mta-sts-fetch-failed error=%s", log_id, domain, exc
            )
            return cached
        self._cache[domain] = _Cached(fetched, self.clock() + fetched.max_age)
        if self.cache_file is not None:
            now = self.clock()
            live = {d: c for d, c in self._cache.items() if c.expires > now}
            try:
                async with self._save_lock:
                    await asyncio.to_thread(self._save_blocking, live)
            except OSError as exc:
                log.warning("queue_id=%s event=mta-sts-cache-not-saved error=%s", log_id, exc)
        log.info(
            "queue_id=%s domain=%s event=mta-sts-policy mode=%s id=%s max_age=%d",
            log_id,
            domain,
            fetched.mode,
            ident,
            fetched.max_age,
        )
        return fetched
