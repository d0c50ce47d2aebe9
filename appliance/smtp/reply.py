"""SMTP replies: the typed error raised inside the server and the enhanced-code rules.

Code inside the SMTP layer raises :class:`SmtpReply`; the session renders it once at the
protocol boundary. :func:`with_enhanced` adds an RFC 3463 enhanced status code to the
replies aiosmtpd composes itself, so every 2xx/4xx/5xx reply carries one once the client
has seen ENHANCEDSTATUSCODES in the EHLO response (RFC 2034 3).
"""

from __future__ import annotations

import re

from appliance.delivery.errors import DeliveryFailed

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?: |$)")

# Defaults for replies that do not say better (RFC 3463 classes).
_DEFAULTS: dict[int, str] = {
    220: "2.0.0",
    221: "2.0.0",
    235: "2.7.0",
    250: "2.0.0",
    251: "2.1.5",
    252: "2.5.0",
    421: "4.3.0",
    450: "4.2.0",
    451: "4.3.0",
    452: "4.3.1",
    454: "4.7.0",
    500: "5.5.2",
    501: "5.5.4",
    502: "5.5.1",
    503: "5.5.1",
    504: "5.5.4",
    530: "5.7.0",
    535: "5.7.8",
    538: "5.7.11",
    550: "5.0.0",
    552: "5.3.4",
    553: "5.1.3",
    554: "5.0.0",
    555: "5.5.4",
}


class SmtpReply(DeliveryFailed):
    """A complete SMTP reply; raised where a command fails, rendered by the session."""


def with_enhanced(line: str) -> str:
    """Insert a default enhanced status code into one reply line when it lacks one.

    Only 2xx, 4xx and 5xx replies get one (RFC 2034 3: not 3xx). Multi-line replies
    ("250-...") are left alone: the EHLO keyword lines must stay bare.
    """
    if len(line) < 4 or not line[:3].isdigit() or line[3] != " " or line[0] not in "245":
        return line
    rest = line[4:]
    if _ENHANCED.match(rest):
        return line
    code = int(line[:3])
    enhanced = _DEFAULTS.get(code, f"{line[0]}.0.0")
    return f"{line[:3]} {enhanced} {rest}".rstrip()
