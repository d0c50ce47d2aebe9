"""DnsResolver against a small authoritative DNS server on loopback UDP, and MX selection."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from appliance.dns import DnsResolver, NoData, NoSuchDomain, addresses, mx
from appliance.queue.mx import MxHost, NullMx, mx_hosts
from tests.dnsfake import FakeResolver
from tests.dnsserver import DnsServer

ZONE: dict[tuple[str, str], list[str]] = {
    ("example.net.", "MX"): ["10 mx1.example.net.", "20 mx2.example.net."],
    ("mx1.example.net.", "A"): ["192.0.2.1"],
    ("mx1.example.net.", "AAAA"): ["2001:db8::1"],
    ("mx2.example.net.", "A"): ["192.0.2.2"],
    ("nomail.example.", "MX"): ["0 ."],
    ("plain.example.", "A"): ["192.0.2.9"],
    ("_mta-sts.example.net.", "TXT"): ['"v=STSv1; " "id=20261123"'],
}


@pytest.fixture(scope="module")
def resolver() -> Iterator[DnsResolver]:
    server = DnsServer(ZONE)
    yield DnsResolver(timeout=3, nameservers=["127.0.0.1"], port=server.port)
    server.close()


def test_mx_and_addresses(resolver: DnsResolver) -> None:
    async def go() -> None:
        assert sorted(await mx(resolver, "example.net")) == [
            (10, "mx1.example.net"),
            (20, "mx2.example.net"),
        ]
        assert await addresses(resolver, "mx1.example.net") == ["192.0.2.1", "2001:db8::1"]
        assert await resolver.lookup("_mta-sts.example.net", "TXT") == ["v=STSv1; id=20261123"]

    asyncio.run(go())


def test_errors(resolver: DnsResolver) -> None:
    async def go() -> None:
        with pytest.raises(NoSuchDomain):
            await mx(resolver, "missing.example")
        with pytest.raises(NoData):
            await mx(resolver, "plain.example")
        with pytest.raises(NoData):
            await addresses(resolver, "example.net")

    asyncio.run(go())


def test_mx_hosts_via_real_resolver(resolver: DnsResolver) -> None:
    async def go() -> None:
        rng = random.Random(3)
        hosts = await mx_hosts(resolver, "example.net", rng)
        assert [h.name for h in hosts] == ["mx1.example.net", "mx2.example.net"]
        assert await mx_hosts(resolver, "plain.example", rng) == [
            MxHost("plain.example", 0, implicit=True)
        ]
        with pytest.raises(NullMx):
            await mx_hosts(resolver, "nomail.example", rng)

    asyncio.run(go())


def static_mx(records: list[tuple[int, str]]) -> FakeResolver:
    return FakeResolver({("x", "MX"): [f"{pref} {host}" for pref, host in records]})


def test_equal_preferences_are_shuffled_lower_first() -> None:
    records = [(20, "c"), (10, "a1"), (10, "a2"), (10, "a3"), (30, "d")]
    orders = set()
    for seed in range(40):
        hosts = asyncio.run(mx_hosts(static_mx(records), "x", random.Random(seed)))
        names = [h.name for h in hosts]
        assert set(names[:3]) == {"a1", "a2", "a3"}
        assert names[3:] == ["c", "d"]
        orders.add(tuple(names[:3]))
    assert len(orders) > 1  # RFC 5321 5.1: equal preferences in random order
