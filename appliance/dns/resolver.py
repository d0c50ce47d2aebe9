"""The one dnspython adapter: :class:`DnsResolver` (async, optionally cached) and
:class:`SyncResolver` for the web UI's threads."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.resolver

from appliance.dns.base import (
    DnsTimeout,
    NoData,
    NoSuchDomain,
    RdType,
    Resolver,
    TemporaryFailure,
)
from appliance.dns.cache import DnsCache


def _name(name: dns.name.Name) -> str:
    return str(name.to_text(omit_final_dot=True)).lower()  # the root stays "."


def record_text(rr: Any, rdtype: RdType) -> str:
    """One record in the normal form :meth:`Resolver.lookup` promises."""
    if rdtype == "TXT":
        return b"".join(rr.strings).decode("utf-8", "replace")
    if rdtype == "MX":
        return f"{int(rr.preference)} {_name(rr.exchange)}"
    if rdtype == "SRV":
        return f"{rr.priority} {rr.weight} {rr.port} {_name(rr.target)}"
    if rdtype in ("CNAME", "PTR"):
        return _name(rr.target)
    return str(rr.to_text())


def _negative_ttl(response: object) -> float:
    """RFC 2308 5: min(SOA TTL, SOA MINIMUM) of the zone; dnspython's short default
    when the answer carries no SOA; 0 (not kept) when the answer cannot be read."""
    if not isinstance(response, dns.message.QueryMessage):
        return 0.0
    try:
        return float(response.resolve_chaining().minimum_ttl)
    except dns.exception.DNSException:
        return 0.0


def _dnspython(nameservers: Sequence[str], port: int) -> dns.asyncresolver.Resolver:
    try:
        resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    except dns.resolver.NoResolverConfiguration:
        # No usable /etc/resolv.conf (early boot): a local resolver or nothing.
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
    if nameservers:  # tests, a local resolver: /etc/resolv.conf is not read
        resolver.nameservers = list(nameservers)
        resolver.port = port
    resolver.cache = None  # ours is DnsCache: bounded, TTL-capped, with an injected clock
    return resolver


class DnsResolver:
    """:class:`Resolver` on dnspython's asyncio resolver (the system's name servers unless
    ``nameservers`` is given). ``timeout`` bounds each lookup, retries included."""

    def __init__(
        self,
        timeout: float = 10.0,
        nameservers: Sequence[str] = (),
        port: int = 53,
        cache: DnsCache | None = None,
    ) -> None:
        self._resolver = _dnspython(nameservers, port)
        self.timeout = timeout
        self.cache = cache

    def with_timeout(self, timeout: float) -> DnsResolver:
        """The same name servers and cache with another time budget per lookup."""
        other = copy.copy(self)
        other.timeout = timeout
        return other

    async def lookup(self, name: str, rdtype: RdType) -> list[str]:
        if self.cache is not None:
            cached = self.cache.get(name, rdtype)  # raises a cached NXDOMAIN / NODATA
            if cached is not None:
                return cached
        try:
            answer = await self._resolver.resolve(
                name, rdtype, search=False, lifetime=self.timeout, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.kwargs.get("responses", {}).values())
            self._keep_negative(name, rdtype, NoSuchDomain, responses[0] if responses else None)
            raise NoSuchDomain(f"{name}: no such domain") from None
        except dns.exception.Timeout as exc:
            raise DnsTimeout(f"{name} {rdtype}: {exc.__class__.__name__}") from exc
        except dns.resolver.NoNameservers as exc:  # SERVFAIL / REFUSED from every server
            raise TemporaryFailure(f"{name} {rdtype}: {exc.__class__.__name__}") from exc
        except dns.exception.DNSException as exc:
            raise TemporaryFailure(f"{name} {rdtype}: {exc}") from exc
        if answer.rrset is None:
            self._keep_negative(name, rdtype, NoData, answer.response)
            raise NoData(f"{name}: no {rdtype} record")
        values = [record_text(rr, rdtype) for rr in answer.rrset]
        if self.cache is not None:
            self.cache.put(name, rdtype, values, answer.chaining_result.minimum_ttl)
        return values

    def _keep_negative(
        self,
        name: str,
        rdtype: str,
        kind: type[NoSuchDomain] | type[NoData],
        response: object,
    ) -> None:
        if self.cache is not None:
            self.cache.put_negative(name, rdtype, kind, _negative_ttl(response))


class SyncResolver:
    """:class:`appliance.dns.base.SyncLookup` over any :class:`Resolver`: each lookup
    runs on a short event loop of its own, so threads can ask in parallel. Not for code
    already inside an event loop."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def lookup(self, name: str, rdtype: RdType) -> list[str]:
        return asyncio.run(self.resolver.lookup(name, rdtype))
