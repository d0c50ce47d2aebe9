"""appliance.address: the one mailbox grammar for SMTP paths and account names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.accounts import AccountError, normalize_address
from appliance.address import AddressError, mailbox_name, parse_mailbox
from appliance.smtp.address import parse_path
from tests.addresses import ACCEPTED, REFUSED, REFUSED_BY_GRAMMAR, REFUSED_QUOTED, REFUSED_ROUTING


# (text, accepted in an SMTP path, accepted as a mailbox name to create)
@pytest.mark.parametrize(
    ("text", "in_path", "as_name"),
    [
        ("a@example.org", True, True),
        ("first.last@example.org", True, True),
        ("bad@@example.org", False, False),  # 4.1.2: "@" is not atext
        (".dot@example.org", False, False),  # 4.1.2: Dot-string starts with an Atom
        ("trailing.@example.org", False, False),  # 4.1.2: and ends with one
        ("a..b@example.org", False, False),  # 4.1.2: Atom = 1*atext, never empty
        ('"quoted"@example.org', True, False),  # 4.1.2 Quoted-string: path only
        ('"a\\"b"@example.org', True, False),  # quoted-pairSMTP
        ('"a"b"@example.org', False, False),  # bare DQUOTE inside
        ("a@[192.0.2.1]", True, False),  # 4.1.3 address literal: path only
        ("a@[IPv6:2001:db8::1]", True, False),
        ("a%b@example.org", True, False),  # %-hack: path only (3.6.1, Appendix C)
        ("a!b@example.org", True, False),  # bang path: path only
        ("a@example.org.", False, False),  # no empty label (a name strips it first)
        ("a@-x.org", False, False),  # sub-domain starts with Let-dig
        ("a@x_y.org", False, False),  # "_" is not in Ldh-str
        ("jörg@example.org", True, True),  # RFC 6531 UTF-8 local part
        ("a@bücher.example", True, True),  # RFC 6531 U-label
        ("x" * 64 + "@example.org", True, True),  # 4.5.3.1.1: 64 octets
        ("x" * 65 + "@example.org", False, False),
    ],
)
def test_grammar_table(text: str, in_path: bool, as_name: bool) -> None:
    def ok(f: object) -> bool:
        try:
            f(text)  # type: ignore[operator]
        except AddressError:
            return False
        return True

    assert ok(lambda t: parse_mailbox(t, utf8=True)) is in_path
    assert ok(mailbox_name) is as_name


@pytest.mark.parametrize("local", REFUSED)
def test_accounts_refuse(local: str) -> None:
    with pytest.raises(AccountError, match="not allowed as a mailbox name"):
        normalize_address(f"{local}@example.org")


@pytest.mark.parametrize("local", REFUSED_BY_GRAMMAR)
def test_smtp_path_refuses_the_same(local: str) -> None:
    with pytest.raises(AddressError):
        parse_path(f"<{local}@example.org>", utf8=True)


@pytest.mark.parametrize("local", REFUSED_QUOTED + REFUSED_ROUTING)
def test_smtp_path_parses_quoted_and_routing(local: str) -> None:
    assert parse_path(f"<{local}@example.org>").mailbox is not None


@pytest.mark.parametrize("local", ACCEPTED)
def test_accepted_everywhere(local: str) -> None:
    name = normalize_address(f"{local.upper()}@Example.ORG.")
    assert name == f"{local.lower()}@example.org"
    assert parse_path(f"<{name}>", utf8=True).mailbox is not None


@given(st.text(alphabet='ab.@"\\ ;-ä[]1%!', max_size=20))
def test_anything_accounts_accept_smtp_accepts(local: str) -> None:
    try:
        name = normalize_address(f"{local}@example.org")
    except AccountError:
        return
    assert str(parse_path(f"<{name}>", utf8=True).mailbox) == name
