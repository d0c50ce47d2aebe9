"""The one fake DNS resolver of the test suite (an :class:`appliance.dns.Resolver`).

Records come from a dict keyed by (name, type) with values in the adapter's text form
("10 mx.example.net" for MX, joined strings for TXT); a name with records of other types
answers NoData, an unknown name NoSuchDomain. ``failing`` names and ``dead`` give
TemporaryFailure (SERVFAIL). Every query is recorded. The web UI takes it wrapped:
``SyncResolver(FakeResolver(...))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.dns import NoData, NoSuchDomain, RdType, TemporaryFailure


@dataclass
class FakeResolver:
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)  # names answering SERVFAIL
    dead: bool = False  # every query fails temporarily
    queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, rdtype: RdType, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)

    async def lookup(self, name: str, rdtype: RdType) -> list[str]:
        name = name.lower().rstrip(".")
        self.queries.append((name, rdtype))
        if self.dead or name in self.failing:
            raise TemporaryFailure(f"{name} {rdtype}: SERVFAIL")
        if (name, rdtype) in self.records:
            return list(self.records[(name, rdtype)])
        if any(n == name for n, _ in self.records):
            raise NoData(f"{name}: no {rdtype}")
        raise NoSuchDomain(name)
