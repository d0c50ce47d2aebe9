"""DnsCache: TTL expiry on an injected clock, the TTL caps, negative answers, and the
bounds on entries and bytes (the daemon's only DNS cache)."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import pytest

from appliance.dns import NoData, NoSuchDomain
from appliance.dns.cache import MAX_BYTES, MAX_ENTRIES, MAX_NEGATIVE_TTL, MAX_TTL, DnsCache


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_answer_kept_for_its_ttl() -> None:
    clock = Clock()
    cache = DnsCache(clock=clock)
    cache.put("Example.ORG.", "MX", ["10 mx.example.org"], 60)
    assert cache.get("example.org", "MX") == ["10 mx.example.org"]  # case and dot folded
    assert cache.get("example.org", "TXT") is None  # keyed by type too
    clock.now += 59.9
    assert cache.get("example.org", "MX") == ["10 mx.example.org"]
    clock.now += 0.1
    assert cache.get("example.org", "MX") is None
    assert len(cache) == 0  # the expired entry is dropped on the way


def test_returned_list_is_a_copy() -> None:
    cache = DnsCache(clock=Clock())
    cache.put("a.test", "A", ["192.0.2.1"], 60)
    got = cache.get("a.test", "A")
    assert got is not None
    got.append("192.0.2.99")
    assert cache.get("a.test", "A") == ["192.0.2.1"]


def test_ttl_zero_is_not_kept() -> None:
    cache = DnsCache(clock=Clock())
    cache.put("a.test", "A", ["192.0.2.1"], 0)
    cache.put_negative("b.test", "A", NoSuchDomain, 0)
    assert cache.get("a.test", "A") is None and cache.get("b.test", "A") is None
    assert len(cache) == 0


def test_positive_ttl_capped_at_a_day() -> None:
    clock = Clock()
    cache = DnsCache(clock=clock)
    cache.put("a.test", "A", ["192.0.2.1"], 2**31 - 1)
    clock.now += MAX_TTL - 1
    assert cache.get("a.test", "A") == ["192.0.2.1"]
    clock.now += 1
    assert cache.get("a.test", "A") is None
    assert MAX_TTL == 86_400


@pytest.mark.parametrize("kind", [NoSuchDomain, NoData])
def test_negative_answers_raise_until_they_expire(
    kind: type[NoSuchDomain] | type[NoData],
) -> None:
    clock = Clock()
    cache = DnsCache(clock=clock)
    cache.put_negative("gone.test", "TXT", kind, 30)
    with pytest.raises(kind):
        cache.get("gone.test", "TXT")
    assert cache.get("gone.test", "A") is None  # kept per type
    clock.now += 30
    assert cache.get("gone.test", "TXT") is None


def test_negative_ttl_capped_at_an_hour() -> None:
    clock = Clock()
    cache = DnsCache(clock=clock)
    cache.put_negative("gone.test", "A", NoSuchDomain, 86_400)
    clock.now += MAX_NEGATIVE_TTL - 1
    with pytest.raises(NoSuchDomain):
        cache.get("gone.test", "A")
    clock.now += 1
    assert cache.get("gone.test", "A") is None
    assert MAX_NEGATIVE_TTL == 3_600  # RFC 2308 5


def test_a_new_answer_replaces_the_old() -> None:
    cache = DnsCache(clock=Clock())
    cache.put_negative("a.test", "A", NoData, 60)
    cache.put("a.test", "A", ["192.0.2.1"], 60)
    assert cache.get("a.test", "A") == ["192.0.2.1"]
    assert len(cache) == 1


def test_entry_bound_drops_least_recently_used() -> None:
    cache = DnsCache(max_entries=3, clock=Clock())
    for n in range(3):
        cache.put(f"h{n}.test", "A", [f"192.0.2.{n}"], 60)
    assert cache.get("h0.test", "A") == ["192.0.2.0"]  # h0 used: h1 is now the oldest
    cache.put("h3.test", "A", ["192.0.2.3"], 60)
    assert len(cache) == 3
    assert cache.get("h1.test", "A") is None
    assert [cache.get(f"h{n}.test", "A") for n in (0, 2, 3)] == [
        ["192.0.2.0"],
        ["192.0.2.2"],
        ["192.0.2.3"],
    ]


def test_byte_bound_and_oversized_answers() -> None:
    cache = DnsCache(max_bytes=4096, clock=Clock())
    big = "v=spf1 " + "x" * 900
    for n in range(20):
        cache.put(f"s{n}.test", "TXT", [big], 60)
        assert cache.size <= 4096
    assert 0 < len(cache) < 20
    assert cache.get("s19.test", "TXT") == [big]  # the newest stays
    cache.put("huge.test", "TXT", ["y" * 5000], 60)  # larger than the whole cache
    assert cache.get("huge.test", "TXT") is None
    assert cache.get("s19.test", "TXT") == [big]  # and pushed nothing out


def test_default_bounds_hold_under_a_flood_of_names() -> None:
    """A sender can make the box look up any names (SPF, DKIM, DMARC): the cache stays at
    MAX_ENTRIES answers and MAX_BYTES, and its memory stays near MAX_BYTES."""
    cache = DnsCache(clock=Clock())
    tracemalloc.start()
    try:
        for n in range(MAX_ENTRIES + 5_000):
            name = f"s{n}._domainkey.sender{n}.example"
            cache.put(name, "TXT", ["v=DKIM1; k=rsa; p=" + "A" * 392], 3600)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cache) <= MAX_ENTRIES and cache.size <= MAX_BYTES
    assert current < 1.5 * MAX_BYTES, current
