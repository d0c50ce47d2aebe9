"""Delivery status notifications (RFC 3464) for failed and delayed recipients.

A DSN is a multipart/report (RFC 6522) with a human-readable part, a
message/delivery-status part and the original message's header (text/rfc822-headers).
DSNs go out with the null reverse-path so they are never bounced themselves.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Literal

Action = Literal["failed", "delayed"]

_STATUS_RE = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")
_CODE_RE = re.compile(r"^[245]\d\d\b")
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RecipientReport:
    address: str
    action: Action
    diagnostic: str  # last SMTP reply or local reason, e.g. "550 5.1.1 no such user"
    remote_mta: str = ""
    last_attempt: float = 0.0
    status: str = ""  # RFC 3463 code; derived from ``diagnostic`` when empty

    @property
    def status_code(self) -> str:
        if self.status:
            return self.status
        m = _STATUS_RE.match(self.diagnostic)
        if m:
            return m.group(1)
        if self.diagnostic[:1] == "5":
            return "5.0.0"
        return "5.0.0" if self.action == "failed" else "4.0.0"


def original_header(message: Path) -> bytes:
    """The header section of ``message`` (up to 64 KiB), CRLF line ends."""
    with message.open("rb") as fh:
        head = fh.read(MAX_HEADER_BYTES)
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    header = head if end < 0 else head[:end]
    lines = header.replace(b"\r\n", b"\n").split(b"\n")
    return b"\r\n".join(lines) + b"\r\n"


def _text(value: str) -> bytes:
    # Header and report fields are single lines: no CR/LF injection from remote replies.
    return " ".join(value.split()).encode("utf-8", "replace")


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    queue_id: str,
    arrival: float,
    now: float,
    reports: Sequence[RecipientReport],
    header: bytes,
    retry_until: float | None = None,
) -> bytes:
    """The DSN message to ``sender`` about ``reports`` (all failed or all delayed)."""
    delayed = all(r.action == "delayed" for r in reports)
    boundary = f"=_pb_{secrets.token_hex(12)}"
    subject = (
        "Delivery Status Notification (Delay)" if delayed else "Undelivered Mail Returned to Sender"
    )
    msgid = f"<{queue_id}.{secrets.token_hex(6)}@{reporting_mta}>"
    out: list[bytes] = [
        b"From: Mail Delivery System <MAILER-DAEMON@" + _text(reporting_mta) + b">",
        b"To: <" + _text(sender) + b">",
        b"Subject: " + subject.encode(),
        b"Date: " + formatdate(now).encode(),
        b"Message-ID: " + msgid.encode(),
        b"Auto-Submitted: auto-replied",  # RFC 3834 5: no auto-replies to this
        b"MIME-Version: 1.0",
        # RFC 6522 3: multipart/report with report-type=delivery-status (RFC 3464 2).
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="'
        + boundary.encode()
        + b'"',
        b"",
        b"This is a MIME-encapsulated delivery status notification.",
        b"",
        b"--" + boundary.encode(),
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
    ]
    if delayed:
        out.append(b"Your message has not been delivered yet to the recipients below.")
        out.append(b"The mail system will keep trying; you do not need to resend it.")
        if retry_until is not None:
            out.append(b"It gives up after " + formatdate(retry_until).encode() + b".")
    else:
        out.append(b"Your message could not be delivered to the recipients below.")
        out.append(b"The mail system has given up; the message header is attached.")
    out.append(b"")
    for r in reports:
        out.append(b"<" + _text(r.address) + b">: " + _text(r.diagnostic))
    out += [
        b"",
        b"--" + boundary.encode(),
        b"Content-Type: message/delivery-status",
        b"",
        # RFC 3464 2.2: per-message fields.
        b"Reporting-MTA: dns; " + _text(reporting_mta),
        b"X-Pillarbox-Queue-ID: " + queue_id.encode(),
        b"Arrival-Date: " + formatdate(arrival).encode(),
    ]
    for r in reports:
        # RFC 3464 2.3: per-recipient fields, each group preceded by a blank line.
        out += [
            b"",
            b"Final-Recipient: rfc822; " + _text(r.address),
            b"Action: " + r.action.encode(),
            b"Status: " + r.status_code.encode(),
        ]
        if r.remote_mta:
            out.append(b"Remote-MTA: dns; " + _text(r.remote_mta))
        if _CODE_RE.match(r.diagnostic):
            out.append(b"Diagnostic-Code: smtp; " + _text(r.diagnostic))
        elif r.diagnostic:
            out.append(b"X-Pillarbox-Diagnostic: " + _text(r.diagnostic))
        if r.last_attempt:
            out.append(b"Last-Attempt-Date: " + formatdate(r.last_attempt).encode())
        if delayed and retry_until is not None:
            out.append(b"Will-Retry-Until: " + formatdate(retry_until).encode())
    out += [
        b"",
        b"--" + boundary.encode(),
        b"Content-Type: text/rfc822-headers",  # RFC 6522 / RFC 3462: original header
        b"",
    ]
    body = b"\r\n".join(out) + b"\r\n" + header
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b"\r\n--" + boundary.encode() + b"--\r\n"
