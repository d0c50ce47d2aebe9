"""The "sieve" RecipientFilter: runs each user's Sieve script and sends what it asks for.

Result mapping (RecipientAction):
- keep (implicit or explicit) -> the default mailbox: INBOX, or Junk when the transaction
  verdict is "junk"; fileinto adds mailboxes; no mailbox and no redirect = discard.
- flags: union of the imap4flags of every chosen mailbox (per mailbox in ``extra`` as
  ``flags:<mailbox>``).
- redirect: returned in ``redirect`` for the delivery pipeline to forward (original
  envelope sender; local targets stored directly, remote ones queued).
- reject / vacation: with ``replies`` (the box's notifier, appliance.delivery.notices:
  null sender, stored for local senders, queued for others) the filter sends the
  notice / auto-reply itself and ``reject_reason`` stays empty (reported in
  ``extra``); without it the reject reason is returned for the pipeline.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
from pathlib import Path
from typing import Protocol

from appliance.filters.base import InboundMessage, RecipientAction, Verdict
from appliance.filters.sieve_eval import (
    SieveMessage,
    SieveOutcome,
    header,
    raw_headers,
    run_script,
)
from appliance.filters.sieve_parse import SieveSyntaxError
from appliance.filters.sieve_replies import reject_notice, vacation_reply
from appliance.filters.sieve_store import SieveStore
from appliance.filters.sieve_vacation import VacationTracker, handle_for, refuse_reason
from appliance.store.base import StoreError

log = logging.getLogger(__name__)


class Replies(Protocol):
    """How generated replies leave (appliance.delivery.notices.Notifier)."""

    async def send_auto_reply(self, recipient: str, message: bytes) -> bool:
        """Send from the null sender; False when a rule dropped it. Raises OSError or
        StoreError when storing or queueing failed."""
        ...


INBOX = "INBOX"
JUNK = "Junk"
MAX_HOPS = 30  # Received fields beyond which redirect is refused (loop control)


def _load(path: Path) -> tuple[bytes, email.message.Message]:
    data = path.read_bytes()
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    return data, parsed


class SieveFilter:
    name = "sieve"

    def __init__(
        self,
        store: SieveStore,
        hostname: str,
        replies: Replies | None = None,
        tracker: VacationTracker | None = None,
    ) -> None:
        self.store = store
        self.hostname = hostname
        self.replies = replies
        self.tracker = tracker

    async def close(self) -> None:
        if self.tracker is not None:
            await asyncio.to_thread(self.tracker.close)

    async def route(self, user: str, msg: InboundMessage, verdict: Verdict) -> RecipientAction:
        default = JUNK if verdict.action == "junk" else INBOX
        try:
            script = await asyncio.to_thread(self.store.compiled, user)
        except (SieveSyntaxError, OSError, ValueError) as exc:
            log.error("sieve=broken user=%s reason=%s", user, exc)
            return RecipientAction(mailboxes=(default,))
        if script is None:
            return RecipientAction(mailboxes=(default,))
        data, headers = await asyncio.to_thread(_load, msg.path)
        smsg = SieveMessage(headers, data, msg.mail_from, user, msg.size or len(data))
        outcome = await asyncio.to_thread(run_script, script, smsg)
        if outcome.error:
            log.warning("sieve=runtime-error user=%s reason=%s", user, outcome.error)
        return await self._apply(user, msg, outcome, headers, default, verdict.action == "junk")

    async def _apply(
        self,
        user: str,
        msg: InboundMessage,
        outcome: SieveOutcome,
        headers: email.message.Message,
        default: str,
        spam: bool,
    ) -> RecipientAction:
        chosen: dict[str, frozenset[str]] = {}
        if outcome.keep:
            chosen[default] = outcome.keep_flags
        for mailbox, flags in outcome.fileinto:
            key = INBOX if mailbox.upper() == INBOX else mailbox
            chosen[key] = chosen.get(key, frozenset()) | flags
        extra: dict[str, str] = {f"flags:{m}": " ".join(sorted(f)) for m, f in chosen.items() if f}
        redirect: tuple[str, ...] = ()
        reject_reason = ""
        hops = len(raw_headers(headers, "Received"))
        if outcome.redirects and hops > MAX_HOPS:
            # RFC 5228 4.2: loop control; a message this travelled is kept, not redirected.
            log.warning("sieve=redirect-loop user=%s hops=%s", user, hops)
            chosen.setdefault(default, outcome.keep_flags)
        elif outcome.redirects:
            # The delivery pipeline forwards them (local users directly, others queued).
            redirect = outcome.redirects
        if outcome.reject is not None:
            if self.replies is None:
                reject_reason = outcome.reject
            elif spam:
                extra["sieve:rejected"] = "silently"  # no backscatter to forged spam senders
            elif msg.mail_from and header(headers, "Auto-Submitted", "no").lower() == "no":
                notice = reject_notice(outcome.reject, headers, msg.mail_from, user, self.hostname)
                await self._send_bytes(notice, msg.mail_from)
                extra["sieve:rejected"] = "notice-sent"
            else:
                extra["sieve:rejected"] = "silently"  # RFC 5429 2.1: never to null sender
        if outcome.vacation is not None and spam:
            extra["sieve:vacation"] = "skipped: spam"  # never auto-reply to junk
        elif outcome.vacation is not None:
            extra["sieve:vacation"] = await self._vacation(user, msg, outcome, headers)
        flags = frozenset().union(*chosen.values()) if chosen else frozenset()
        return RecipientAction(
            mailboxes=tuple(chosen),
            flags=flags,
            redirect=redirect,
            reject_reason=reject_reason,
            extra=extra,
        )

    async def _vacation(
        self, user: str, msg: InboundMessage, outcome: SieveOutcome, headers: email.message.Message
    ) -> str:
        request = outcome.vacation
        assert request is not None
        why = refuse_reason(request, headers, msg.mail_from, user)
        if why:
            log.info("sieve=vacation-skipped user=%s reason=%s", user, why)
            return f"skipped: {why}"
        if self.replies is None or self.tracker is None:
            return "skipped: no sender configured"
        handle = handle_for(request)
        fresh = await asyncio.to_thread(
            self.tracker.claim, user, msg.mail_from, handle, request.days
        )
        if not fresh:
            return "skipped: already replied"
        reply = vacation_reply(request, headers, msg.mail_from, user, self.hostname)
        ok = await self._send_bytes(reply, msg.mail_from)
        return "sent" if ok else "failed"

    async def _send_bytes(self, data: bytes, recipient: str) -> bool:
        """Hand a generated message to the notifier (RFC 5230 5.1 / RFC 3834 3.3: it goes
        out from the null reverse-path)."""
        assert self.replies is not None
        try:
            sent = await self.replies.send_auto_reply(recipient, data)
        except (OSError, StoreError) as exc:
            log.error("sieve=send-failed to=%s reason=%s", recipient, exc)
            return False
        log.info("sieve=sent to=%s ok=%s", recipient, sent)
        return sent
