"""DNS for outbound delivery: the Resolver protocol, a dnspython implementation and MX
selection (RFC 5321 5.1, null MX RFC 7505)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver


class DnsError(Exception):
    """A lookup that failed; ``temporary`` failures are retried later."""

    temporary = True


class NoSuchDomain(DnsError):
    """NXDOMAIN: the name does not exist."""

    temporary = False


class NoData(DnsError):
    """The name exists but has no record of the asked type."""

    temporary = False


class NullMx(DnsError):
    """The domain publishes a null MX: it accepts no mail (RFC 7505)."""

    temporary = False


class Resolver(Protocol):
    """What outbound delivery asks of DNS. Raise DnsError subclasses on failure."""

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs; exchange without the trailing dot, "" for "."."""
        ...

    async def addresses(self, host: str) -> list[str]:
        """A and AAAA addresses of ``host`` (IPv4 first)."""
        ...

    async def txt(self, name: str) -> list[str]:
        """TXT records of ``name``, each with its strings joined."""
        ...


async def query(
    resolver: dns.asyncresolver.Resolver, name: str, rdtype: str
) -> dns.resolver.Answer:
    """One lookup with dnspython's errors mapped to NoSuchDomain, NoData and DnsError."""
    try:
        return await resolver.resolve(name, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        raise NoSuchDomain(f"{name}: no such domain") from None
    except dns.resolver.NoAnswer:
        raise NoData(f"{name}: no {rdtype} record") from None
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise DnsError(f"{name} {rdtype}: {exc.__class__.__name__}") from exc
    except dns.exception.DNSException as exc:
        raise DnsError(f"{name} {rdtype}: {exc}") from exc


class DnsResolver:
    """:class:`Resolver` on dnspython's asyncio resolver (the system's nameservers)."""

    def __init__(
        self, timeout: float = 10.0, nameservers: Sequence[str] = (), port: int = 53
    ) -> None:
        """``nameservers``/``port`` override /etc/resolv.conf (tests, a local resolver)."""
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.cache = dns.resolver.LRUCache(max_size=2048)  # honours record TTLs

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer:
        return await query(self._resolver, name, rdtype)

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        answer = await self._query(domain, "MX")
        return [
            (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower())
            for r in answer
            if r.rdtype == dns.rdatatype.MX
        ]

    async def addresses(self, host: str) -> list[str]:
        found: list[str] = []
        errors: list[DnsError] = []
        for rdtype in ("A", "AAAA"):
            try:
                found += [r.to_text() for r in await self._query(host, rdtype)]
            except NoData:
                continue
            except DnsError as exc:
                errors.append(exc)
        if not found and errors:
            raise errors[0]
        if not found:
            raise NoData(f"{host}: no address")
        return found

    async def txt(self, name: str) -> list[str]:
        answer = await self._query(name, "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int
    implicit: bool = False  # no MX record: the domain itself (RFC 5321 5.1)


async def mx_hosts(resolver: Resolver, domain: str, rng: random.Random) -> list[MxHost]:
    """The hosts to try for ``domain`` in order. Raises NullMx, NoSuchDomain, DnsError."""
    try:
        records = await resolver.mx(domain)
    except NoData:
        records = []
    # RFC 7505 3: a single MX with exchange "." means the domain accepts no mail.
    if len(records) == 1 and records[0][1] in ("", "."):
        raise NullMx(f"{domain} does not accept mail (null MX)")
    records = [(pref, host) for pref, host in records if host not in ("", ".")]
    if not records:
        # RFC 5321 5.1: no MX records -> the domain itself is the implicit MX.
        return [MxHost(domain, 0, implicit=True)]
    # RFC 5321 5.1: equal preferences are tried in random order.
    shuffled = [(pref, rng.random(), host) for pref, host in records]
    shuffled.sort()
    seen: set[str] = set()
    result: list[MxHost] = []
    for pref, _, host in shuffled:
        if host not in seen:
            seen.add(host)
            result.append(MxHost(host, pref))
    return result
