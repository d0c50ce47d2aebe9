"""The one mailbox-address grammar: SMTP paths, account creation, web forms and the CLI.

RFC 5321 4.1.2 ``Mailbox = Local-part "@" ( Domain / address-literal )``, with RFC 6531
UTF-8 in local parts and domains when ``utf8`` is set. SMTP (appliance.smtp.address)
parses MAIL FROM / RCPT TO with it; appliance.accounts builds its mailbox names on it, so
nothing can be created that SMTP would then refuse. This module imports only the
standard library: every floor may use it.

Decisions for mailbox names (``mailbox_name``), stricter than a path:
- Dot-string only: atoms of atext joined by single dots (so no leading, trailing or
  doubled dot, no second "@"). A quoted-string local part is valid in a path (SMTP
  accepts it and then finds no such mailbox) but is never created as a mailbox.
- No ``%`` or ``!``: atext, but the relay syntaxes SMTP refuses into local domains
  (RFC 5321 3.6.1 and Appendix C, appliance.delivery.recipients).
- A domain name, never an address literal.
"""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass

MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset(string.ascii_letters + string.digits + "-")


class AddressError(ValueError):
    """An address that does not follow RFC 5321 4.1.2 (or a mailbox-name decision)."""


@dataclass(frozen=True)
class Mailbox:
    local: str  # as sent: a dot-string, or a quoted-string including the quotes
    domain: str  # as sent: a domain, or an address literal "[...]"

    @property
    def quoted(self) -> bool:
        return self.local.startswith('"')

    @property
    def literal(self) -> bool:
        return self.domain.startswith("[")

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


def _atext(c: str, utf8: bool) -> bool:
    return c in _ATEXT or (utf8 and ord(c) > 127)


def dot_string(text: str, utf8: bool = False) -> bool:
    # RFC 5321 4.1.2: Dot-string = Atom *("." Atom); Atom = 1*atext
    atoms = text.split(".")
    return all(atom and all(_atext(c, utf8) for c in atom) for atom in atoms)


def quoted_string(text: str, utf8: bool = False) -> bool:
    # RFC 5321 4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return False
    i, inner = 0, text[1:-1]
    while i < len(inner):
        c = inner[i]
        if c == "\\":  # quoted-pairSMTP = %d92 %d32-126
            if i + 1 >= len(inner) or not 32 <= ord(inner[i + 1]) <= 126:
                return False
            i += 2
            continue
        if c == '"' or not (32 <= ord(c) <= 126 or (utf8 and ord(c) > 127)):
            return False
        i += 1
    return True


def domain(text: str, utf8: bool = False) -> bool:
    # RFC 5321 4.1.2: Domain = sub-domain *("." sub-domain); no empty label, so no
    # trailing dot. RFC 6531 3.3: U-labels allowed with SMTPUTF8.
    if not text or len(text) > MAX_DOMAIN:
        return False
    for label in text.split("."):
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c in _LDH or (utf8 and ord(c) > 127) for c in label):
            return False
    return True


def address_literal(text: str) -> bool:
    # RFC 5321 4.1.3: "[" IPv4 / "IPv6:" IPv6 / General-address-literal "]"
    if len(text) < 3 or text[0] != "[" or text[-1] != "]":
        return False
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return True


def parse_mailbox(text: str, utf8: bool = False) -> Mailbox:
    """RFC 5321 4.1.2 Mailbox, as SMTP accepts it in a path."""
    if text.startswith('"'):
        end = 1
        while end < len(text):
            if text[end] == "\\":
                end += 2
                continue
            if text[end] == '"':
                break
            end += 1
        local, rest = text[: end + 1], text[end + 1 :]
        if not rest.startswith("@") or not quoted_string(local, utf8):
            raise AddressError("bad quoted local part")
        dom = rest[1:]
    else:
        local, at, dom = text.rpartition("@")
        if not at or not dot_string(local, utf8):
            raise AddressError("bad local part")
    if len(local.encode()) > MAX_LOCAL:
        raise AddressError("local part too long")
    if dom.startswith("["):
        if not address_literal(dom):
            raise AddressError("bad address literal")
    elif not domain(dom, utf8):
        raise AddressError("bad domain")
    return Mailbox(local, dom)


def mailbox_name(text: str) -> Mailbox:
    """A Mailbox this box may create (user, alias source or target): the SMTP grammar
    with UTF-8 (RFC 6531), a dot-string local part and a domain name."""
    mailbox = parse_mailbox(text, utf8=True)
    if mailbox.quoted:
        raise AddressError("a quoted local part cannot be a mailbox name here")
    if "%" in mailbox.local or "!" in mailbox.local:
        # RFC 5321 3.6.1 / Appendix C: %-hack and bang paths; RCPT refuses them locally.
        raise AddressError("'%' and '!' are relay syntax, not mailbox names")
    if mailbox.literal:
        raise AddressError("an address literal cannot be a mailbox's domain")
    return mailbox
