"""DNS blocklists (RFC 5782) for the built-in spam path (rspamd off)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from typing import Literal

from appliance.dns import DnsError, NoData, NoSuchDomain, Resolver
from appliance.filters.base import InboundMessage, Verdict

log = logging.getLogger(__name__)

_LOCAL_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "100.64.0.0/10")
)


def query_name(ip: str, zone: str) -> str:
    """RFC 5782 2.1 (IPv4: reversed octets) and 2.4 (IPv6: reversed nibbles)."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.version == 4:
        label = ".".join(reversed(str(addr).split(".")))
    else:
        label = ".".join(reversed(addr.exploded.replace(":", "")))
    return f"{label}.{zone}"


def is_listing(answer: str) -> bool:
    """RFC 5782 2.1: 127.0.0.0/8 means listed. Spamhaus answers 127.255.255.x for
    refused or bad queries (e.g. through a public resolver): not a listing."""
    try:
        addr = ipaddress.ip_address(answer)
    except ValueError:
        return False
    return addr in ipaddress.ip_network("127.0.0.0/8") and not str(addr).startswith("127.255.255.")


def should_check(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.is_loopback or addr.is_link_local or addr.is_unspecified:
        return False
    return not any(addr in net for net in _LOCAL_NETS if net.version == addr.version)


class DnsblFilter:
    name = "dnsbl"

    def __init__(
        self,
        resolver: Resolver,
        zones: Sequence[str],
        action: Literal["reject", "junk"] = "reject",
    ) -> None:
        self.resolver = resolver
        self.zones = tuple(zones)
        self.action = action

    async def _lookup(self, ip: str, zone: str) -> bool:
        try:
            answers = await self.resolver.lookup(query_name(ip, zone), "A")
        except (NoSuchDomain, NoData):
            return False
        except DnsError as exc:
            log.warning("dnsbl=unavailable zone=%s reason=%s", zone, exc)
            return False  # a dead list never blocks mail
        return any(is_listing(a) for a in answers)

    async def listed(self, ip: str) -> list[str]:
        """The zones listing ``ip``."""
        if not should_check(ip) or not self.zones:
            return []
        results = await asyncio.gather(*(self._lookup(ip, z) for z in self.zones))
        return [z for z, hit in zip(self.zones, results, strict=True) if hit]

    async def check(self, msg: InboundMessage) -> Verdict:
        if msg.authenticated_user:
            return Verdict()
        zones = await self.listed(msg.client_ip)
        if not zones:
            return Verdict()
        log.info("dnsbl=listed ip=%s zones=%s", msg.client_ip, ",".join(zones))
        headers = (("X-DNSBL", ", ".join(zones)),)
        if self.action == "junk":
            return Verdict("junk", headers, reason="listed in a DNS blocklist")
        return Verdict(
            "reject",
            headers,
            reason=f"Client host [{msg.client_ip}] blocked using {zones[0]}",
            smtp_code=550,
            enhanced="5.7.1",
        )
