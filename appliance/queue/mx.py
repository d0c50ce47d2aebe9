"""MX selection for outbound delivery (RFC 5321 5.1, null MX RFC 7505) on the box's one
DNS interface (:mod:`appliance.dns`)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from appliance.dns import DnsError, NoData, Resolver, mx


class NullMx(DnsError):
    """The domain publishes a null MX: it accepts no mail (RFC 7505)."""

    temporary = False


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int
    implicit: bool = False  # no MX record: the domain itself (RFC 5321 5.1)


async def mx_hosts(resolver: Resolver, domain: str, rng: random.Random) -> list[MxHost]:
    """The hosts to try for ``domain`` in order. Raises NullMx, NoSuchDomain, DnsError."""
    try:
        records = await mx(resolver, domain)
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
