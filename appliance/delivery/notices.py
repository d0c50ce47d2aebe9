"""One notifier for all mail the box writes itself.

Every kind goes through :meth:`Notifier.send` and its one set of rules:

- **kinds**: ``dsn`` (the queue's bounces and delay warnings, the pipeline's over-quota
  report), ``auto-reply`` (Sieve vacation and reject notices) and ``notice`` (a plain
  text from the box, :meth:`Notifier.text`, for admin alerts);
- **envelope sender**: the null reverse-path for a DSN or an auto-reply (RFC 3464 /
  RFC 5321 4.5.5, RFC 3834 3.3, RFC 5230 5.1), so none is ever bounced or answered; a
  notice comes from ``postmaster@<primary domain>`` (the same address ``<Postmaster>``
  stands for, RFC 5321 4.1.1.3), so a failure reaches the postmaster;
- **never to the null sender**: an empty recipient is logged and dropped;
- **Auto-Submitted** (RFC 3834 5): kept when the message carries one, else added
  (``auto-replied`` for a DSN or auto-reply, ``auto-generated`` for a notice);
- **recipients** are resolved like inbound mail: local mailboxes get the message
  stored directly (``Return-Path:`` the envelope sender, no quota: a report about a
  full mailbox or a refused message must not be lost to one), remote addresses are
  queued with origin ``local`` (DKIM-signed by the queue's signing policy) and kind
  ``bounce`` for a DSN; an unknown address in a local domain is dropped (queuing it
  would only loop back here).

Blocking calls (SQLite, store, spool) run in a worker thread; the ``async`` methods do
that for the event loop. Errors from the store or the queue are raised: the caller
decides (the queue keeps an entry whose DSN failed; Sieve and the pipeline log it).
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol

from appliance.delivery.recipients import postmaster
from appliance.queue.base import OutboundQueue
from appliance.store.base import DeliveryTarget, MailStore

log = logging.getLogger(__name__)

Kind = Literal["dsn", "auto-reply", "notice"]
MAX_HEAD = 64 * 1024  # bytes searched for an Auto-Submitted field


class Resolution(Protocol):
    @property
    def local(self) -> tuple[str, ...]: ...

    @property
    def remote(self) -> tuple[str, ...]: ...

    @property
    def exists(self) -> bool: ...


class Directory(Protocol):
    """What the notifier needs of appliance.accounts.Accounts."""

    def resolve(self, address: str) -> Resolution: ...

    def is_local_domain(self, name: str) -> bool: ...

    def list_domains(self) -> list[str]: ...


@dataclass(frozen=True)
class Sent:
    """Where one notice went; false when a rule dropped it."""

    stored: tuple[str, ...] = ()  # local users it was stored for
    queue_id: str = ""  # the outbound queue entry, "" when nothing was queued
    dropped: str = ""  # why a rule dropped it, "" when it was stored or queued

    def __bool__(self) -> bool:
        return not self.dropped


class NoticeError(Exception):
    """The box has no local domain, so no postmaster address to send from."""


def has_auto_submitted(message: bytes) -> bool:
    head = message[:MAX_HEAD].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return any(line.lower().startswith(b"auto-submitted:") for line in head.split(b"\n"))


class Notifier:
    def __init__(
        self,
        accounts: Directory,
        store: MailStore,
        queue: OutboundQueue,
        *,
        hostname: Callable[[], str],
        scratch: Path,
    ) -> None:
        self.accounts = accounts
        self.store = store
        self.queue = queue
        self.hostname = hostname  # read per message: a reload may change it
        self.scratch = scratch  # the queue's tmp/: leftovers of a crash are swept there

    # ------------------------------------------------------------ entry points

    def dsn(self, recipient: str, message: bytes, log_id: str = "-") -> Sent:
        """A delivery status notification (RFC 3464) to ``recipient``."""
        return self.send(recipient, message, "dsn", log_id)

    def auto_reply(self, recipient: str, message: bytes, log_id: str = "-") -> Sent:
        """A Sieve vacation reply or reject notice to ``recipient``."""
        return self.send(recipient, message, "auto-reply", log_id)

    def text(self, to: str, subject: str, body: str) -> Sent:
        """A plain text message from the box (``postmaster@<primary domain>``) to ``to``:
        what the admin alerts send. Raises NoticeError when the box serves no domain,
        ValueError for a line break in ``to`` or ``subject`` (no header injection)."""
        sender = self.postmaster()
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = f"Pillarbox <{sender}>"
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = email.utils.formatdate(localtime=False)
        msg["Message-ID"] = f"<{secrets.token_hex(12)}@{self.hostname()}>"
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 5.1: not a reply to anything
        msg.set_content(body)
        return self.send(to, bytes(msg), "notice")

    def postmaster(self) -> str:
        address = postmaster(self.accounts, self.hostname())
        if address is None:
            raise NoticeError("no local domain to send from")
        return address

    async def send_dsn(self, recipient: str, message: bytes, log_id: str) -> None:
        """The queue engine's bounce sink (``BounceSink``): raises when not delivered."""
        await asyncio.to_thread(self.dsn, recipient, message, log_id)

    async def send_auto_reply(self, recipient: str, message: bytes) -> bool:
        return bool(await asyncio.to_thread(self.auto_reply, recipient, message))

    # ------------------------------------------------------------ the rules

    def send(self, recipient: str, message: bytes, kind: Kind, log_id: str = "-") -> Sent:
        """Store or queue ``message`` for ``recipient`` by the rules above; the result
        is false when a rule dropped it. Raises OSError/StoreError when storing or
        queueing failed."""
        if not recipient:
            # RFC 3834 2 / RFC 5321 4.5.5: the null reverse-path is never answered.
            log.info("notice=dropped kind=%s id=%s reason=null-sender", kind, log_id)
            return Sent(dropped="null sender")
        # RFC 3464 / RFC 3834 3.3: DSNs and auto-replies use the null reverse-path.
        sender = "" if kind in ("dsn", "auto-reply") else self.postmaster()
        if not has_auto_submitted(message):
            value = "auto-generated" if kind == "notice" else "auto-replied"
            message = f"Auto-Submitted: {value}\r\n".encode() + message  # RFC 3834 5
        resolution = self.accounts.resolve(recipient)
        remote: Sequence[str] = resolution.remote
        if not resolution.exists:
            if self.accounts.is_local_domain(recipient.rpartition("@")[2]):
                log.warning(
                    "notice=dropped kind=%s id=%s to=%s reason=no-local-mailbox",
                    kind,
                    log_id,
                    recipient,
                )
                return Sent(dropped="no such local mailbox")
            remote = [recipient]
        self.scratch.mkdir(parents=True, exist_ok=True)
        tmp = self.scratch / f"notice-{secrets.token_hex(8)}.eml"
        qid = ""
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(message)  # the store and the spool copy it and fsync the copy
            if resolution.local:
                prefix = f"Return-Path: <{sender}>\r\n".encode()
                targets = [DeliveryTarget(user=u, header_prefix=prefix) for u in resolution.local]
                self.store.deliver(targets, tmp)
                log.info(
                    "notice=stored kind=%s id=%s to=%s users=%s",
                    kind,
                    log_id,
                    recipient,
                    ",".join(resolution.local),
                )
            if remote:
                qid = self.queue.enqueue(
                    sender,
                    list(remote),
                    tmp,
                    kind="bounce" if kind == "dsn" else "message",
                    origin="local",
                )
                log.info("notice=queued kind=%s id=%s queue_id=%s", kind, log_id, qid)
        finally:
            tmp.unlink(missing_ok=True)
        return Sent(stored=resolution.local, queue_id=qid)
