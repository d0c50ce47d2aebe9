"""What the box asks of DNS: one lookup, its typed errors, and MX/address helpers on top.

Every DNS user (outbound MX routing, MTA-STS, SPF, DKIM, DMARC, DNSBL, the web UI's
record check) goes through :class:`Resolver`. Values come back as text, one normal form
per type (see :func:`appliance.dns.resolver.record_text`), so a fake in a test returns
exactly what the dnspython adapter returns.
"""

from __future__ import annotations

from typing import Literal, Protocol

RdType = Literal["A", "AAAA", "MX", "TXT", "PTR", "CNAME", "SRV"]


class DnsError(Exception):
    """A lookup that failed; ``temporary`` failures are worth asking again later."""

    temporary = True


class NoSuchDomain(DnsError):
    """NXDOMAIN: the name does not exist (RFC 8020)."""

    temporary = False


class NoData(DnsError):
    """The name exists but has no record of the asked type (RFC 2308 2.2)."""

    temporary = False


class TemporaryFailure(DnsError):
    """SERVFAIL, REFUSED, no usable name server, a malformed answer: neither yes nor no."""


class DnsTimeout(TemporaryFailure):
    """No answer within the lookup's time budget."""


class Resolver(Protocol):
    async def lookup(self, name: str, rdtype: RdType) -> list[str]:
        """Records of ``rdtype`` for ``name`` as text, names lower-case without the
        trailing dot: A/AAAA the address; MX ``"10 mx.example.org"`` (``"0 ."`` for a
        null MX); TXT the strings joined; SRV ``"0 1 993 imap.example.org"``;
        CNAME/PTR the target. Raises NoSuchDomain, NoData, TemporaryFailure, DnsTimeout."""
        ...


class SyncLookup(Protocol):
    """The same lookup for code without an event loop (the web UI's worker threads)."""

    def lookup(self, name: str, rdtype: RdType) -> list[str]: ...


async def mx(resolver: Resolver, domain: str) -> list[tuple[int, str]]:
    """(preference, exchange) pairs; exchange ``"."`` for a null MX (RFC 7505)."""
    out: list[tuple[int, str]] = []
    for text in await resolver.lookup(domain, "MX"):
        preference, _, exchange = text.partition(" ")
        out.append((int(preference), exchange))
    return out


async def addresses(resolver: Resolver, host: str) -> list[str]:
    """A then AAAA addresses of ``host``. NoData when it has neither; when nothing was
    found and a lookup failed otherwise, that failure (so a SERVFAIL is not a no)."""
    found: list[str] = []
    errors: list[DnsError] = []
    rdtypes: tuple[RdType, ...] = ("A", "AAAA")
    for rdtype in rdtypes:
        try:
            found += await resolver.lookup(host, rdtype)
        except NoData:
            continue
        except DnsError as exc:
            errors.append(exc)
    if not found and errors:
        raise errors[0]
    if not found:
        raise NoData(f"{host}: no address")
    return found
