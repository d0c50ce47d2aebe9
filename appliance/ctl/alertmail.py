"""ctl ``alert_send {to, subject, text}``: a plain-text message from the box to one address.

The web UI's alert monitor (webui.alerts) runs unprivileged and owns no mail store, so
it asks the daemon to write the message. The daemon builds it (From the box's
MAILER-DAEMON, ``Auto-Submitted: auto-generated``), then, like a DSN
(appliance.queue.service.StoreBounces), stores it straight into a local recipient's
INBOX, or hands it to the outbound queue with origin ``local`` (DKIM-signed, null
reverse-path) for a remote one. The reply names where it went.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from appliance.accounts import Accounts
from appliance.config import Config
from appliance.ctl.service import CommandError, register
from appliance.queue.base import OutboundQueue
from appliance.runtime import CtlHandlers, Service
from appliance.store.base import DeliveryTarget, MailStore, StoreError

log = logging.getLogger(__name__)

MAX_SUBJECT = 200  # characters
MAX_TEXT = 64 * 1024  # characters of body


def build(hostname: str, to: str, subject: str, text: str, now: float) -> bytes:
    """The message as CRLF bytes (RFC 5322), UTF-8 text encoded as the policy chooses."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = email.utils.formataddr(("Pillarbox", f"MAILER-DAEMON@{hostname}"))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(now, localtime=True)
    msg["Message-ID"] = f"<alert.{secrets.token_hex(12)}@{hostname}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 5: no auto-replies to this
    msg.set_content(text)
    return msg.as_bytes()


def _arg(args: dict[str, Any], name: str, limit: int) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise CommandError(f"give args.{name} as a non-empty string")
    if len(value) > limit:
        raise CommandError(f"args.{name} is longer than {limit} characters")
    return value


def _address(value: str) -> str:
    name, addr = email.utils.parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if name or not (at and local and "." in domain) or any(c.isspace() for c in addr):
        raise CommandError("args.to must be one plain address such as admin@example.org")
    return addr


@dataclass(frozen=True)
class AlertDeps:
    """What alert_send uses."""

    accounts: Accounts
    store: MailStore
    queue: OutboundQueue
    config: Callable[[], Config]  # the config in force (host name, queue directory)


class AlertMail:
    def __init__(self, deps: AlertDeps) -> None:
        self.deps = deps

    def _send(self, to: str, data: bytes) -> dict[str, Any]:
        ctx = self.deps
        resolution = ctx.accounts.resolve(to)
        tmp = ctx.config().queue_dir / "tmp" / f"alert-{secrets.token_hex(8)}.eml"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.write_bytes(data)
            stored = 0
            if resolution.local:
                prefix = b"Return-Path: <>\r\n"  # RFC 5321 4.4, the null reverse-path
                targets = [DeliveryTarget(user=u, header_prefix=prefix) for u in resolution.local]
                ctx.store.deliver(targets, tmp)
                stored = len(targets)
            remote = list(resolution.remote)
            if not resolution.exists:
                if ctx.accounts.is_local_domain(to.rpartition("@")[2]):
                    raise CommandError(f"{to} is in a local domain but has no mailbox")
                remote = [to]
            queue_id = ""
            if remote:
                # RFC 3834 3.3 / RFC 5321 4.5.5: automatic notices use the null reverse-path.
                queue_id = ctx.queue.enqueue("", remote, tmp, origin="local")
        finally:
            tmp.unlink(missing_ok=True)
        log.info("alert=sent to=%s stored=%d queue_id=%s", to, stored, queue_id or "-")
        return {"stored": stored, "queue_id": queue_id}

    async def handle(self, args: dict[str, Any]) -> Any:
        to = _address(_arg(args, "to", 320))
        subject = " ".join(_arg(args, "subject", MAX_SUBJECT).split())  # no header folding tricks
        text = _arg(args, "text", MAX_TEXT)
        data = build(self.deps.config().hostname, to, subject, text, time.time())
        try:
            return await asyncio.to_thread(self._send, to, data)
        except (StoreError, OSError) as exc:
            log.error("alert=send-failed to=%s error=%s", to, exc)
            raise CommandError(f"the alert could not be stored or queued: {exc}") from None


def create(deps: AlertDeps, handlers: CtlHandlers) -> list[Service]:
    register(handlers, "alert_send", AlertMail(deps).handle)
    return []
