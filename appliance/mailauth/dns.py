"""DNS for message authentication: one generic lookup plug point.

SPF, DKIM, DMARC and DNSBL checks all ask :class:`AuthResolver` for records by type.
Failures raise the typed errors of :mod:`appliance.queue.resolver`: ``NoSuchDomain``
(NXDOMAIN), ``NoData`` (no record of that type) and ``DnsError`` (timeout, SERVFAIL:
``temporary``). Tests inject a fake resolver; nothing here touches the network by itself.
"""

from __future__ import annotations

from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver

from appliance.queue.resolver import DnsError, NoData, NoSuchDomain, query

__all__ = ["AuthResolver", "DnsAuthResolver", "DnsError", "NoData", "NoSuchDomain"]


class AuthResolver(Protocol):
    async def lookup(self, name: str, rdtype: str) -> list[str]:
        """Records of ``rdtype`` (A, AAAA, MX, TXT, PTR) for ``name`` as text.

        TXT strings are joined; MX is ``"preference exchange"``; names carry no
        trailing dot. Raises NoSuchDomain, NoData or DnsError."""
        ...


CACHE_ENTRIES = 20_000


class DnsAuthResolver:
    """:class:`AuthResolver` on dnspython's asyncio resolver with a per-query lifetime."""

    def __init__(
        self, timeout: float = 5.0, nameservers: list[str] | None = None, port: int = 53
    ) -> None:
        configure = not nameservers  # explicit servers: do not read /etc/resolv.conf
        try:
            self._resolver = dns.asyncresolver.Resolver(configure=configure)
        except dns.resolver.NoResolverConfiguration:
            # No usable /etc/resolv.conf (early boot): a local resolver or nothing.
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = nameservers or ["127.0.0.1"]
        self._resolver.lifetime = timeout
        # Answers, NXDOMAIN and NODATA are kept for their TTL (negative: the SOA minimum):
        # a burst of mail from one domain asks the network once, not per message.
        self._resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
        if nameservers:
            self._resolver.nameservers = nameservers
            self._resolver.port = port

    async def lookup(self, name: str, rdtype: str) -> list[str]:
        answer = await query(self._resolver, name, rdtype)
        out: list[str] = []
        for rr in answer:
            if rdtype == "TXT":
                out.append(b"".join(rr.strings).decode("utf-8", "replace"))
            elif rdtype == "MX":
                exchange = rr.exchange.to_text(omit_final_dot=True).lower()
                out.append(f"{int(rr.preference)} {exchange}")
            else:
                out.append(rr.to_text().rstrip("."))
        return out
