"""The delivery engine: picks due queue entries, delivers them per destination with
concurrency limits, records per-recipient results, retries with back-off, bounces.

Everything time- or chance-dependent (clock, random, DNS, HTTPS, SMTP) is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Protocol

from appliance.config import Config
from appliance.mime.dsn import RecipientReport, build_dsn, original_header
from appliance.queue.routes import Route, RouteError, Router, pick_smarthost, smarthost_target
from appliance.queue.smtpclient import Outcome, SessionError, SmtpClient
from appliance.queue.spool import Entry, EntryNotFound, Recipient, Spool, SpoolError
from appliance.queue.wire import wire_form

log = logging.getLogger(__name__)

Signer = Callable[[str, bytes], bytes]  # (domain, message) -> DKIM-Signature header fields
# (forwarding domain, this box's Authentication-Results value, message) -> ARC set fields
Sealer = Callable[[str, str, bytes], bytes]


class BounceSink(Protocol):
    async def send_dsn(self, recipient: str, message: bytes, log_id: str) -> None:
        """Deliver a DSN (null sender) to ``recipient``; raise on failure."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter: base, base*factor, ... up to cap."""

    base: float = 300.0
    factor: float = 2.0
    cap: float = 4 * 3600.0
    jitter: float = 0.2  # +-20 %

    def delay(self, attempts: int, rng: random.Random) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, attempts - 1))
        return raw * (1.0 - self.jitter + 2.0 * self.jitter * rng.random())


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def _needs_bounce(entry: Entry) -> bool:
    # Never bounce a bounce: the null reverse-path gets no DSN (RFC 5321 4.5.5).
    return bool(entry.sender) and any(
        r.status == "failed" and not r.bounced for r in entry.recipients
    )


class DeliveryEngine:
    def __init__(
        self,
        spool: Spool,
        *,
        config: Callable[[], Config],
        router: Router,
        client: SmtpClient,
        bounces: BounceSink,
        signer: Signer | None = None,
        sealer: Sealer | None = None,
        is_local_domain: Callable[[str], bool] = lambda domain: False,
        clock: Callable[[], float],
        rng: random.Random,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.spool = spool
        self.config = config
        self.router = router
        self.client = client
        self.bounces = bounces
        self.signer = signer
        self.sealer = sealer
        self.is_local_domain = is_local_domain
        self.clock = clock
        self.rng = rng
        self.retry = retry or RetryPolicy()
        self.inflight: set[str] = set()
        self.cancelled: set[str] = set()  # deleted through ctl while in flight
        self.delivered = 0
        self.deferred = 0
        self.failed = 0
        self._global: asyncio.Semaphore | None = None
        self._per_dest: dict[str, asyncio.Semaphore] = {}
        self._hold: dict[str, float] = {}  # queue id -> not before (failed DSN, disk error)

    # ------------------------------------------------------------ limits

    def _global_sem(self) -> asyncio.Semaphore:
        if self._global is None:
            self._global = asyncio.Semaphore(self.config().queue.concurrency)
        return self._global

    def reset_limits(self) -> None:
        """Pick up new concurrency settings (after a reload) for future sessions."""
        self._global = None
        self._per_dest = {}

    def _dest_sem(self, key: str) -> asyncio.Semaphore:
        sem = self._per_dest.get(key)
        if sem is None:
            sem = asyncio.Semaphore(self.config().queue.concurrency_per_domain)
            self._per_dest[key] = sem
        return sem

    # ------------------------------------------------------------ scanning

    def due(self) -> tuple[list[str], float]:
        """Blocking: ids of entries with work now, and the next due time after that."""
        now = self.clock()
        max_age = self.config().queue.max_age
        ready: list[str] = []
        later = float("inf")
        for entry in self.spool.entries():
            if _needs_bounce(entry):
                when = 0.0
            elif entry.done:
                when = 0.0  # finished but not removed (crash between save and remove)
            else:
                # Expiry is due at created + max_age even when the next retry is later.
                when = min(entry.next_attempt, entry.created + max_age)
            when = max(when, self._hold.get(entry.id, 0.0))
            if when <= now:
                ready.append(entry.id)
            else:
                later = min(later, when)
        return ready, later

    async def run_due(self) -> int:
        """Process every due entry not already in flight; returns how many ran."""
        ready, _ = await asyncio.to_thread(self.due)
        ids = [qid for qid in ready if qid not in self.inflight]
        await asyncio.gather(*(self.process(qid) for qid in ids))
        return len(ids)

    # ------------------------------------------------------------ one entry

    async def process(self, queue_id: str) -> None:
        if queue_id in self.inflight:
            return
        self.inflight.add(queue_id)
        try:
            await self._process(queue_id)
        except EntryNotFound:
            log.info("queue_id=%s event=gone", queue_id)  # deleted through ctl meanwhile
        except FileNotFoundError:
            # Metadata without its message (deleted while in flight): drop the entry.
            log.error("queue_id=%s event=message-missing action=removed", queue_id)
            with contextlib.suppress(SpoolError, OSError):
                await asyncio.to_thread(self.spool.remove, queue_id)
        except (SpoolError, OSError) as exc:
            log.error("queue_id=%s event=spool-error error=%s", queue_id, exc)
            self._hold[queue_id] = self.clock() + self.retry.base  # no busy loop on a bad disk
        except Exception:  # the entry boundary: one bad entry must not stop the queue
            log.exception("queue_id=%s event=internal-error", queue_id)
            self._hold[queue_id] = self.clock() + self.retry.base
        finally:
            self.inflight.discard(queue_id)
            self.cancelled.discard(queue_id)

    async def delete(self, queue_id: str) -> None:
        """Remove an entry (ctl); an in-flight one is not written back afterwards."""
        if queue_id in self.inflight:
            self.cancelled.add(queue_id)
        await asyncio.to_thread(self.spool.remove, queue_id)

    async def _process(self, queue_id: str) -> None:
        entry = await asyncio.to_thread(self.spool.load, queue_id)
        now = self.clock()
        if not entry.dkim_done:
            entry = await self._sign(entry)
        due = [r for r in entry.pending if r.next_attempt <= now]
        if due:
            path = self.spool.message_path(queue_id)
            data = await asyncio.to_thread(lambda: wire_form(path.read_bytes()))
            payload = entry.dkim_headers.encode("ascii") + data
            groups: dict[str, list[Recipient]] = {}
            for r in due:
                groups.setdefault(_domain(r.address), []).append(r)
            results = await asyncio.gather(
                *(self._deliver_domain(entry, d, rs, payload) for d, rs in groups.items())
            )
            updated: dict[str, Recipient] = {}
            for part in results:
                updated.update(part)
            entry = entry.with_recipients([updated.get(r.address, r) for r in entry.recipients])
        if queue_id in self.cancelled:
            return
        entry = self._expire(entry)
        entry = await self._notify(entry)
        if queue_id in self.cancelled:
            return
        if entry.done and not _needs_bounce(entry):
            await asyncio.to_thread(self.spool.remove, queue_id)
            self._hold.pop(queue_id, None)
            log.info("queue_id=%s event=finished", queue_id)
        else:
            await asyncio.to_thread(self.spool.save, entry)

    # ------------------------------------------------------------ DKIM

    async def _sign(self, entry: Entry) -> Entry:
        """Sign by origin: DKIM only what a local user submitted or the box wrote; ARC-seal
        what it forwards; leave anything else (unknown origin) as it is."""
        path = self.spool.message_path(entry.id)
        signer, sealer = self.signer, self.sealer

        def dkim_work() -> str:
            assert signer is not None
            data = wire_form(path.read_bytes())
            header = BytesHeaderParser().parsebytes(data.split(b"\r\n\r\n", 1)[0] + b"\r\n")
            addrs = getaddresses([str(v) for v in header.get_all("From", [])])
            domains = {_domain(a) for _, a in addrs if "@" in a}
            if len(domains) != 1:
                return ""
            domain = domains.pop()
            if entry.origin == "local":
                # The box's own notices come from MAILER-DAEMON@<host name>: signed by the
                # local domain above it (relaxed DMARC alignment, RFC 7489 3.1.1).
                labels = domain.split(".")
                parents = (".".join(labels[i:]) for i in range(len(labels) - 1))
                domain = next((d for d in parents if self.is_local_domain(d)), "")
            elif not self.is_local_domain(domain):
                domain = ""
            return signer(domain, data).decode("ascii") if domain else ""

        def arc_work() -> str:
            assert sealer is not None
            data = wire_form(path.read_bytes())
            return sealer(entry.forward_domain, entry.auth_results, data).decode("ascii")

        headers, what = "", ""
        try:
            if entry.origin in ("submission", "local") and signer is not None:
                what = "dkim-signed"
                headers = await asyncio.to_thread(dkim_work)
            elif (
                entry.origin == "forward"
                and sealer is not None
                and entry.forward_domain
                and entry.auth_results
            ):
                # RFC 8617 5.1: a forwarder adds an ARC set; the author's DKIM-Signature
                # fields stay as they came and no signature of ours claims authorship.
                what = "arc-sealed"
                headers = await asyncio.to_thread(arc_work)
            elif entry.origin not in ("submission", "local"):
                log.info("queue_id=%s event=not-signed origin=%s", entry.id, entry.origin or "-")
        except Exception as exc:  # a bad key must not stop delivery; logged, sent unsigned
            log.error(
                "queue_id=%s event=signing-failed origin=%s error=%s", entry.id, entry.origin, exc
            )
            headers = ""
        if headers:
            log.info("queue_id=%s event=%s", entry.id, what)
        entry = dataclasses.replace(entry, dkim_headers=headers, dkim_done=True)
        await asyncio.to_thread(self.spool.save, entry)
        return entry

    # ------------------------------------------------------------ delivery

    async def _route(self, domain: str, log_id: str) -> Route:
        sh = pick_smarthost(self.config().smarthosts, domain)
        if sh is not None:
            target = await asyncio.to_thread(smarthost_target, sh)
            return Route(f"smarthost:{sh.host}:{sh.port}", (target,))
        return await self.router.mx_route(domain, log_id)

    async def _deliver_domain(
        self, entry: Entry, domain: str, rcpts: Sequence[Recipient], payload: bytes
    ) -> dict[str, Recipient]:
        now = self.clock()
        try:
            route = await self._route(domain, entry.id)
        except RouteError as exc:
            log.info(
                "queue_id=%s domain=%s event=no-route status=%s error=%s",
                entry.id,
                domain,
                exc.status,
                exc.text,
            )
            return {
                r.address: self._result(
                    entry.id, r, now, exc.permanent, exc.text, "", "", exc.status
                )
                for r in rcpts
            }
        last_error = "no host accepted a connection"
        permanent = bool(route.targets)  # every host answered 5xx to greeting/EHLO
        async with self._dest_sem(route.key):
            for target in route.targets:
                async with self._global_sem():
                    try:
                        outcome = await self.client.send(
                            target,
                            entry.wire_sender or entry.sender,  # SRS for forwards
                            [r.address for r in rcpts],
                            payload,
                            entry.id,
                        )
                    except SessionError as exc:
                        last_error = exc.text
                        permanent = permanent and exc.permanent
                        log.info(
                            "queue_id=%s domain=%s host=%s addr=%s event=host-failed error=%s",
                            entry.id,
                            domain,
                            target.name,
                            target.address,
                            exc.text,
                        )
                        continue
                return self._apply(entry, route, rcpts, outcome, now)
        # RFC 5321 3.1 / 4.2.1: a 554 greeting from every host is a permanent refusal.
        status = "" if permanent else "4.4.1"  # "": taken from the reply (e.g. 5.3.2)
        return {
            r.address: self._result(entry.id, r, now, permanent, last_error, "", "", status)
            for r in rcpts
        }

    def _apply(
        self,
        entry: Entry,
        route: Route,
        rcpts: Sequence[Recipient],
        outcome: Outcome,
        now: float,
    ) -> dict[str, Recipient]:
        if (
            route.policy is not None
            and route.policy.mode == "testing"
            and outcome.tls != "verified"
        ):
            log.warning(
                "queue_id=%s host=%s event=mta-sts-testing-violation tls=%s",
                entry.id,
                outcome.host,
                outcome.tls,
            )
        result: dict[str, Recipient] = {}
        for r in rcpts:
            reply = outcome.replies.get(r.address)
            if reply is None:
                result[r.address] = self._result(
                    entry.id, r, now, False, "no reply", outcome.host, outcome.tls, ""
                )
            elif reply.ok:
                self.delivered += 1
                result[r.address] = dataclasses.replace(
                    r,
                    status="delivered",
                    attempts=r.attempts + 1,
                    last_attempt=now,
                    last_error=str(reply),
                    remote_host=outcome.host,
                    tls=outcome.tls,
                )
                log.info(
                    "queue_id=%s rcpt=<%s> event=delivered host=%s tls=%s reply=%s",
                    entry.id,
                    r.address,
                    outcome.host,
                    outcome.tls,
                    reply,
                )
            else:
                # RFC 5321 4.2.1: 5yz is permanent (bounce now), 4yz transient (retry).
                result[r.address] = self._result(
                    entry.id, r, now, reply.permanent, str(reply), outcome.host, outcome.tls, ""
                )
        return result

    def _result(
        self,
        log_id: str,
        r: Recipient,
        now: float,
        permanent: bool,
        error: str,
        host: str,
        tls: str,
        status: str,
    ) -> Recipient:
        attempts = r.attempts + 1
        if permanent:
            self.failed += 1
            log.info(
                "queue_id=%s rcpt=<%s> event=failed host=%s error=%s",
                log_id,
                r.address,
                host,
                error,
            )
        else:
            self.deferred += 1
        return dataclasses.replace(
            r,
            status="failed" if permanent else "pending",
            attempts=attempts,
            last_attempt=now,
            next_attempt=now if permanent else now + self.retry.delay(attempts, self.rng),
            last_error=error,
            remote_host=host or r.remote_host,
            tls=tls or r.tls,  # type: ignore[arg-type]
            dsn_status=status,
        )

    # ------------------------------------------------------------ expiry and DSNs

    def _expire(self, entry: Entry) -> Entry:
        now = self.clock()
        if not entry.pending or now - entry.created < self.config().queue.max_age:
            return entry
        recipients = []
        for r in entry.recipients:
            if r.status == "pending":
                self.failed += 1
                log.info(
                    "queue_id=%s rcpt=<%s> event=expired error=%s",
                    entry.id,
                    r.address,
                    r.last_error,
                )
                r = dataclasses.replace(
                    r,
                    status="failed",
                    last_error=f"gave up: {r.last_error}" if r.last_error else "gave up",
                    dsn_status="4.4.7",  # RFC 3463: delivery time expired
                )
            recipients.append(r)
        return entry.with_recipients(recipients)

    async def _send_dsn(
        self, entry: Entry, reports: list[RecipientReport], retry_until: float | None
    ) -> None:
        header = await asyncio.to_thread(original_header, self.spool.message_path(entry.id))
        message = build_dsn(
            reporting_mta=self.config().hostname,
            sender=entry.sender,
            queue_id=entry.id,
            arrival=entry.created,
            now=self.clock(),
            reports=reports,
            header=header,
            retry_until=retry_until,
        )
        await self.bounces.send_dsn(entry.sender, message, entry.id)

    async def _notify(self, entry: Entry) -> Entry:
        now = self.clock()
        cfg = self.config().queue
        if not entry.sender:
            # RFC 5321 4.5.5 / RFC 3464: no DSN about a DSN (null reverse-path).
            if any(r.status == "failed" and not r.bounced for r in entry.recipients):
                log.info("queue_id=%s event=bounce-dropped reason=null-sender", entry.id)
                entry = entry.with_recipients(
                    [
                        dataclasses.replace(r, bounced=True) if r.status == "failed" else r
                        for r in entry.recipients
                    ]
                )
            return entry
        failed = [r for r in entry.recipients if r.status == "failed" and not r.bounced]
        if failed:
            reports = [
                RecipientReport(
                    r.address, "failed", r.last_error, r.remote_host, r.last_attempt, r.dsn_status
                )
                for r in failed
            ]
            try:
                await self._send_dsn(entry, reports, None)
            except Exception as exc:  # kept for a later pass; the entry stays queued
                log.error("queue_id=%s event=bounce-failed error=%s", entry.id, exc)
                self._hold[entry.id] = now + self.retry.base
            else:
                self._hold.pop(entry.id, None)
                log.info(
                    "queue_id=%s event=bounced rcpts=%d to=<%s>",
                    entry.id,
                    len(failed),
                    entry.sender,
                )
                names = {r.address for r in failed}
                entry = entry.with_recipients(
                    [
                        dataclasses.replace(r, bounced=True) if r.address in names else r
                        for r in entry.recipients
                    ]
                )
        pending = entry.pending
        if (
            pending
            and not entry.delay_warned
            and cfg.delay_warning > 0
            and now - entry.created >= cfg.delay_warning
        ):
            reports = [
                RecipientReport(r.address, "delayed", r.last_error, r.remote_host, r.last_attempt)
                for r in pending
            ]
            try:
                await self._send_dsn(entry, reports, entry.created + cfg.max_age)
            except Exception as exc:
                log.error("queue_id=%s event=delay-warning-failed error=%s", entry.id, exc)
            else:
                log.info("queue_id=%s event=delay-warned to=<%s>", entry.id, entry.sender)
                entry = dataclasses.replace(entry, delay_warned=True)
        return entry

    # ------------------------------------------------------------ control

    async def reschedule(self, queue_id: str | None) -> int:
        """Make pending recipients due now (one entry or all); returns entries touched."""
        now = self.clock()
        if queue_id is None:
            self._hold.clear()
        else:
            self._hold.pop(queue_id, None)

        def work() -> int:
            ids = [queue_id] if queue_id is not None else self.spool.ids()
            touched = 0
            for qid in ids:
                if qid in self.inflight:
                    continue  # its own result is about to be written
                try:
                    entry = self.spool.load(qid)
                except EntryNotFound:
                    if queue_id is not None:
                        raise
                    continue
                if not entry.pending:
                    continue
                self.spool.save(
                    entry.with_recipients(
                        [
                            dataclasses.replace(r, next_attempt=now) if r.status == "pending" else r
                            for r in entry.recipients
                        ]
                    )
                )
                touched += 1
            return touched

        return await asyncio.to_thread(work)
