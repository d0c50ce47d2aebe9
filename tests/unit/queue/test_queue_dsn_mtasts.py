"""Pure parts: DSN construction (RFC 3464) and MTA-STS record/policy parsing (RFC 8461)."""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.mime.dsn import RecipientReport, build_dsn, original_header
from appliance.queue.mtasts import PolicyError, mx_matches, parse_policy, parse_txt


def _dsn(reports: list[RecipientReport], retry_until: float | None = None) -> bytes:
    return build_dsn(
        reporting_mta="mail.example.org",
        sender="alice@example.org",
        queue_id="0123456789ABCDEF",
        arrival=1_700_000_000.0,
        now=1_700_000_600.0,
        reports=reports,
        header=b"From: alice@example.org\r\nSubject: hi\r\n",
        retry_until=retry_until,
    )


def test_failed_dsn_structure() -> None:
    data = _dsn([RecipientReport("bob@example.net", "failed", "550 5.1.1 unknown", "mx.ex")])
    msg = email.message_from_bytes(data)
    assert msg["To"] == "<alice@example.org>"
    assert msg.get_content_type() == "multipart/report"
    parts = msg.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status"
    # message/delivery-status parses as a list of header blocks: per-message, per-recipient.
    blocks = status.get_payload()
    assert blocks[0]["Reporting-MTA"] == "dns; mail.example.org"
    assert blocks[1]["Final-Recipient"] == "rfc822; bob@example.net"
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] == "5.1.1"
    assert blocks[1]["Remote-MTA"] == "dns; mx.ex"
    assert blocks[1]["Diagnostic-Code"] == "smtp; 550 5.1.1 unknown"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Subject: hi" in data
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only


@pytest.mark.parametrize(
    ("diagnostic", "action", "status", "expected"),
    [
        ("550 5.7.1 policy", "failed", "", "5.7.1"),
        ("550 no enhanced code", "failed", "", "5.0.0"),
        ("451 4.4.1 no answer", "delayed", "", "4.4.1"),
        ("connection refused", "delayed", "", "4.0.0"),
        ("452 4.2.2 full", "failed", "4.4.7", "4.4.7"),
    ],
)
def test_status_codes(diagnostic: str, action: str, status: str, expected: str) -> None:
    r = RecipientReport("x@example.net", action, diagnostic, status=status)  # type: ignore[arg-type]
    assert r.status_code == expected


def test_delay_dsn_and_no_header_injection() -> None:
    data = _dsn(
        [RecipientReport("bob@example.net", "delayed", "451 4.3.0 x\r\nBcc: evil@example")],
        retry_until=1_700_400_000.0,
    )
    assert b"Action: delayed" in data and b"Will-Retry-Until:" in data
    assert b"\r\nBcc: evil" not in data
    assert b"Subject: Delivery Status Notification (Delay)" in data


def test_original_header(tmp_path: Path) -> None:
    p = tmp_path / "m.eml"
    p.write_bytes(b"From: a@b.example\r\nSubject: s\r\n\r\nsecret body\r\n")
    assert original_header(p) == b"From: a@b.example\r\nSubject: s\r\n"


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
        (["v=STSv1;id=abc"], "abc"),
        (["v=spf1 -all", "v=STSv1; id=a1"], "a1"),
        (["v=STSv1; id=a1", "v=STSv1; id=a2"], None),  # two records: no policy
        (["v=STSv1; id=not-alnum"], None),
        (["v=STSv1;"], None),
        ([], None),
    ],
)
def test_parse_txt(records: list[str], expected: str | None) -> None:
    assert parse_txt(records) == expected


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.example.com.", True),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only
        ("*.example.com", "example.com", False),
        ("mail.example.com", "mail2.example.com", False),
    ],
)
def test_mx_matches(pattern: str, host: str, ok: bool) -> None:
    assert mx_matches(pattern, host) is ok


def test_policy_none_mode_needs_no_mx_and_max_age_capped() -> None:
    p = parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999\n")
    assert p.mode == "none" and p.mx == () and p.max_age == 31_557_600
    q = parse_policy("version: STSv1\nmode: enforce\nmx: a.example\nmx: *.b.example\nmax_age: 5")
    assert q.matches("x.b.example") and q.matches("a.example") and not q.matches("c.example")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parse_policy_never_crashes(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyError:
        return
    assert policy.mode in ("enforce", "testing", "none")
    assert 0 <= policy.max_age <= 31_557_600


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=4))
def test_parse_txt_never_crashes(records: list[str]) -> None:
    ident = parse_txt(records)
    assert ident is None or (0 < len(ident) <= 32 and ident.isalnum())


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.text(max_size=60))
def test_dsn_fields_stay_single_line(diagnostic: str, address: str) -> None:
    data = _dsn([RecipientReport(address, "failed", diagnostic)])
    status = data.split(b"message/delivery-status\r\n\r\n", 1)[1].split(b"\r\n--=_pb_", 1)[0]
    for line in status.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line
        assert line == b"" or b":" in line  # every line is a field: nothing injected
