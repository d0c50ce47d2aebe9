"""Trace and origination headers written by the SMTP server.

The Received header follows RFC 5321 4.4 (from, by, with, id, for, date); the "with"
protocol names come from RFC 3848 (ESMTPS, ESMTPSA ...) and RFC 6531 (UTF8SMTP...).
TLS details go into a comment, as common MTAs do.
"""

from __future__ import annotations

import email.utils
import ssl
import time
import uuid
from dataclasses import dataclass

from appliance.smtp.spool import HeaderHook, header_names


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cipher: str
    bits: int

    @classmethod
    def of(cls, obj: ssl.SSLObject | ssl.SSLSocket | None) -> TlsInfo | None:
        if obj is None:
            return None
        cipher = obj.cipher()
        if cipher is None:
            return None
        return cls(obj.version() or cipher[1], cipher[0], cipher[2])

    def __str__(self) -> str:
        return f"version={self.version} cipher={self.cipher} bits={self.bits}"


def protocol_name(esmtp: bool, tls: bool, auth: bool, utf8: bool) -> str:
    # RFC 3848 1 and RFC 6531 3.7.3: SMTP / ESMTP[S][A], UTF8SMTP[S][A]
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if auth else "")


def _clean(text: str) -> str:
    """Keep client-supplied text from breaking the header (no CR/LF, no parentheses)."""
    return "".join(c if c.isprintable() and c not in "()" else "?" for c in text)[:255]


def received_header(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    tls: TlsInfo | None,
    recipients: tuple[str, ...],
    now: float | None = None,
) -> bytes:
    # RFC 5321 4.4: Received: from <helo> (<tcp-info>) by <host> with <proto> id <id>
    # for <forward-path>; <date-time>
    lines = [f"Received: from {_clean(helo) or 'unknown'} ([{client_ip}])"]
    lines.append(f"\tby {hostname} (Pillarbox) with {protocol} id {queue_id}")
    if tls is not None:
        lines.append(f"\t(using {tls})")
    if len(recipients) == 1:  # a single "for" clause; more would disclose Bcc recipients
        lines.append(f"\tfor <{_clean(recipients[0])}>")
    date = email.utils.formatdate(now if now is not None else time.time(), localtime=True)
    lines[-1] += ";"
    lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def submission_headers(hostname: str, now: float | None = None) -> HeaderHook:
    """Build the hook that adds Message-ID and Date when a submitted message lacks them
    (RFC 6409 8.2, 8.3)."""

    def hook(section: bytes) -> bytes:
        names = header_names(section)
        out = b""
        if "date" not in names:
            date = email.utils.formatdate(now if now is not None else time.time(), localtime=True)
            out += f"Date: {date}\r\n".encode()
        if "message-id" not in names:
            out += f"Message-ID: <{uuid.uuid4().hex}@{hostname}>\r\n".encode()
        return out

    return hook
