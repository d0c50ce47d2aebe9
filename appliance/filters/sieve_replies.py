"""Messages Sieve sends on its own: vacation auto-replies (RFC 5230 5, RFC 3834) and
reject notifications (RFC 5429 2.1, an MDN per RFC 8098)."""

from __future__ import annotations

import email.policy
import email.utils
import uuid
from email.message import EmailMessage, Message

from appliance.filters.sieve_eval import VacationRequest, header

_SMTP = email.policy.SMTP


def _one_line(text: str) -> str:
    """A header field value from script text: line breaks a script may hold become
    spaces (RFC 5322 2.2: a field body has no bare CR or LF)."""
    return " ".join(text.splitlines()).strip()


def _message_id(hostname: str) -> str:
    return f"<{uuid.uuid4().hex}@{hostname}>"


def vacation_reply(
    request: VacationRequest, headers: Message, mail_from: str, user: str, hostname: str
) -> bytes:
    """RFC 5230 5: the auto-reply, to the envelope sender, from the user."""
    msg = EmailMessage(policy=_SMTP)
    msg["From"] = _one_line(request.from_addr) or user  # RFC 5230 5.3
    msg["To"] = mail_from  # RFC 5230 5.1: reply to the envelope sender
    original = header(headers, "Subject")
    # RFC 5230 5.4: the default subject is "Auto: " and the original subject.
    msg["Subject"] = _one_line(request.subject) or f"Auto: {original}".rstrip()
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = _message_id(hostname)
    msg["Auto-Submitted"] = "auto-replied (vacation)"  # RFC 3834 5 / RFC 5230 5.x
    orig_id = header(headers, "Message-ID")
    if orig_id:
        # RFC 5230 5.8: In-Reply-To and References point at the original.
        msg["In-Reply-To"] = orig_id
        refs = header(headers, "References").split()
        msg["References"] = " ".join([*refs[-8:], orig_id])
    if request.mime:
        # RFC 5230 4.4: with :mime the reason is a whole MIME entity.
        head = bytes(msg)
        entity = request.reason.replace("\r\n", "\n").replace("\n", "\r\n").lstrip("\r\n")
        return head.rstrip(b"\r\n") + b"\r\nMIME-Version: 1.0\r\n" + entity.encode("utf-8")
    msg.set_content(request.reason)
    return bytes(msg)


def reject_notice(reason: str, headers: Message, mail_from: str, user: str, hostname: str) -> bytes:
    """RFC 5429 2.1: tell the sender the message was refused, with the reason."""
    boundary = f"=_pillarbox_{uuid.uuid4().hex}"
    subject = header(headers, "Subject")
    top = EmailMessage(policy=_SMTP)
    top["From"] = f"Mail Delivery System <MAILER-DAEMON@{hostname}>"
    top["To"] = mail_from
    top["Subject"] = f"Rejected: {subject}".rstrip()
    top["Date"] = email.utils.formatdate(localtime=False)
    top["Message-ID"] = _message_id(hostname)
    top["Auto-Submitted"] = "auto-replied"
    top["MIME-Version"] = "1.0"
    top["Content-Type"] = (
        f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    )
    human = f"Your message to {user} was automatically rejected:\r\n\r\n{reason}\r\n"
    orig_id = header(headers, "Message-ID")
    # RFC 8098 3.2: the machine-readable disposition notification.
    mdn = [
        f"Reporting-UA: {hostname}; Pillarbox Sieve",
        f"Final-Recipient: rfc822; {user}",
        *([f"Original-Message-ID: {orig_id}"] if orig_id else []),
        "Disposition: automatic-action/MDN-sent-automatically; deleted",
    ]
    original = "".join(f"{k}: {v}\r\n" for k, v in headers.raw_items())
    body = (
        f"--{boundary}\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{human}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/disposition-notification\r\n\r\n" + "\r\n".join(mdn) + "\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{original}\r\n"
        f"--{boundary}--\r\n"
    )
    head = b"".join(_SMTP.fold_binary(name, value) for name, value in top.items())
    return head + b"\r\n" + body.encode("utf-8", "surrogateescape")
