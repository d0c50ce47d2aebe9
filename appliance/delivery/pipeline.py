"""The inbound pipeline: one spooled message, its accepted recipients -> store and queue.

Order of work for one SMTP transaction:

1. every Filter in the chain in force (``deps.chain``) sees the message once (reject ->
   550/554 unless the filter says otherwise, tempfail -> 451, discard -> accepted and
   dropped, junk -> the Junk folder); their headers are prepended to every local copy;
2. every RecipientFilter (Sieve) chooses folders, flags and redirects per local user;
   a junk verdict files into Junk unless a recipient filter chose another folder;
3. ONE ``store.deliver`` call stores every local copy, all or none, in a worker thread;
4. remote recipients (remote alias targets, redirects, submission to other domains) are
   handed to ``deps.queue.enqueue`` in one call.

The caller answers 250 only after :meth:`Pipeline.run` returns. Local copies are stored
before the queue hand-off: if the hand-off fails the client is told 451 and retries, so
a failure can duplicate a local copy but never lose a remote one.
Quota: copies for users whose quota the message does not fit are left out when at least
one other copy fits; a message that fits nobody's quota is refused with 452 4.2.2. The
check uses the message's one usage read per user (``MessageQuota``, the one RCPT
filled); the store decides last, inside its transaction. The sender of a copy left out
gets a DSN through the box's one notifier (``notices.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from appliance.accounts import Accounts
from appliance.config import Config
from appliance.delivery.errors import (
    DeliveryFailed,
    enhanced_for,
    local_failure,
    mailbox_full,
    public_text,
    storage_full,
)
from appliance.delivery.forwarding import ForwardDecision, decide
from appliance.delivery.notices import Notifier
from appliance.delivery.recipients import Recipient, Resolver, message_quota
from appliance.delivery.srs import SrsError, srs_for
from appliance.filters.base import FilterChain, FilterSet, InboundMessage, RecipientAction, Verdict
from appliance.mime.dsn import RecipientReport, build_dsn, original_header
from appliance.queue.base import OutboundQueue
from appliance.store import reserve
from appliance.store.base import (
    INBOX,
    DeliveryTarget,
    MailStore,
    QuotaExceeded,
    StorageFull,
    StoreError,
)
from appliance.store.quota import MessageQuota

log = logging.getLogger(__name__)

JUNK = "Junk"


@dataclass(frozen=True)
class Outcome:
    stored: int = 0  # local copies written
    queue_id: str = ""  # outbound queue id, "" when nothing was queued
    discarded: bool = False


def header_lines(headers: Sequence[tuple[str, str]]) -> bytes:
    """Render (name, value) pairs as header lines; continuation lines keep folding."""
    out = bytearray()
    for name, value in headers:
        lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        folded = "\r\n".join(
            [lines[0]] + [ln if ln[:1] in (" ", "\t") else "\t" + ln for ln in lines[1:] if ln]
        )
        out += f"{name}: {folded}\r\n".encode()
    return bytes(out)


def trace_prefix(sender: str, user: str) -> bytes:
    # RFC 5321 4.4: the final delivery adds Return-Path with the reverse-path.
    return f"Return-Path: <{sender}>\r\nDelivered-To: {user}\r\n".encode()


@dataclass(frozen=True)
class PipelineDeps:
    """What the pipeline uses besides the config."""

    accounts: Accounts
    store: MailStore
    queue: OutboundQueue
    chain: FilterChain
    notices: Notifier  # the box's one notifier (daemon.create_services)


class Pipeline:
    def __init__(self, deps: PipelineDeps, config: Config) -> None:
        self.deps = deps
        self.config = config
        self.notices = deps.notices

    @property
    def resolver(self) -> Resolver:
        deps = self.deps
        return Resolver(deps.accounts, deps.store, self.config.limits.default_quota)

    async def run(
        self,
        msg: InboundMessage,
        recipients: Sequence[Recipient],
        quota: MessageQuota | None = None,
    ) -> Outcome:
        """Deliver ``msg``; ``quota`` is the transaction's (usage read at RCPT), else
        one is made here."""
        async with self.deps.chain.use() as chain:  # closed on reload only after this run
            return await self._run(msg, recipients, chain, quota)

    async def _run(
        self,
        msg: InboundMessage,
        recipients: Sequence[Recipient],
        chain: FilterSet,
        quota: MessageQuota | None,
    ) -> Outcome:
        verdict = await self._filter(msg, chain)
        if verdict.action == "discard":
            log.info("delivery=discarded from=%s", msg.mail_from)
            return Outcome(discarded=True)
        extra = header_lines(verdict.headers)
        users = list(dict.fromkeys(u for r in recipients for u in r.local))
        remote = list(dict.fromkeys(a for r in recipients for a in r.remote))
        targets: list[DeliveryTarget] = []
        refused: list[str] = []
        for user in users:
            action = await self._route(user, msg, verdict, chain)
            if action.reject_reason:
                refused.append(action.reject_reason)
                log.info("delivery=refused-by-recipient-filter user=%s", user)
                continue
            local_redirects, remote_redirects = await asyncio.to_thread(
                self._split_redirects, action.redirect
            )
            remote.extend(a for a in remote_redirects if a not in remote)
            users.extend(u for u in local_redirects if u not in users)
            prefix = trace_prefix(msg.mail_from, user) + extra
            for mailbox in action.mailboxes:
                targets.append(DeliveryTarget(user, mailbox, action.flags, prefix))
        forward: ForwardDecision | None = None
        if remote and not msg.authenticated_user:
            forward = await asyncio.to_thread(
                decide, verdict, self.config.hostname, self.deps.accounts.is_local_domain
            )
            if not forward.allowed:
                remote = self._forward_refused(forward, remote, bool(targets))
        if refused and not targets and not remote:
            raise DeliveryFailed(550, "5.7.1", public_text(refused[0], "Message refused"))
        stored = 0
        if targets:
            try:
                appended, skipped = await asyncio.to_thread(
                    self._store, targets, msg.path, msg.size, quota
                )
            except QuotaExceeded as exc:
                log.info("delivery=over-quota error=%s", exc)
                raise mailbox_full() from exc
            except StorageFull as exc:
                log.error("delivery=storage-full error=%s", exc)
                raise storage_full() from exc
            except StoreError as exc:
                log.error("delivery=store-failed error=%r temporary=%s", exc, exc.temporary)
                raise local_failure() from exc
            except OSError as exc:
                log.error("delivery=store-failed error=%r", exc)
                raise local_failure() from exc
            stored = len(appended)
            if skipped:
                await asyncio.to_thread(self._bounce_over_quota, msg, skipped)
        queue_id = ""
        if remote:
            try:
                queue_id = await asyncio.to_thread(self._enqueue, msg, recipients, remote, forward)
            except OSError as exc:
                log.error("delivery=enqueue-failed stored=%s error=%r", stored, exc)
                raise local_failure() from exc
        log.info(
            "delivery=ok from=%s local=%s copies=%s remote=%s queue_id=%s",
            msg.mail_from,
            ",".join(users),
            stored,
            len(remote),
            queue_id or "-",
        )
        return Outcome(stored=stored, queue_id=queue_id)

    # ------------------------------------------------------------ forwarding

    def _forward_refused(
        self, decision: ForwardDecision, remote: Sequence[str], has_local: bool
    ) -> list[str]:
        """Drop the remote copies; with nothing else to deliver, refuse the message."""
        log.warning(
            "delivery=forward-dropped reason=%s rcpts=%s", decision.reason, ",".join(remote)
        )
        if has_local:
            return []  # the local copies are stored as usual
        if decision.temporary:
            # DMARC could not be evaluated (DNS): the sender retries, it does not pass.
            raise DeliveryFailed(451, "4.7.0", "Cannot verify the sender now, try again later")
        raise DeliveryFailed(550, "5.7.1", "Message not accepted for forwarding")

    def _enqueue(
        self,
        msg: InboundMessage,
        recipients: Sequence[Recipient],
        remote: Sequence[str],
        forward: ForwardDecision | None,
    ) -> str:
        """Queue the remote copies (worker thread): a submission is signed by the queue,
        a forward keeps its bytes and is ARC-sealed with an SRS0 envelope sender."""
        queue = self.deps.queue
        if forward is None:
            return queue.enqueue(
                msg.mail_from, remote, msg.path, origin="submission", queue_id=msg.id
            )
        accounts = self.deps.accounts
        domains = [r.address.rpartition("@")[2].lower() for r in recipients]
        domain = next((d for d in domains if accounts.is_local_domain(d)), "")
        domain = domain or next(iter(accounts.list_domains()), self.config.hostname)
        wire_sender = ""
        try:
            wire_sender = srs_for(self.config.data_dir).forward(msg.mail_from, domain)
        except SrsError as exc:  # e.g. a quoted local part: sent with the original sender
            log.warning("delivery=srs-skipped from=%s error=%s", msg.mail_from, exc)
        log.info(
            "delivery=forward from=%s wire_from=%s domain=%s check=%s",
            msg.mail_from,
            wire_sender or msg.mail_from,
            domain,
            forward.reason,
        )
        return queue.enqueue(
            msg.mail_from,
            remote,
            msg.path,
            origin="forward",
            wire_sender=wire_sender,
            auth_results=forward.auth_results,
            forward_domain=domain,
            queue_id=msg.id,
        )

    # ------------------------------------------------------------ filters

    async def _filter(self, msg: InboundMessage, chain: FilterSet) -> Verdict:
        headers: list[tuple[str, str]] = []
        junk = False
        for flt in chain.filters:
            try:
                verdict = await flt.check(msg)
            except Exception as exc:
                log.exception("filter=failed name=%s", getattr(flt, "name", "?"))
                raise local_failure() from exc
            headers.extend(verdict.headers)
            if verdict.action == "reject":
                log.info("filter=reject name=%s reason=%s", flt.name, verdict.reason)
                code = verdict.smtp_code if 500 <= verdict.smtp_code < 600 else 550
                raise DeliveryFailed(
                    code,
                    enhanced_for(code, verdict.enhanced, "5.7.1"),
                    public_text(verdict.reason, "Message rejected"),
                )
            if verdict.action == "tempfail":
                log.info("filter=tempfail name=%s reason=%s", flt.name, verdict.reason)
                code = verdict.smtp_code if 400 <= verdict.smtp_code < 500 else 451
                raise DeliveryFailed(
                    code,
                    enhanced_for(code, verdict.enhanced, "4.7.1"),
                    public_text(verdict.reason, "Try again later"),
                )
            if verdict.action == "discard":
                return Verdict("discard", tuple(headers))
            junk = junk or verdict.action == "junk"
        return Verdict("junk" if junk else "accept", tuple(headers))

    async def _route(
        self, user: str, msg: InboundMessage, verdict: Verdict, chain: FilterSet
    ) -> RecipientAction:
        action = RecipientAction()
        for rf in chain.recipient_filters:
            try:
                result = await rf.route(user, msg, verdict)
            except Exception as exc:
                log.exception("recipient-filter=failed name=%s user=%s", rf.name, user)
                raise local_failure() from exc
            action = RecipientAction(
                mailboxes=result.mailboxes,
                flags=action.flags | result.flags,
                redirect=action.redirect + result.redirect,
                reject_reason=action.reject_reason or result.reject_reason,
                extra={**action.extra, **result.extra},
            )
        if verdict.action == "junk" and action.mailboxes == (INBOX,):
            action = replace(action, mailboxes=(JUNK,))
        return action

    def _split_redirects(self, addresses: Sequence[str]) -> tuple[list[str], list[str]]:
        local: list[str] = []
        remote: list[str] = []
        for address in addresses:
            resolution = self.deps.accounts.resolve(address)
            if resolution.exists:
                local.extend(resolution.local)
                remote.extend(resolution.remote)
            elif not self.deps.accounts.is_local_domain(address.rpartition("@")[2]):
                remote.append(address)
        return local, remote

    # ------------------------------------------------------------ store (worker thread)

    def _store(
        self,
        targets: Sequence[DeliveryTarget],
        path: Path,
        size: int,
        quota: MessageQuota | None,
    ) -> tuple[list[object], list[str]]:
        """Store every copy that fits its user's quota; returns (stored, users left out).

        Users whose copies do not fit the message's usage figure (read once per user,
        at RCPT or here) are left out first; the store then decides inside its
        transaction, so racing deliveries cannot both take the last bytes: a user it
        refuses is left out too and the rest is stored. Bounded: each round leaves out
        one more user."""
        store: MailStore = self.deps.store
        if quota is None:
            quota = message_quota(self.deps.accounts, store, self.config.limits.default_quota)
        quotas: dict[str, int] = {}
        existing: dict[str, set[str]] = {}
        final: list[DeliveryTarget] = []
        for t in targets:
            if t.user not in quotas:
                store.ensure_user(t.user)
                quotas[t.user] = quota.limit(t.user)
            mailbox = t.mailbox
            if mailbox.upper() != INBOX:
                if t.user not in existing:
                    existing[t.user] = {m.name for m in store.list_mailboxes(t.user)}
                if mailbox not in existing[t.user]:
                    log.info("delivery=no-such-folder user=%s folder=%s", t.user, mailbox)
                    mailbox = INBOX
            final.append(replace(t, mailbox=mailbox, quota_bytes=quotas[t.user]))
        # RFC 5321 4.2.2 452: insufficient system storage: the disk keeps its reserve
        # (appliance/store/reserve.py), so reads and deletes still work when mail pours in.
        reserve.guard(self.config.mail_dir).check(
            self.config.limits.disk_reserve, size * len(final)
        )
        # The bytes each user's copies add, as the store counts them (file + trace prefix).
        source = path.stat().st_size
        incoming: Counter[str] = Counter()
        for t in final:
            incoming[t.user] += source + len(t.header_prefix)
        skipped: list[str] = []
        for user, nbytes in incoming.items():
            if not quota.fits(user, nbytes):
                log.warning("delivery=copy-skipped-over-quota user=%s size=%s", user, size)
                skipped.append(user)
        while True:
            fitting = list(dict.fromkeys(t for t in final if t.user not in skipped))
            if not fitting:
                raise QuotaExceeded("the message fits no recipient's quota")
            try:
                return list(store.deliver(fitting, path)), skipped
            except QuotaExceeded as exc:
                if exc.user not in quotas or exc.user in skipped:
                    raise
                log.warning("delivery=copy-skipped-over-quota user=%s size=%s", exc.user, size)
                skipped.append(exc.user)

    def _bounce_over_quota(self, msg: InboundMessage, users: Sequence[str]) -> None:
        """The message was accepted for others: tell the sender which mailboxes were full
        (RFC 3464 DSN, status 5.2.2) instead of dropping those copies silently. The
        notifier's rules apply: none to the null sender, stored for a local sender."""
        cfg, now = self.config, time.time()
        reports = [
            RecipientReport(u, "failed", "552 5.2.2 Mailbox full", status="5.2.2", last_attempt=now)
            for u in users
        ]
        dsn = build_dsn(
            reporting_mta=cfg.hostname,
            sender=msg.mail_from,
            queue_id=msg.path.stem,
            arrival=now,
            now=now,
            reports=reports,
            header=original_header(msg.path),
        )
        try:
            if self.notices.dsn(msg.mail_from, dsn, msg.path.stem):
                log.info(
                    "delivery=over-quota-reported to=%s users=%s", msg.mail_from, ",".join(users)
                )
        except (OSError, StoreError) as exc:
            log.error("delivery=over-quota-report-failed to=%s error=%r", msg.mail_from, exc)
