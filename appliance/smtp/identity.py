"""Submission: the header From (and Sender) must name the authenticated user.

MAIL FROM alone proves nothing to the recipient: what a mail reader shows, and what
DMARC aligns with and the box DKIM-signs for, is the header From. So a message
submitted on 587/465 is refused (550 5.7.1) unless every mailbox in its From field,
and in its Sender field when there is one, is an identity of the authenticated user:

- the user's own address, or an alias whose mail goes to this user alone (an alias
  shared with other users or forwarding outside is not an identity of any one of them);
- ``local+tag@domain`` when ``local@domain`` is one of those (subaddressing);
- an address the admin granted in ``[smtp] extra_identities`` (exact, or ``*@domain``).

Only the header section is looked at (the spool hands it over, at most
``spool.HEADER_CAP`` octets). Every line of it is scanned, so a second From hidden
behind a line another parser would stop at is still found. The value is parsed twice,
with the RFC 5322 parser (``email.headerregistry``) and the lenient one
(``email.utils.getaddresses``); when they disagree, or the strict one reports a defect,
the field is ambiguous and refused rather than guessed at.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import AddressHeader, HeaderRegistry

from appliance.accounts import AccountError, Accounts, normalize_address

log = logging.getLogger(__name__)

_REGISTRY = HeaderRegistry()

NOT_OWNED = "550 5.7.1 From header address not owned by you"
SENDER_NOT_OWNED = "550 5.7.1 Sender header address not owned by you"
NO_FROM = "550 5.6.0 Message has no From header field (RFC 5322 3.6)"
MANY_FROM = "550 5.6.0 Message must have exactly one From header field (RFC 5322 3.6)"
MANY_SENDER = "550 5.6.0 Message has more than one Sender header field (RFC 5322 3.6)"
BAD_FROM = "550 5.6.0 From header field cannot be parsed unambiguously"
BAD_SENDER = "550 5.6.0 Sender header field cannot be parsed unambiguously"
HEADER_TOO_BIG = "552 5.6.0 Header section too large to check the From field"


@dataclass(frozen=True)
class Authors:
    """The mailboxes of the From and Sender fields, or why they cannot be used."""

    from_: tuple[str, ...] = ()
    sender: tuple[str, ...] = ()
    problem: str | None = None


def header_fields(section: bytes, names: Iterable[str]) -> dict[str, list[str]]:
    """Unfolded values of the named fields (lower-case names), every occurrence.

    Every line of ``section`` is looked at; a line without a colon does not end the scan.
    """
    wanted = set(names)
    found: dict[str, list[list[bytes]]] = {n: [] for n in wanted}
    current: list[bytes] | None = None
    for line in section.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)  # RFC 5322 2.2.3: unfolding removes only the CRLF
            continue
        current = None
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        # RFC 5322 4.5.3 (obsolete syntax): white space may precede the colon
        key = name.rstrip(b" \t").decode("ascii", "replace").lower()
        if key in wanted:
            current = [value]
            found[key].append(current)
    return {
        k: [b"".join(parts).decode("utf-8", "surrogateescape").strip() for parts in v]
        for k, v in found.items()
    }


def _mailboxes(value: str) -> list[str] | None:
    """The addr-specs of an address-list value, or None when it is malformed or the two
    parsers read it differently."""
    try:
        header = _REGISTRY("from", value)
    except Exception:  # the stdlib parser raises on some malformed input
        return None
    assert isinstance(header, AddressHeader)
    if any(not isinstance(d, NonASCIILocalPartDefect) for d in header.defects):
        return None
    strict = [a.addr_spec for a in header.addresses]
    lenient = [addr for _, addr in email.utils.getaddresses([value])]
    if not strict or sorted(strict) != sorted(lenient):
        return None
    for addr in strict:
        # RFC 2047 5(3): an encoded-word never appears in an addr-spec; a reader that
        # decodes one anyway would show another address (the "Mailsploit" trick)
        if "=?" in addr or not addr.isprintable():
            return None
    return strict


def authors(section: bytes | None) -> Authors:
    """Read the From and Sender mailboxes of a header section (None: it was too big)."""
    if section is None:
        return Authors(problem=HEADER_TOO_BIG)
    fields = header_fields(section, ("from", "sender"))
    froms, senders = fields["from"], fields["sender"]
    # RFC 5322 3.6: exactly one From, at most one Sender
    if not froms:
        return Authors(problem=NO_FROM)
    if len(froms) > 1:
        return Authors(problem=MANY_FROM)
    if len(senders) > 1:
        return Authors(problem=MANY_SENDER)
    from_ = _mailboxes(froms[0])
    if from_ is None:
        return Authors(problem=BAD_FROM)
    sender: list[str] = []
    if senders:
        parsed = _mailboxes(senders[0])
        if parsed is None or len(parsed) != 1:  # RFC 5322 3.6.2: Sender is one mailbox
            return Authors(problem=BAD_SENDER)
        sender = parsed
    return Authors(tuple(from_), tuple(sender))


def _norm(address: str) -> str | None:
    try:
        return normalize_address(address)
    except (AccountError, UnicodeError):
        return None


def identities(accounts: Accounts, user: str) -> set[str]:
    """The user's address and the aliases that deliver to this user alone (blocking)."""
    own = normalize_address(user)
    out = {own}
    for alias in accounts.addresses_of(own):
        if alias == own:
            continue
        where = accounts.resolve(alias)
        if where.local == (own,) and not where.remote:
            out.add(alias)
    return out


def allowed(address: str, owned: set[str], extra: Iterable[str]) -> bool:
    """Whether ``address`` is one of ``owned`` (or a subaddress of one), or matches a
    granted pattern (``user@domain`` or ``*@domain``)."""
    addr = _norm(address)
    if addr is None:
        return False
    local, _, domain = addr.rpartition("@")
    base = f"{local.split('+', 1)[0]}@{domain}"  # RFC 5233: local+tag is local's
    if addr in owned or base in owned:
        return True
    for pattern in extra:
        if pattern == addr or (pattern.startswith("*@") and pattern[2:] == domain):
            return True
    return False


def check(accounts: Accounts, user: str, section: bytes | None, extra: Iterable[str]) -> str | None:
    """The refusal for a submitted message's header, or None when it may go (blocking)."""
    found = authors(section)
    if found.problem is not None:
        log.info("submission=author-refused user=%s reason=%s", user, found.problem[:3])
        return found.problem
    owned = identities(accounts, user)
    grants = tuple(extra)
    for addr in found.from_:
        if not allowed(addr, owned, grants):
            log.info("submission=from-refused user=%s from=%s", user, addr)
            return NOT_OWNED
    for addr in found.sender:
        if not allowed(addr, owned, grants):
            log.info("submission=sender-refused user=%s sender=%s", user, addr)
            return SENDER_NOT_OWNED
    return None
