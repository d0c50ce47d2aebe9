"""DnsResolver as SPF and DNSBL use it, against a tiny DNS server on a loopback UDP port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from appliance.dns import DnsError, DnsResolver, NoData, NoSuchDomain
from appliance.filters.dnsbl import DnsblFilter
from appliance.mailauth.spf import check_spf
from tests.dnsserver import DnsServer

ZONE: dict[tuple[str, str], list[str]] = {
    ("example.org.", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 " "include:_spf.example.org -all"'],
    ("_spf.example.org.", "TXT"): ['"v=spf1 a:mail.example.org -all"'],
    ("mail.example.org.", "A"): ["198.51.100.7"],
    ("example.org.", "MX"): ["10 mail.example.org."],
    ("7.100.51.198.in-addr.arpa.", "PTR"): ["mail.example.org."],
    ("2.0.0.127.zen.test.", "A"): ["127.0.0.2"],
}


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with DnsServer(ZONE, ttl=60) as server:
        yield server.port


def resolver(port: int, timeout: float = 2.0) -> DnsResolver:
    return DnsResolver(timeout=timeout, nameservers=["127.0.0.1"], port=port)


def test_record_types(dns_port: int) -> None:
    r = resolver(dns_port)

    async def go() -> list[list[str]]:
        return [
            await r.lookup("example.org", "TXT"),
            await r.lookup("example.org", "MX"),
            await r.lookup("mail.example.org", "A"),
            await r.lookup("7.100.51.198.in-addr.arpa", "PTR"),
        ]

    txt, mx, a, ptr = asyncio.run(go())
    assert txt == ["v=spf1 ip4:192.0.2.0/24 include:_spf.example.org -all"]  # strings joined
    assert mx == ["10 mail.example.org"]
    assert a == ["198.51.100.7"]
    assert ptr == ["mail.example.org"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("nothing.example.org", NoSuchDomain),
        ("mail.example.org", NoData),  # exists, no TXT
        ("broken.example.org", DnsError),  # SERVFAIL
    ],
)
def test_failures(dns_port: int, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        asyncio.run(resolver(dns_port).lookup(name, "TXT"))


def test_timeout_is_a_temporary_error(dns_port: int) -> None:
    with pytest.raises(DnsError) as info:
        asyncio.run(resolver(dns_port, timeout=0.5).lookup("silent.example.org", "TXT"))
    assert info.value.temporary


def test_spf_and_dnsbl_over_real_dns(dns_port: int) -> None:
    r = resolver(dns_port)
    out = asyncio.run(check_spf(r, "198.51.100.7", "a@example.org", "mail.example.org"))
    assert out.result == "pass"
    out = asyncio.run(check_spf(r, "203.0.113.1", "a@example.org", "x.test"))
    assert out.result == "fail"
    assert asyncio.run(DnsblFilter(r, ["zen.test"]).listed("127.0.0.2")) == []  # loopback skipped
    assert asyncio.run(DnsblFilter(r, ["zen.test"])._lookup("127.0.0.2", "zen.test"))
