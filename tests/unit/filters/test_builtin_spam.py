"""DNSBL via a fake resolver, greylisting with an injected clock, spam score mapping."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.filters.base import InboundMessage
from appliance.filters.dnsbl import DnsblFilter, query_name
from appliance.filters.greylist import Greylist, GreylistFilter, GreylistSettings, client_network
from appliance.filters.rspamd import ScanResult, SpamThresholds, spam_verdict
from tests.dnsfake import FakeResolver


def inbound(tmp_path: Path, ip: str = "198.51.100.20", **kw: object) -> InboundMessage:
    path = tmp_path / "m.eml"
    path.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    args: dict[str, object] = {
        "path": path,
        "mail_from": "alice@example.org",
        "rcpt_to": ("bob@pillarbox.test",),
        "client_ip": ip,
        "client_name": "",
        "helo": "mx.example.org",
    }
    args.update(kw)
    return InboundMessage(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------------ DNSBL


def test_query_names() -> None:
    assert query_name("192.0.2.99", "zen.example") == "99.2.0.192.zen.example"
    assert query_name("::ffff:192.0.2.99", "z.test") == "99.2.0.192.z.test"
    assert query_name("2001:db8::1", "z.test") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.z.test"
    )


def _dnsbl_resolver() -> FakeResolver:
    r = FakeResolver()
    r.add("20.100.51.198.zen.example", "A", "127.0.0.2")
    r.add("21.100.51.198.zen.example", "A", "127.255.255.254")  # "query refused"
    r.add("22.100.51.198.bl.example", "A", "127.0.0.4")
    r.failing.add("23.100.51.198.zen.example")
    return r


@pytest.mark.parametrize(
    ("ip", "action"),
    [
        ("198.51.100.20", "reject"),  # listed
        ("198.51.100.21", "accept"),  # blocked-resolver answer is not a listing
        ("198.51.100.22", "reject"),  # listed in the second zone
        ("198.51.100.23", "accept"),  # SERVFAIL never blocks
        ("198.51.100.24", "accept"),  # NXDOMAIN: not listed
        ("127.0.0.1", "accept"),  # local clients are not looked up
        ("10.1.2.3", "accept"),
    ],
)
def test_dnsbl(tmp_path: Path, ip: str, action: str) -> None:
    r = _dnsbl_resolver()
    f = DnsblFilter(r, ["zen.example", "bl.example"])
    verdict = asyncio.run(f.check(inbound(tmp_path, ip)))
    assert verdict.action == action
    if action == "reject":
        assert (verdict.smtp_code, verdict.enhanced) == (550, "5.7.1")
    if ip.startswith(("127.", "10.")):
        assert r.queries == []


def test_dnsbl_junk_mode_and_auth_skip(tmp_path: Path) -> None:
    f = DnsblFilter(_dnsbl_resolver(), ["zen.example"], action="junk")
    verdict = asyncio.run(f.check(inbound(tmp_path)))
    assert verdict.action == "junk" and ("X-DNSBL", "zen.example") in verdict.headers
    authed = inbound(tmp_path, authenticated_user="bob@pillarbox.test")
    assert asyncio.run(f.check(authed)).action == "accept"


# ------------------------------------------------------------------ greylisting


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_client_network() -> None:
    assert client_network("192.0.2.77") == "192.0.2.0/24"
    assert client_network("2001:db8:1:2:3::9") == "2001:db8:1:2::/64"


def test_greylist_cycle(tmp_path: Path) -> None:
    clock = Clock()
    gl = Greylist(tmp_path / "g.sqlite", GreylistSettings(delay=300, retry_window=3600), clock)
    f = GreylistFilter(gl)
    msg = inbound(tmp_path, "198.51.100.7")
    first = asyncio.run(f.check(msg))
    assert (first.action, first.smtp_code, first.enhanced) == ("tempfail", 451, "4.7.1")
    clock.now += 60  # too early
    assert asyncio.run(f.check(msg)).action == "tempfail"
    clock.now += 300  # within the window
    assert asyncio.run(f.check(msg)).action == "accept"
    # The network is now whitelisted: another sender from a neighbour host passes at once.
    other = inbound(tmp_path, "198.51.100.8", mail_from="carol@example.net")
    assert asyncio.run(f.check(other)).action == "accept"
    # A different network is greylisted.
    assert asyncio.run(f.check(inbound(tmp_path, "203.0.113.9"))).action == "tempfail"


def test_greylist_retry_after_window_starts_over(tmp_path: Path) -> None:
    clock = Clock()
    gl = Greylist(tmp_path / "g.sqlite", GreylistSettings(delay=300, retry_window=3600), clock)
    assert not gl.check("198.51.100.7", "a@x.test", ["b@y.test"])
    clock.now += 7200  # too late: counts as a new first attempt
    assert not gl.check("198.51.100.7", "a@x.test", ["b@y.test"])
    clock.now += 301
    assert gl.check("198.51.100.7", "a@x.test", ["b@y.test"])


def test_greylist_persists_and_expires(tmp_path: Path) -> None:
    clock = Clock()
    settings = GreylistSettings(delay=10, retry_window=100, whitelist_days=1)
    gl = Greylist(tmp_path / "g.sqlite", settings, clock)
    assert not gl.check("198.51.100.7", "a@x.test", ["b@y.test"])
    gl.close()
    clock.now += 20
    reopened = Greylist(tmp_path / "g.sqlite", settings, clock)
    assert reopened.check("198.51.100.7", "a@x.test", ["b@y.test"])
    clock.now += 40 * 86400
    assert reopened.expire() == 2  # the triplet and the whitelist entry
    assert not reopened.check("198.51.100.7", "a@x.test", ["b@y.test"])


def test_greylist_skips_authenticated(tmp_path: Path) -> None:
    f = GreylistFilter(Greylist(tmp_path / "g.sqlite", clock=Clock()))
    authed = inbound(tmp_path, authenticated_user="bob@pillarbox.test")
    assert asyncio.run(f.check(authed)).action == "accept"


# ------------------------------------------------------------------ score mapping


@pytest.mark.parametrize(
    ("score", "rspamd_action", "action", "x_spam"),
    [
        (0.5, "no action", "accept", "No"),
        (5.5, "add header", "accept", "Yes"),
        (7.0, "add header", "junk", "Yes"),
        (20.0, "reject", "reject", "Yes"),
        (1.0, "soft reject", "tempfail", "No"),
    ],
)
def test_spam_verdict(score: float, rspamd_action: str, action: str, x_spam: str) -> None:
    result = ScanResult(score, 15.0, rspamd_action, (("BAYES_SPAM", 3.0), ("R_SPF_ALLOW", -0.2)))
    verdict = spam_verdict(result, SpamThresholds(header=5, junk=6, reject=15))
    headers = dict(verdict.headers)
    assert verdict.action == action
    assert headers["X-Spam"] == x_spam
    assert headers["X-Spam-Symbols"] == "BAYES_SPAM(3.00), R_SPF_ALLOW(-0.20)"
    assert headers["X-Spam-Score"].startswith(f"{score:.2f}")
    if action == "reject":
        assert (verdict.smtp_code, verdict.enhanced) == (550, "5.7.1")


def test_greylist_skips_loopback(tmp_path: Path) -> None:
    f = GreylistFilter(Greylist(tmp_path / "g.sqlite", clock=Clock()))
    assert asyncio.run(f.check(inbound(tmp_path, "127.0.0.1"))).action == "accept"
    assert asyncio.run(f.check(inbound(tmp_path, "::1"))).action == "accept"
