"""The dnspython adapter (appliance.dns.DnsResolver) against a DNS server on loopback UDP:
the text form of each record type, the typed errors, and the cache it shares (TTL from the
answer, negative TTL from the SOA, failures never kept). The error cases also run against
the test suite's fake, so the fake cannot drift from the adapter."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from appliance.dns import (
    DnsCache,
    DnsError,
    DnsResolver,
    DnsTimeout,
    NoData,
    NoSuchDomain,
    RdType,
    Resolver,
    SyncResolver,
    TemporaryFailure,
)
from appliance.dns.cache import MAX_TTL
from tests.dnsfake import FakeResolver
from tests.dnsserver import DnsServer, Soa

ZONE: dict[tuple[str, str], list[str]] = {
    ("example.org", "A"): ["192.0.2.1", "192.0.2.2"],
    ("example.org", "AAAA"): ["2001:db8::1"],
    ("example.org", "MX"): ["10 MX1.Example.ORG.", "20 mx2.example.org."],
    ("example.org", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 " "-all"'],
    ("nomail.example.org", "MX"): ["0 ."],
    ("www.example.org", "CNAME"): ["Host.Example.ORG."],
    ("host.example.org", "A"): ["192.0.2.7"],
    ("1.2.0.192.in-addr.arpa", "PTR"): ["Mail.Example.ORG."],
    ("_imaps._tcp.example.org", "SRV"): ["0 1 993 Mail.Example.ORG."],
    ("long.example.org", "A"): ["192.0.2.9"],
}


@dataclass
class Clock:
    now: float = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE, ttl=60, soa=Soa("example.org.", ttl=600, minimum=30)) as s:
        s.ttls[("long.example.org.", "A")] = 2**31 - 1
        s.ttls[("www.example.org.", "CNAME")] = 20
        yield s


def adapter(server: DnsServer, cache: DnsCache | None = None, timeout: float = 3) -> DnsResolver:
    return DnsResolver(timeout=timeout, nameservers=["127.0.0.1"], port=server.port, cache=cache)


def lookup(resolver: Resolver, name: str, rdtype: RdType) -> list[str]:
    return asyncio.run(resolver.lookup(name, rdtype))


@pytest.mark.parametrize(
    ("name", "rdtype", "values"),
    [
        ("example.org", "A", ["192.0.2.1", "192.0.2.2"]),
        ("example.org", "AAAA", ["2001:db8::1"]),
        ("Example.ORG.", "MX", ["10 mx1.example.org", "20 mx2.example.org"]),
        ("nomail.example.org", "MX", ["0 ."]),  # RFC 7505 null MX
        ("example.org", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"]),  # strings joined
        ("www.example.org", "CNAME", ["host.example.org"]),
        ("www.example.org", "A", ["192.0.2.7"]),  # the CNAME followed
        ("1.2.0.192.in-addr.arpa", "PTR", ["mail.example.org"]),
        ("_imaps._tcp.example.org", "SRV", ["0 1 993 mail.example.org"]),
    ],
)
def test_record_text(server: DnsServer, name: str, rdtype: RdType, values: list[str]) -> None:
    assert sorted(lookup(adapter(server), name, rdtype)) == values


def fake() -> FakeResolver:
    return FakeResolver(
        {("example.org", "A"): ["192.0.2.1"]},
        failing={"broken.example.org"},
    )


@pytest.mark.parametrize("kind", ["adapter", "fake"])
@pytest.mark.parametrize(
    ("name", "error", "temporary"),
    [
        ("nothing.example.org", NoSuchDomain, False),
        ("example.org", NoData, False),  # the name exists, no PTR
        ("broken.example.org", TemporaryFailure, True),  # SERVFAIL
    ],
)
def test_errors(
    server: DnsServer, kind: str, name: str, error: type[DnsError], temporary: bool
) -> None:
    resolver: Resolver = adapter(server) if kind == "adapter" else fake()
    with pytest.raises(error) as info:
        lookup(resolver, name, "PTR")
    assert info.value.temporary is temporary
    assert not isinstance(info.value, DnsTimeout)


def test_silence_is_a_timeout_within_the_budget(server: DnsServer) -> None:
    start = time.monotonic()
    with pytest.raises(DnsTimeout) as info:
        lookup(adapter(server, timeout=0.5), "silent.example.org", "TXT")
    assert time.monotonic() - start < 3
    assert info.value.temporary and isinstance(info.value, TemporaryFailure)


@pytest.mark.parametrize(
    ("name", "rdtype", "kept"),
    [
        ("example.org", "MX", 60),  # the record's TTL
        ("www.example.org", "A", 20),  # the smallest along the CNAME chain (20 s, then 60 s)
        ("long.example.org", "A", MAX_TTL),  # a TTL of 68 years, capped at a day
    ],
)
def test_answers_cached_for_their_ttl(
    server: DnsServer, name: str, rdtype: RdType, kept: float
) -> None:
    clock = Clock()
    resolver = adapter(server, DnsCache(clock=clock))
    before = len(server.queries)
    assert lookup(resolver, name, rdtype) == lookup(resolver, name, rdtype)
    assert len(server.queries) == before + 1
    clock.now += kept - 1
    lookup(resolver, name, rdtype)
    assert len(server.queries) == before + 1
    clock.now += 1
    lookup(resolver, name, rdtype)
    assert len(server.queries) == before + 2


@pytest.mark.parametrize(
    ("name", "error"), [("absent.example.org", NoSuchDomain), ("example.org", NoData)]
)
def test_negative_answers_cached_for_the_soa_minimum(
    server: DnsServer, name: str, error: type[DnsError]
) -> None:
    clock = Clock()
    resolver = adapter(server, DnsCache(clock=clock))
    before = len(server.queries)
    for _ in range(3):
        with pytest.raises(error):
            lookup(resolver, name, "SRV")
    assert len(server.queries) == before + 1  # RFC 2308 5: min(SOA TTL 600, MINIMUM 30)
    clock.now += 30
    with pytest.raises(error):
        lookup(resolver, name, "SRV")
    assert len(server.queries) == before + 2


def test_failures_are_never_cached(server: DnsServer) -> None:
    resolver = adapter(server, DnsCache(clock=Clock()))
    before = len(server.queries)
    for _ in range(2):
        with pytest.raises(TemporaryFailure):
            lookup(resolver, "broken.example.org", "A")
    assert len(server.queries) >= before + 2


def test_with_timeout_shares_the_cache(server: DnsServer) -> None:
    cache = DnsCache(clock=Clock())
    queue_view = adapter(server, cache, timeout=10)
    filters_view = queue_view.with_timeout(2)
    assert (queue_view.timeout, filters_view.timeout) == (10, 2)
    before = len(server.queries)
    lookup(queue_view, "example.org", "TXT")
    assert lookup(filters_view, "example.org", "TXT") == ["v=spf1 ip4:192.0.2.0/24 -all"]
    assert len(server.queries) == before + 1
    assert filters_view.cache is cache


def test_sync_wrapper_from_many_threads(server: DnsServer) -> None:
    """The web UI's check runs each lookup in a thread of its own."""
    sync = SyncResolver(adapter(server))
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            results[n] = sorted(sync.lookup("example.org", "A" if n % 2 else "AAAA"))
            with pytest.raises(NoSuchDomain):
                sync.lookup(f"nothing{n}.example.org", "A")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert all(
        results[n] == (["192.0.2.1", "192.0.2.2"] if n % 2 else ["2001:db8::1"]) for n in range(12)
    )
