"""ctl ``alert_send {to, subject, text}``: a plain-text message from the box to one address.

The web UI's alert monitor (webui.alerts) runs unprivileged and owns no mail store, so
it asks the daemon to send it through the box's one notifier
(:meth:`appliance.delivery.notices.Notifier.text`: from ``postmaster@<primary domain>``,
``Auto-Submitted: auto-generated``, stored for a local recipient, queued with origin
``local`` for a remote one). The reply names where it went.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from dataclasses import dataclass
from typing import Any

from appliance.delivery.notices import NoticeError, Notifier
from appliance.runtime import CommandError, CtlHandlers, Service, register
from appliance.store.base import StoreError

log = logging.getLogger(__name__)

MAX_SUBJECT = 200  # characters
MAX_TEXT = 64 * 1024  # characters of body


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

    notices: Notifier  # the box's one notifier (appliance.daemon.create_services)


class AlertMail:
    def __init__(self, deps: AlertDeps) -> None:
        self.deps = deps

    def _send(self, to: str, subject: str, text: str) -> dict[str, Any]:
        try:
            sent = self.deps.notices.text(to, subject, text)
        except NoticeError as exc:
            raise CommandError(str(exc)) from None
        if not sent:
            raise CommandError(f"{to} was not sent to: {sent.dropped}")
        log.info(
            "alert=sent to=%s stored=%d queue_id=%s", to, len(sent.stored), sent.queue_id or "-"
        )
        return {"stored": len(sent.stored), "queue_id": sent.queue_id}

    async def handle(self, args: dict[str, Any]) -> Any:
        to = _address(_arg(args, "to", 320))
        subject = " ".join(_arg(args, "subject", MAX_SUBJECT).split())  # no header folding tricks
        text = _arg(args, "text", MAX_TEXT)
        try:
            return await asyncio.to_thread(self._send, to, subject, text)
        except (StoreError, OSError) as exc:
            log.error("alert=send-failed to=%s error=%s", to, exc)
            raise CommandError(f"the alert could not be stored or queued: {exc}") from None


def create(deps: AlertDeps, handlers: CtlHandlers) -> list[Service]:
    register(handlers, "alert_send", AlertMail(deps).handle)
    return []
