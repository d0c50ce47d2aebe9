"""SPF evaluation (RFC 7208) against a fake resolver."""

from __future__ import annotations

import asyncio

import pytest

from appliance.mailauth.spf import check_host, check_spf
from tests.dnsfake import FakeResolver


def _resolver() -> FakeResolver:
    r = FakeResolver()
    r.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all")
    r.add("_spf.example.net", "TXT", "v=spf1 ip6:2001:db8::/32 a:mail.example.net ~all")
    r.add("mail.example.net", "A", "198.51.100.7")
    r.add("soft.example", "TXT", "v=spf1 mx ~all")
    r.add("soft.example", "MX", "10 mx1.soft.example")
    r.add("mx1.soft.example", "A", "203.0.113.5")
    r.add("neutral.example", "TXT", "v=spf1 ?all")
    r.add("redir.example", "TXT", "v=spf1 redirect=example.org")
    r.add("redirnone.example", "TXT", "v=spf1 redirect=nothing.example")
    r.add("two.example", "TXT", "v=spf1 -all", "v=spf1 +all")
    r.add("bad.example", "TXT", "v=spf1 foo:bar -all")
    r.add("incmissing.example", "TXT", "v=spf1 include:nothing.example -all")
    r.add("other.example", "TXT", "some verification token")
    r.add("exists.example", "TXT", "v=spf1 exists:%{ir}.%{l1r-}.ok.exists.example -all")
    r.add("5.113.0.203.alice.ok.exists.example", "A", "127.0.0.2")
    r.add("cidr.example", "TXT", "v=spf1 a:host.cidr.example/28 -all")
    r.add("host.cidr.example", "A", "203.0.113.1")
    r.add("ptr.example", "TXT", "v=spf1 ptr -all")
    r.add("5.113.0.203.in-addr.arpa", "PTR", "gw.ptr.example")
    r.add("gw.ptr.example", "A", "203.0.113.5")
    r.add("tempinc.example", "TXT", "v=spf1 include:dead.example -all")
    r.failing.add("dead.example")
    loop_terms = " ".join(f"a:h{i}.loop.example" for i in range(11))
    r.add("many.example", "TXT", f"v=spf1 {loop_terms} -all")
    for i in range(11):
        r.add(f"h{i}.loop.example", "A", "192.0.2.200")
    r.add("voids.example", "TXT", "v=spf1 a:v1.example a:v2.example a:v3.example -all")
    r.add("helo.example", "TXT", "v=spf1 ip4:203.0.113.9 -all")
    return r


@pytest.mark.parametrize(
    ("ip", "domain", "expected"),
    [
        ("192.0.2.10", "example.org", "pass"),
        ("10.1.1.1", "example.org", "fail"),
        ("2001:db8::25", "example.org", "pass"),  # via include, ip6
        ("198.51.100.7", "example.org", "pass"),  # via include, a:
        ("203.0.113.5", "soft.example", "pass"),  # mx
        ("203.0.113.6", "soft.example", "softfail"),
        ("203.0.113.6", "neutral.example", "neutral"),
        ("192.0.2.10", "redir.example", "pass"),
        ("10.0.0.1", "redir.example", "fail"),
        ("10.0.0.1", "redirnone.example", "permerror"),
        ("10.0.0.1", "two.example", "permerror"),
        ("10.0.0.1", "bad.example", "permerror"),
        ("10.0.0.1", "incmissing.example", "permerror"),
        ("10.0.0.1", "other.example", "none"),
        ("10.0.0.1", "nothing.example", "none"),
        ("203.0.113.5", "exists.example", "pass"),
        ("203.0.113.6", "exists.example", "fail"),
        ("203.0.113.14", "cidr.example", "pass"),
        ("203.0.113.17", "cidr.example", "fail"),
        ("203.0.113.5", "ptr.example", "pass"),
        ("203.0.113.6", "ptr.example", "fail"),
        ("10.0.0.1", "tempinc.example", "temperror"),
        ("10.9.9.9", "many.example", "permerror"),  # > 10 DNS terms
        ("10.0.0.1", "voids.example", "permerror"),  # > 2 void lookups
        ("::ffff:192.0.2.10", "example.org", "pass"),  # v4-mapped treated as IPv4
        ("10.0.0.1", "localhost", "none"),  # not a FQDN
    ],
)
def test_check_host(ip: str, domain: str, expected: str) -> None:
    result, _ = asyncio.run(check_host(_resolver(), ip, domain, f"alice@{domain}", "helo.test"))
    assert result == expected


def test_dead_dns_is_temperror() -> None:
    r = _resolver()
    r.dead = True
    out = asyncio.run(check_spf(r, "192.0.2.10", "bob@example.org", "mx.example.org"))
    assert out.result == "temperror"
    assert out.scope == "mailfrom"


def test_null_sender_checks_helo() -> None:
    out = asyncio.run(check_spf(_resolver(), "203.0.113.9", "", "helo.example"))
    assert (out.result, out.scope, out.domain) == ("pass", "helo", "helo.example")


def test_slow_dns_hits_the_deadline() -> None:
    class Slow(FakeResolver):
        async def lookup(self, name: str, rdtype: str) -> list[str]:
            await asyncio.sleep(5)
            return []

    result, reason = asyncio.run(check_host(Slow(), "10.0.0.1", "example.org", "a@b", "h", 0.2))
    assert result == "temperror"
    assert "timed out" in reason


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # RFC 7208 7.4 examples, sender strong-bad@email.example.com, IP 192.0.2.3
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        ("%{S}", "strong-bad%40email.example.com"),
        ("%%%_%-", "% %20"),
    ],
)
def test_macro_expansion(spec: str, expected: str) -> None:
    from appliance.mailauth.spf import _Check, _parse_ip

    check = _Check(FakeResolver(), _parse_ip("192.0.2.3"), "strong-bad@email.example.com", "h")
    assert check.expand(spec, "email.example.com") == expected


def test_macro_ipv6_nibbles() -> None:
    from appliance.mailauth.spf import _Check, _parse_ip

    check = _Check(FakeResolver(), _parse_ip("2001:db8::cb01"), "a@b.example", "h")
    assert check.expand("%{ir}.%{v}._spf.%{d2}", "email.example.com") == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )
