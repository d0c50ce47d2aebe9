"""MAIL FROM and RCPT TO rules, as aiosmtpd handler hooks.

MX (port 25): any sender; recipients must be ours (appliance.delivery.recipients).
Submission (587/465): the client is authenticated (aiosmtpd refuses MAIL before AUTH);
MAIL FROM must be the user, one of their addresses, or an identity granted in
``[smtp] extra_identities`` (the header From is checked at the end of the message,
appliance.smtp.identity); the null sender is refused
(RFC 6409 6.1), and recipients may be anywhere (local ones are delivered here).
Hooks raise SmtpReply/DeliveryFailed; :meth:`Hooks.handle_exception` renders them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from appliance.accounts import User
from appliance.config import Config
from appliance.delivery.errors import DeliveryFailed, local_failure, storage_full
from appliance.delivery.pipeline import PipelineDeps
from appliance.delivery.recipients import Recipient, Resolver, message_quota, postmaster
from appliance.delivery.srs import srs_for
from appliance.smtp import identity
from appliance.smtp.address import AddressError, parse_mailbox
from appliance.smtp.body import Chunked
from appliance.smtp.reply import SmtpReply
from appliance.smtp.state import ListenerKind
from appliance.store import reserve
from appliance.store.quota import MessageQuota

log = logging.getLogger(__name__)

NULL_PATH = "<>"
POSTMASTER = "Postmaster"


class Transaction(Envelope):
    """aiosmtpd's envelope plus what Pillarbox decided at MAIL and RCPT time."""

    def __init__(self) -> None:
        super().__init__()
        self.sender = ""  # the reverse-path without brackets, "" for the null sender
        self.size_hint = 0  # MAIL FROM SIZE=
        self.recipients: list[Recipient] = []
        self.chunks: Chunked | None = None  # a BDAT transfer in progress (RFC 3030)
        self.header: bytes | None = None  # the message's header section, once received
        self.quota: MessageQuota | None = None  # usage read once per user (RCPT, DATA)


def _mail_size(options: list[str]) -> int:
    for opt in options:
        key, _, value = opt.partition("=")
        if key == "SIZE" and value.isdigit():
            return int(value)
    return 0


class Hooks:
    def __init__(self, config: Config, deps: PipelineDeps, kind: ListenerKind) -> None:
        self.config = config
        self.deps = deps
        self.kind = kind

    def _resolver(self, quota: MessageQuota | None = None) -> Resolver:
        cfg = self.config
        return Resolver(
            self.deps.accounts,
            self.deps.store,
            cfg.limits.default_quota,
            srs_for(cfg.data_dir),
            quota,
        )

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Transaction,
        address: str,
        mail_options: list[str],
    ) -> str:
        size = _mail_size(mail_options)
        limit = self.config.limits.max_message_size
        if size > limit:
            # RFC 1870 6.1: declared size above the fixed maximum -> 552
            raise SmtpReply(552, "5.3.4", "Message size exceeds fixed maximum message size")
        sender = "" if address == NULL_PATH else address
        if not sender.isascii() and not envelope.smtp_utf8:
            # RFC 6531 3.4: a UTF-8 address needs the SMTPUTF8 parameter
            raise SmtpReply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
        if self.kind.submission:
            user = session.auth_data
            assert isinstance(user, User)
            if not sender:
                raise SmtpReply(553, "5.7.1", "Null sender not allowed for submission")
            allowed = await asyncio.to_thread(self._resolver().sender_allowed, user.email, sender)
            grants = self.config.smtp.identities_for(user.email)
            if not allowed and not identity.allowed(sender, set(), grants):
                log.info("mail=sender-refused user=%s from=%s", user.email, sender)
                # RFC 6409 6.1: the submission server may refuse senders the user may not use
                raise SmtpReply(553, "5.7.1", "Sender address not owned by you")
        if not self.kind.submission:
            # RFC 1870 6.2 / RFC 5321 4.2.2: 452 when there is no room now; inbound mail
            # is for local mailboxes, so the mail disk's reserve decides (outbound mail
            # from submission is checked per local recipient at RCPT and at the end).
            await self._check_disk(size)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.sender = sender
        envelope.size_hint = size
        envelope.quota = message_quota(
            self.deps.accounts, self.deps.store, self.config.limits.default_quota
        )
        log.info("mail=ok from=<%s> size=%s", sender, size)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Transaction,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        limits = self.config.limits
        if len(envelope.recipients) >= limits.max_recipients:
            # RFC 5321 4.5.3.1.10: too many recipients -> 452, the client sends the rest later
            raise SmtpReply(452, "4.5.3", "Too many recipients")
        if address == NULL_PATH:
            raise SmtpReply(553, "5.1.3", "Null recipient not allowed")
        if not address.isascii() and not envelope.smtp_utf8:
            raise SmtpReply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
        resolver = self._resolver(envelope.quota)
        if address == POSTMASTER:
            # RFC 5321 4.1.1.3: <Postmaster> without a domain must be accepted
            target = await asyncio.to_thread(postmaster, self.deps.accounts, self.config.hostname)
            if target is None:
                raise DeliveryFailed(550, "5.1.1", "No such user here")
            address = target
        try:
            mailbox = parse_mailbox(address, utf8=True)
        except AddressError:
            raise SmtpReply(553, "5.1.3", "Malformed address") from None
        authenticated = bool(session.authenticated) and self.kind.submission
        recipient = await asyncio.to_thread(
            resolver.check, mailbox.local, mailbox.domain, authenticated, envelope.size_hint
        )
        if recipient.local:
            await self._check_disk(envelope.size_hint)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.recipients.append(recipient)
        log.info(
            "rcpt=ok to=<%s> local=%s remote=%s",
            address,
            ",".join(recipient.local) or "-",
            len(recipient.remote),
        )
        return "250 2.1.5 Recipient OK"

    async def _check_disk(self, size: int) -> None:
        cfg = self.config
        try:
            await asyncio.to_thread(
                reserve.guard(cfg.mail_dir).check, cfg.limits.disk_reserve, size
            )
        except reserve.InsufficientStorage:
            raise storage_full() from None  # 452 4.3.1, RFC 3463 3.4: mail system full
        except OSError as exc:
            log.error("smtp=disk-check-failed error=%r", exc)
            raise local_failure() from exc

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, SmtpReply | DeliveryFailed):
            return error.line
        if isinstance(error, OSError):
            log.error("smtp=local-error error=%r", error)
        else:
            log.exception("smtp=unexpected-error")
        return local_failure().line


def session_user(session: Session) -> User | None:
    data: Any = session.auth_data
    return data if isinstance(data, User) and session.authenticated else None
