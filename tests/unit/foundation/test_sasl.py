"""appliance.sasl: the one decoder of SASL responses (SMTP, IMAP and POP3 use it)."""

from __future__ import annotations

import base64

import pytest

from appliance import sasl
from appliance.sasl import PlainCredentials, SaslError


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=", b""),  # RFC 4954 4 / RFC 5034 4 / RFC 9051 6.2.2: an empty response
        (b64(b"\0a@b.c\0pw"), b"\0a@b.c\0pw"),
        ("", b""),
    ],
)
def test_decode_response(text: str, expected: bytes) -> None:
    assert sasl.decode_response(text) == expected


@pytest.mark.parametrize("text", ["!!notbase64", "YWJj=x", "abc", "YW Jj", "é"])
def test_decode_response_refuses_bad_base64(text: str) -> None:
    with pytest.raises(SaslError) as info:
        sasl.decode_response(text)
    assert info.value.problem == "base64"


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b"\0alice@example.org\0pw", PlainCredentials("", "alice@example.org", "pw")),
        (b"a@x.y\0a@x.y\0", PlainCredentials("a@x.y", "a@x.y", "")),
        ("\0jöran@x.y\0pässword".encode(), PlainCredentials("", "jöran@x.y", "pässword")),
    ],
)
def test_parse_plain(blob: bytes, expected: PlainCredentials) -> None:
    assert sasl.parse_plain(blob) == expected


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        (b"", "split"),
        (b"alice\0pw", "split"),
        (b"\0alice\0pw\0extra", "split"),
        (b"\0alice\0\xff\xfe", "utf8"),
        (b"\xc3\0alice\0pw", "utf8"),
    ],
)
def test_parse_plain_refusals(blob: bytes, problem: str) -> None:
    with pytest.raises(SaslError) as info:
        sasl.parse_plain(blob)
    assert info.value.problem == problem


@pytest.mark.parametrize(
    ("authzid", "authcid", "ok"),
    [
        ("", "alice@example.org", True),
        ("alice@example.org", "alice@example.org", True),
        ("Alice@Example.ORG", "alice@example.org", True),  # an address: no case
        ("bob@example.org", "alice@example.org", False),  # RFC 4616 2: no proxy logins
        ("alice", "alice@example.org", False),
    ],
)
def test_acts_as_self(authzid: str, authcid: str, ok: bool) -> None:
    assert sasl.acts_as_self(PlainCredentials(authzid, authcid, "pw")) is ok
