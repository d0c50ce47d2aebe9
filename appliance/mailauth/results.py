"""Authentication-Results header field (RFC 8601) from the check outcomes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.mailauth.dkim_check import ArcOutcome, DkimOutcome
from appliance.mailauth.dmarc import DmarcOutcome
from appliance.mailauth.spf import SpfOutcome

_UNSAFE = re.compile(r"[^A-Za-z0-9.@_+\-=/]")


@dataclass(frozen=True)
class AuthOutcome:
    spf: SpfOutcome | None = None
    dkim: tuple[DkimOutcome, ...] = ()
    dmarc: DmarcOutcome | None = None
    arc: ArcOutcome | None = None
    auth_user: str = ""  # set for authenticated submissions (RFC 8601 2.7.4 smtp.auth)


def _value(text: str) -> str:
    """A property value as a token, or a quoted-string when it is not one."""
    if text and not _UNSAFE.search(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _comment(text: str) -> str:
    cleaned = re.sub(r"[()\\\r\n]", " ", text).strip()
    return f" ({cleaned})" if cleaned else ""


def format_header(authserv_id: str, outcome: AuthOutcome, mail_from: str) -> str:
    """RFC 8601 2.2: ``authserv-id; method=result ptype.property=value; ...``."""
    parts: list[str] = []
    if outcome.auth_user:
        parts.append(f"auth=pass smtp.auth={_value(outcome.auth_user)}")
    if outcome.spf is not None:
        spf = outcome.spf
        # RFC 8601 2.7.2: smtp.mailfrom, or smtp.helo for the HELO identity.
        if spf.scope == "mailfrom":
            prop = f"smtp.mailfrom={_value(mail_from or spf.domain)}"
        else:
            prop = f"smtp.helo={_value(spf.domain)}"
        parts.append(f"spf={spf.result}{_comment(spf.reason)} {prop}")
    if outcome.dkim:
        for d in outcome.dkim:
            props = ""
            if d.domain:
                props += f" header.d={_value(d.domain)}"
            if d.selector:
                props += f" header.s={_value(d.selector)}"
            if d.header_b:
                props += f" header.b={_value(d.header_b)}"  # RFC 6008 header.b
            parts.append(f"dkim={d.result}{_comment(d.reason)}{props}")
    elif outcome.spf is not None:
        parts.append("dkim=none")
    if outcome.dmarc is not None:
        dm = outcome.dmarc
        note = f"p={dm.policy} dis={dm.disposition}" if dm.result in ("pass", "fail") else dm.reason
        prop = f" header.from={_value(dm.header_from)}" if dm.header_from else ""
        parts.append(f"dmarc={dm.result}{_comment(note)}{prop}")
    if outcome.arc is not None:
        parts.append(f"arc={outcome.arc.result}{_comment(outcome.arc.reason)}")
    if not parts:
        return f"{authserv_id}; none"  # RFC 8601 2.2: no method was run
    # One line (under 998 octets): the delivery pipeline prepends it verbatim.
    return f"{authserv_id}; " + "; ".join(parts)


def claims_our_id(value: str, authserv_id: str) -> bool:
    """True when an existing Authentication-Results value names our authserv-id.

    RFC 8601 5: such fields arriving from outside are forgeries and should be removed
    (or renamed) before delivery; the delivery pipeline uses this to drop them."""
    text = re.sub(r"\([^)]*\)", " ", value)  # drop CFWS comments
    first = text.split(";", 1)[0].strip().split()
    return bool(first) and first[0].lower().rstrip(".") == authserv_id.lower().rstrip(".")


def strip_forged(section: bytes, authserv_id: str) -> bytes:
    """Remove Authentication-Results fields that claim ``authserv_id`` from a raw header
    section (RFC 8601 5); every other field, and the section's bytes, are kept as they are.
    """
    if b"authentication-results" not in section.lower():
        return section
    fields: list[bytes] = []
    for line in section.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    kept = []
    for field in fields:
        name, sep, value = field.partition(b":")
        if sep and name.strip().lower() == b"authentication-results":
            text = value.decode("utf-8", "replace").replace("\r\n", " ")
            if claims_our_id(text, authserv_id):
                continue
        kept.append(field)
    return b"".join(kept)
