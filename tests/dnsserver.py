"""A tiny authoritative DNS server on loopback UDP, so tests exercise the real dnspython
adapter (appliance.dns.DnsResolver) on real sockets.

The zone maps (name, type) to record texts in zone-file form (``"10 mx.example.net."``,
``'"v=spf1 " "mx -all"'``); a CNAME is followed one step. A name with records of other
types answers NOERROR with no data, an unknown name NXDOMAIN; with ``soa`` set, negative
answers carry that SOA in the authority section (RFC 2308 3). Names starting ``silent.``
never get an answer, names starting ``broken.`` get SERVFAIL. Every question is recorded
in ``queries``.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass(frozen=True)
class Soa:
    zone: str  # "example.org."
    ttl: int  # of the SOA record itself
    minimum: int  # the SOA MINIMUM field: the negative TTL (RFC 2308 4)


class DnsServer:
    def __init__(
        self, zone: dict[tuple[str, str], list[str]], ttl: int = 300, soa: Soa | None = None
    ) -> None:
        self.zone = {(_fqdn(name), rdtype): values for (name, rdtype), values in zone.items()}
        self.ttl = ttl
        self.ttls: dict[tuple[str, str], int] = {}  # per-record TTL overrides
        self.soa = soa
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        name, rdtype = q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
        self.queries.append((name, rdtype))
        if name.startswith("silent."):
            return None  # never answers: the client must time out
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if name.startswith("broken."):
            reply.set_rcode(dns.rcode.SERVFAIL)
            return bytes(reply.to_wire())
        cname = self.zone.get((name, "CNAME"))
        if cname and rdtype != "CNAME":  # RFC 1034 4.3.2: the alias, then its target
            ttl = self.ttls.get((name, "CNAME"), self.ttl)
            reply.answer.append(dns.rrset.from_text_list(name, ttl, "IN", "CNAME", cname))
            name = _fqdn(cname[0])
        records = self.zone.get((name, rdtype))
        if records:
            ttl = self.ttls.get((name, rdtype), self.ttl)
            reply.answer.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, records))
            return bytes(reply.to_wire())
        if not any(n == name for n, _ in self.zone):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if self.soa is not None:
            soa = f"ns.{self.soa.zone} admin.{self.soa.zone} 1 3600 600 86400 {self.soa.minimum}"
            reply.authority.append(
                dns.rrset.from_text(self.soa.zone, self.soa.ttl, "IN", "SOA", soa)
            )
        return bytes(reply.to_wire())

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(wire)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."
