"""Mailbox names for the one-validator tests (web form, CLI, SMTP, accounts).

REFUSED: every entry point refuses these (the SMTP path grammar for the first group, the
mailbox-name decisions of appliance.address for the rest). ACCEPTED: every entry point
takes these. Each is a local part; tests add ``@`` and their domain.
"""

from __future__ import annotations

# RFC 5321 4.1.2 Dot-string violations: SMTP answers 553 to these paths.
REFUSED_BY_GRAMMAR = (
    "bad@",  # "bad@@domain": a second "@"
    ".dot",  # leading dot: an empty atom
    "trailing.",  # trailing dot: an empty atom
    "two..dots",  # doubled dot: an empty atom
    "a b",  # space is not atext
    "semi;colon",  # specials are not atext
    "x" * 65,  # RFC 5321 4.5.3.1.1: local part at most 64 octets
)
# Valid RFC 5321 Quoted-string, refused as a mailbox name: SMTP parses it, then finds
# no mailbox (no mailbox has a quoted name).
REFUSED_QUOTED = ('"quoted"', '"a b"')
# atext, but relay syntax (%-hack, bang path) that RCPT refuses into local domains (550).
REFUSED_ROUTING = ("a%b", "a!b")
REFUSED = REFUSED_BY_GRAMMAR + REFUSED_QUOTED + REFUSED_ROUTING

ACCEPTED = (
    "plain",
    "first.last",
    "o'brien",
    "a+tag",
    "x-y_z",
    "#$&*/=?^`{|}~",
    "x" * 64,
    "jörg",  # RFC 6531: UTF-8 local part (SMTPUTF8)
)
