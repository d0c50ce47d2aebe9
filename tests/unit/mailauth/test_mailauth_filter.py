"""DKIM, ARC, DMARC and the mailauth Filter on messages signed in the test with dkimpy."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import dkim
import pytest

from appliance.filters.base import InboundMessage
from appliance.filters.mailauth import MailAuthFilter, MailAuthSettings
from appliance.mailauth import dmarc
from appliance.mailauth.dkim_check import verify_arc, verify_dkim
from tests.dnsfake import FakeResolver
from tests.unit.mailauth.dkimkeys import DkimKey, make_dkim_key

KEY = make_dkim_key()
OTHER_KEY = make_dkim_key()


def message(from_addr: str = "Alice <alice@example.org>", body: str = "Hello Bob.\r\n") -> bytes:
    return (
        f"From: {from_addr}\r\n"
        "To: bob@pillarbox.test\r\n"
        "Subject: lunch\r\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <1@example.org>\r\n"
        "\r\n"
        f"{body}"
    ).encode()


def sign(
    msg: bytes, domain: str = "example.org", selector: str = "s1", key: DkimKey = KEY
) -> bytes:
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key.private_pem)
    return bytes(sig) + msg


def resolver(dmarc_record: str = "v=DMARC1; p=reject") -> FakeResolver:
    r = FakeResolver()
    r.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    r.add("s1._domainkey.example.org", "TXT", KEY.dns_txt)
    r.add("_dmarc.example.org", "TXT", dmarc_record)
    r.add("bulk.example.net", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    r.add("s1._domainkey.bulk.example.net", "TXT", KEY.dns_txt)
    r.add("arc._domainkey.forwarder.example", "TXT", KEY.dns_txt)
    return r


def inbound(tmp_path: Path, data: bytes, **kw: object) -> InboundMessage:
    path = tmp_path / "msg.eml"
    path.write_bytes(data)
    args: dict[str, object] = {
        "path": path,
        "mail_from": "alice@example.org",
        "rcpt_to": ("bob@pillarbox.test",),
        "client_ip": "192.0.2.10",
        "client_name": "",
        "helo": "mx.example.org",
    }
    args.update(kw)
    return InboundMessage(**args)  # type: ignore[arg-type]


def run_filter(
    tmp_path: Path, data: bytes, r: FakeResolver, seed: int = 1, **kw: object
) -> tuple[str, str, int, str]:
    ip = str(kw.pop("client_ip", "192.0.2.10"))
    settings = MailAuthSettings(hostname="mx.pillarbox.test", **kw)  # type: ignore[arg-type]
    f = MailAuthFilter(r, settings, random.Random(seed))
    verdict = asyncio.run(f.check(inbound(tmp_path, data, client_ip=ip)))
    header = dict(verdict.headers).get("Authentication-Results", "")
    return verdict.action, header, verdict.smtp_code, verdict.enhanced


# ------------------------------------------------------------------ DKIM


def test_dkim_pass_fail_and_missing_key() -> None:
    r = resolver()
    good = sign(message())
    out = asyncio.run(verify_dkim(r, good))
    assert [(o.result, o.domain, o.selector) for o in out] == [("pass", "example.org", "s1")]
    assert out[0].header_b
    tampered = good.replace(b"Hello Bob.", b"Hello Eve.")
    assert asyncio.run(verify_dkim(r, tampered))[0].result == "fail"
    wrong_key = sign(message(), key=OTHER_KEY)
    assert asyncio.run(verify_dkim(r, wrong_key))[0].result == "fail"
    unknown_selector = sign(message(), selector="gone")
    assert asyncio.run(verify_dkim(r, unknown_selector))[0].result == "permerror"
    assert asyncio.run(verify_dkim(r, message())) == []


def test_dkim_dns_failure_is_temperror() -> None:
    r = resolver()
    r.failing.add("s1._domainkey.example.org")
    out = asyncio.run(verify_dkim(r, sign(message())))
    assert out[0].result == "temperror"


def test_two_signatures_each_reported() -> None:
    r = resolver()
    data = sign(sign(message(), domain="bulk.example.net"))
    out = asyncio.run(verify_dkim(r, data))
    assert sorted((o.domain, o.result) for o in out) == [
        ("bulk.example.net", "pass"),
        ("example.org", "pass"),
    ]


def test_unsigned_message_is_not_parsed_by_dkimpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DKIM-Signature or ARC field in the header: dkimpy (a full parse) is skipped."""

    def refuse(*_a: object, **_kw: object) -> None:
        raise AssertionError("dkimpy parsed an unsigned message")

    r = resolver()
    # The words appear in the body only: still unsigned.
    body_mentions = message().replace(b"Hello Bob.", b"Hello Bob. DKIM-Signature: ARC-Seal:")
    monkeypatch.setattr(dkim, "DKIM", refuse)
    monkeypatch.setattr(dkim, "arc_verify", refuse)
    assert asyncio.run(verify_dkim(r, body_mentions)) == []
    assert asyncio.run(verify_arc(r, body_mentions)).result == "none"
    monkeypatch.undo()
    # A signature field is found whatever the case of its name, and still verified.
    signed = sign(message())
    shouted = signed.replace(b"DKIM-Signature:", b"DKIM-SIGNATURE:", 1)
    assert shouted != signed
    assert [o.result for o in asyncio.run(verify_dkim(r, shouted))] == ["pass"]


# ------------------------------------------------------------------ ARC


def arc_sealed(msg: bytes) -> bytes:
    ar = b"Authentication-Results: forwarder.example; spf=pass smtp.mailfrom=example.org\r\n"
    msg = ar + msg
    seal = dkim.arc_sign(msg, b"arc", b"forwarder.example", KEY.private_pem, b"forwarder.example")
    return b"".join(seal) + msg


def test_arc_pass_fail_none() -> None:
    r = resolver()
    sealed = arc_sealed(sign(message()))
    assert asyncio.run(verify_arc(r, sealed)).result == "pass"
    assert asyncio.run(verify_arc(r, sealed.replace(b"Hello Bob", b"Hello Eve"))).result == "fail"
    assert asyncio.run(verify_arc(r, message())).result == "none"


# ------------------------------------------------------------------ DMARC pieces


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("mail.example.org", "example.org"),
        ("example.org", "example.org"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("EXAMPLE.COM.", "example.com"),
        ("co.uk", "co.uk"),
    ],
)
def test_organizational_domain(domain: str, org: str) -> None:
    assert dmarc.organizational_domain(domain) == org


@pytest.mark.parametrize(
    ("a", "b", "mode", "expected"),
    [
        ("mail.example.org", "example.org", "r", True),
        ("mail.example.org", "example.org", "s", False),
        ("example.org", "EXAMPLE.org", "s", True),
        ("example.net", "example.org", "r", False),
        ("", "example.org", "r", False),
    ],
)
def test_alignment(a: str, b: str, mode: str, expected: bool) -> None:
    assert dmarc.aligned(a, b, mode) is expected  # type: ignore[arg-type]


def test_parse_record() -> None:
    rec = dmarc.parse_record("v=DMARC1; p=quarantine; sp=reject; pct=30; adkim=s; aspf=s")
    assert rec == dmarc.DmarcRecord("quarantine", "reject", 30, "s", "s")
    assert dmarc.parse_record("v=DMARC1; rua=mailto:d@example.org").p == "none"
    for bad in ("v=DMARC2; p=reject", "p=reject; v=DMARC1", "v=DMARC1; p=maybe"):
        with pytest.raises(dmarc.DmarcRecordError):
            dmarc.parse_record(bad)


# ------------------------------------------------------------------ the Filter


def test_all_pass_accepts_with_one_header(tmp_path: Path) -> None:
    action, header, _, _ = run_filter(tmp_path, sign(message()), resolver())
    assert action == "accept"
    assert header.startswith("mx.pillarbox.test; ")
    assert "spf=pass smtp.mailfrom=alice@example.org" in header
    assert "dkim=pass" in header and "header.d=example.org" in header
    assert "dmarc=pass" in header and "header.from=example.org" in header
    assert "arc=none" in header


def test_dkim_alone_aligned_passes_dmarc(tmp_path: Path) -> None:
    """Forwarded mail: SPF fails from a foreign IP but the aligned DKIM signature holds."""
    settings = MailAuthSettings(hostname="mx.pillarbox.test")
    f = MailAuthFilter(resolver(), settings, random.Random(1))
    verdict = asyncio.run(f.check(inbound(tmp_path, sign(message()), client_ip="10.0.0.1")))
    header = dict(verdict.headers)["Authentication-Results"]
    assert verdict.action == "accept"
    assert "spf=fail" in header and "dmarc=pass" in header


def test_spoofed_from_rejected_550(tmp_path: Path) -> None:
    """SPF passes for the envelope domain, but From: names example.org, unsigned."""
    settings = MailAuthSettings(hostname="mx.pillarbox.test")
    f = MailAuthFilter(resolver(), settings, random.Random(1))
    msg = inbound(tmp_path, message(), mail_from="news@bulk.example.net", client_ip="198.51.100.3")
    verdict = asyncio.run(f.check(msg))
    assert (verdict.action, verdict.smtp_code, verdict.enhanced) == ("reject", 550, "5.7.1")
    header = dict(verdict.headers)["Authentication-Results"]
    assert "spf=pass" in header and "dmarc=fail (p=reject dis=reject)" in header


def test_quarantine_goes_to_junk(tmp_path: Path) -> None:
    action, header, _, _ = run_filter(
        tmp_path, message(), resolver("v=DMARC1; p=quarantine"), client_ip="10.0.0.1"
    )
    assert action == "junk"
    assert "dmarc=fail" in header


def test_pct_zero_downgrades_reject_to_quarantine(tmp_path: Path) -> None:
    action, header, _, _ = run_filter(
        tmp_path, message(), resolver("v=DMARC1; p=reject; pct=0"), client_ip="10.0.0.1"
    )
    assert action == "junk"
    assert "dis=quarantine" in header


def test_subdomain_policy_from_org_record(tmp_path: Path) -> None:
    r = resolver("v=DMARC1; p=reject; sp=none")
    action, header, _, _ = run_filter(
        tmp_path, message("x@news.example.org"), r, client_ip="10.0.0.1"
    )
    assert action == "accept"
    assert "dmarc=fail (p=none dis=none) header.from=news.example.org" in header
    assert ("_dmarc.news.example.org", "TXT") in r.queries


def test_strict_alignment_fails_subdomain_signature(tmp_path: Path) -> None:
    r = resolver("v=DMARC1; p=reject; adkim=s; aspf=s")
    r.add("s1._domainkey.mail.example.org", "TXT", KEY.dns_txt)
    data = sign(message(), domain="mail.example.org")
    action, _, code, _ = run_filter(tmp_path, data, r, client_ip="10.0.0.1")
    assert (action, code) == ("reject", 550)


def test_not_enforced_only_reports(tmp_path: Path) -> None:
    action, header, _, _ = run_filter(
        tmp_path, message(), resolver(), client_ip="10.0.0.1", enforce_dmarc=False
    )
    assert action == "accept" and "dmarc=fail" in header


def test_dead_dns_accepts_with_temperror(tmp_path: Path) -> None:
    r = resolver()
    r.dead = True
    action, header, _, _ = run_filter(tmp_path, sign(message()), r)
    assert action == "accept"
    assert "spf=temperror" in header and "dkim=temperror" in header
    assert "dmarc=temperror" in header


def test_dead_dns_tempfails_when_configured(tmp_path: Path) -> None:
    r = resolver()
    r.dead = True
    action, _, code, enhanced = run_filter(tmp_path, message(), r, dns_tempfail=True)
    assert (action, code, enhanced) == ("tempfail", 451, "4.7.0")


def test_authenticated_submission_is_not_checked(tmp_path: Path) -> None:
    r = resolver()
    f = MailAuthFilter(r, MailAuthSettings(hostname="mx.pillarbox.test"))
    msg = inbound(tmp_path, message(), client_ip="10.0.0.1", authenticated_user="alice@x.test")
    verdict = asyncio.run(f.check(msg))
    assert verdict.action == "accept"
    assert r.queries == []
    assert "smtp.auth=alice@x.test" in dict(verdict.headers)["Authentication-Results"]


def test_missing_from_is_permerror(tmp_path: Path) -> None:
    data = b"To: bob@pillarbox.test\r\nSubject: x\r\n\r\nbody\r\n"
    action, header, _, _ = run_filter(tmp_path, data, resolver())
    assert action == "accept" and "dmarc=permerror" in header


@pytest.mark.parametrize(
    ("value", "ours"),
    [
        ("mx.pillarbox.test; spf=pass smtp.mailfrom=a@b", True),
        ("MX.Pillarbox.Test (forged) ; dkim=pass", True),
        ("mx.pillarbox.test 1; none", True),  # with a version
        ("mx.other.test; spf=pass", False),
        ("(comment only)", False),
    ],
)
def test_claims_our_id(value: str, ours: bool) -> None:
    from appliance.mailauth.results import claims_our_id

    assert claims_our_id(value, "mx.pillarbox.test") is ours


def test_garbage_signature_never_raises(tmp_path: Path) -> None:
    junk = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; b=!!!; bh=###; h=from\r\n"
    out = asyncio.run(verify_dkim(resolver(), junk + message()))
    assert [o.result for o in out] == ["permerror"]
    action, header, _, _ = run_filter(tmp_path, b"\x00\xff garbage without headers", resolver())
    assert action == "accept" and header.startswith("mx.pillarbox.test; ")


def test_aligned_dkim_key_lookup_failure_never_rejects(tmp_path: Path) -> None:
    """SPF fails (forwarded), the DKIM key cannot be fetched: undetermined, not reject."""
    r = resolver()
    r.failing.add("s1._domainkey.example.org")
    action, header, _, _ = run_filter(tmp_path, sign(message()), r, client_ip="10.0.0.1")
    assert action == "accept"
    assert "dkim=temperror" in header and "dmarc=temperror" in header


def test_unaligned_temperror_still_fails(tmp_path: Path) -> None:
    r = resolver()
    r.failing.add("s1._domainkey.bulk.example.net")
    data = sign(message(), domain="bulk.example.net")  # signed by a foreign domain
    action, header, code, _ = run_filter(tmp_path, data, r, client_ip="10.0.0.1")
    assert (action, code) == ("reject", 550) and "dmarc=fail" in header
