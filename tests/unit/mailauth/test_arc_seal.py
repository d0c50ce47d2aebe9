"""ARC sealing of forwarded mail: the set verifies at the next hop (dkimpy arc_verify on
fake DNS), cv follows the incoming chain, and the original signature still verifies."""

from __future__ import annotations

import dkim as dkimpy
import pytest

from appliance.mailauth.arc_seal import ArcSealError, arc_sets, seal, sealing_results
from tests.unit.mailauth.dkimkeys import make_dkim_key

BOX = "mail.pillarbox.test"
KEY = make_dkim_key(1024)
ORIG_KEY = make_dkim_key(1024)
RECORDS = {
    b"pb1._domainkey.pillarbox.test.": KEY.dns_txt.encode(),
    b"s1._domainkey.sender.test.": ORIG_KEY.dns_txt.encode(),
}


def dns(name: bytes, timeout: float = 5) -> bytes | None:
    return RECORDS.get(name)


def original() -> bytes:
    body = (
        b"From: Carol <carol@sender.test>\r\nTo: fwd@pillarbox.test\r\n"
        b"Subject: hello\r\nMessage-ID: <o1@sender.test>\r\n\r\nHi\r\n"
    )
    sig = dkimpy.sign(body, b"s1", b"sender.test", ORIG_KEY.private_pem)
    return sig + body


def _seal(message: bytes, ar: str) -> bytes:
    return seal(
        message,
        domain="pillarbox.test",
        selector="pb1",
        private_key=KEY.private_pem,
        authserv_id=BOX,
        auth_results=ar,
    )


def test_first_seal_verifies_and_keeps_original_signature() -> None:
    msg = original()
    ar = f"{BOX}; spf=fail smtp.mailfrom=carol@sender.test; dkim=pass header.d=sender.test"
    fields = _seal(msg, ar)
    out = fields + msg
    assert out.endswith(msg)  # original bytes untouched
    assert fields.startswith(b"ARC-Seal: i=1;") and b"cv=none" in fields
    assert b"ARC-Message-Signature: i=1;" in fields
    assert b"ARC-Authentication-Results: i=1; mail.pillarbox.test;" in fields
    assert b"dkim=pass header.d=sender.test" in fields
    cv, _, reason = dkimpy.arc_verify(out, dnsfunc=dns)
    assert cv == dkimpy.CV_Pass, reason
    assert dkimpy.verify(out, dnsfunc=dns)  # the first DKIM-Signature still verifies


def test_second_hop_records_pass_and_chains() -> None:
    once = _seal(original(), f"{BOX}; dkim=pass header.d=sender.test") + original()
    assert arc_sets(once) == 1
    twice = _seal(once, f"{BOX}; dkim=pass header.d=sender.test; arc=pass") + once
    assert b"ARC-Seal: i=2; cv=pass" in twice
    cv, _results, reason = dkimpy.arc_verify(twice, dnsfunc=dns)
    assert cv == dkimpy.CV_Pass, reason


@pytest.mark.parametrize(
    ("arc", "sets", "cv"),
    [("none", 0, "none"), ("pass", 1, "pass"), ("fail", 1, "fail"), ("", 2, "fail")],
)
def test_cv_follows_the_verdict(arc: str, sets: int, cv: str) -> None:
    value = f"{BOX}; spf=pass smtp.mailfrom=a@b.test" + (f"; arc={arc}" if arc else "")
    got = sealing_results(BOX, value, sets)
    assert got == f"{BOX}; spf=pass smtp.mailfrom=a@b.test; arc={cv}"


def test_bad_results_are_refused() -> None:
    with pytest.raises(ArcSealError):
        _seal(original(), "no semicolon at all (")
