"""RFC 8601 5: incoming Authentication-Results that claim our authserv-id are removed."""

from __future__ import annotations

from appliance.mailauth.results import claims_our_id, strip_forged

ID = "mx.example.org"


def test_claims_our_id_ignores_comments_case_and_trailing_dot() -> None:
    assert claims_our_id(" mx.example.org; spf=pass", ID)
    assert claims_our_id(" (comment) MX.Example.ORG. 1; none", ID)
    assert not claims_our_id(" mx.example.org.evil.test; spf=pass", ID)
    assert not claims_our_id(" other.test; spf=pass (mx.example.org)", ID)


def test_strip_forged_keeps_every_other_byte() -> None:
    section = (
        b"From: a@b.test\r\n"
        b"Authentication-Results: mx.example.org;\r\n\tdkim=pass header.d=bank.test\r\n"
        b"authentication-results:mx.example.org; none\r\n"
        b"Authentication-Results: relay.test; spf=pass\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
    )
    assert strip_forged(section, ID) == (
        b"From: a@b.test\r\nAuthentication-Results: relay.test; spf=pass\r\nSubject: hi\r\n\r\n"
    )


def test_strip_forged_without_results_is_identity() -> None:
    section = b"From: a@b.test\r\nSubject: mx.example.org\r\n\r\n"
    assert strip_forged(section, ID) is section
