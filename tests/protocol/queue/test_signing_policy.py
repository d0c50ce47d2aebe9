"""What the box signs and forwards (issue 16 item 2), end to end on loopback sockets:
the real SMTP service (port 25 and submission) and the real queue service in one event
loop, mailauth on a fake DNS, and an aiosmtpd sink as the smarthost (the next hop).

- anonymous mail forwarded by an alias: no DKIM signature of ours, an ARC set that
  verifies, an SRS0 envelope sender at our domain, the author's DKIM signature intact;
- a forged ``From: ceo@our-domain``, junk, DMARC fail and DMARC temperror: not forwarded;
- authenticated submission and the box's own DSNs: DKIM-signed;
- a bounce to the SRS0 address reaches the original sender; a forged one gets 550.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dkim as dkimpy
import pytest

from appliance import config as config_mod
from appliance.accounts import Accounts, Authenticator, LoginThrottle
from appliance.delivery.notices import Notifier
from appliance.delivery.pipeline import PipelineDeps
from appliance.delivery.srs import srs_for
from appliance.dns import DnsCache, DnsResolver
from appliance.events import ChangeBus
from appliance.filters.base import FilterChain
from appliance.filters.mailauth import MailAuthFilter, MailAuthSettings
from appliance.filters.sieve_filter import SieveFilter
from appliance.filters.sieve_store import store_for
from appliance.filters.sieve_vacation import VacationTracker
from appliance.queue import dkim
from appliance.queue.service import QueueDeps, QueueService
from appliance.queue.spool import Spool, scratch_dir
from appliance.store.base import INBOX
from appliance.store.maildir import MaildirStore
from appliance.tls import TlsManager
from tests.dnsfake import FakeResolver
from tests.harness import write_config
from tests.unit.mailauth.dkimkeys import make_dkim_key

from .conftest import SinkHandler

T = TypeVar("T")
PASSWORD = "correct horse battery staple 42"
DOMAIN = "pillarbox.test"
SENDER_KEY = make_dkim_key(1024)


@dataclass(frozen=True)
class Parts:
    """What the test reads of the box: its config and its TLS certificate."""

    config: config_mod.Config
    tls: TlsManager


@dataclass
class Box:
    ctx: Parts
    loop: asyncio.AbstractEventLoop
    dns: FakeResolver
    sink: SinkHandler
    store: MaildirStore
    ports: dict[str, int]

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=20)

    def submit(self) -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.ports["submission"], timeout=20)
        tls = ssl.create_default_context(cafile=str(self.ctx.tls.cert))
        s.starttls(context=tls)
        s.login(f"alice@{DOMAIN}", PASSWORD)
        return s

    def wait_sent(self, count: int, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while len(self.sink.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.sink.messages)} of {count} sent"
            time.sleep(0.05)

    def quiet(self, seconds: float = 1.5) -> None:
        """Let the queue run: nothing may leave meanwhile (asserted by the caller)."""
        time.sleep(seconds)

    def box_dns(self, name: bytes, timeout: float = 5) -> bytes | None:
        records = {n + ".": v.encode() for n, v in dkim.dns_records(self.ctx.config, DOMAIN)}
        records["s1._domainkey.sender.test."] = SENDER_KEY.dns_txt.encode()
        return records.get(name.decode())

    def messages(self, user: str, mailbox: str = INBOX) -> list[bytes]:
        try:
            snap = self.store.snapshot(user, mailbox)
        except Exception:
            return []
        out = []
        for info in snap.messages:
            with self.store.open_message(user, mailbox, info.uid) as fh:
                out.append(fh.read())
        return out


@pytest.fixture
def box(tmp_path: Path, sinks: Callable[..., Any]) -> Iterator[Box]:
    sink, ctl = sinks()
    listeners: dict[str, list[str]] = {name: [] for name in config_mod.DEV_PORTS}
    listeners["smtp"] = listeners["submission"] = ["127.0.0.1:0"]
    cfg = config_mod.load(
        write_config(
            tmp_path / "box",
            listeners=listeners,
            smarthost={"host": "127.0.0.1", "port": ctl.port, "tls": "none"},
        )
    )
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain(DOMAIN)
    accounts.add_user(f"alice@{DOMAIN}", PASSWORD)
    accounts.add_user(f"bob@{DOMAIN}", PASSWORD)
    accounts.add_alias(f"fwd@{DOMAIN}", "carol@remote.example")
    bus = ChangeBus()
    store = MaildirStore(cfg.mail_dir, notify=bus.publish, summarizer=lambda p: b"")
    dns = FakeResolver()
    dns.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns.add("_dmarc.sender.test", "TXT", "v=DMARC1; p=quarantine")
    dns.add("s1._domainkey.sender.test", "TXT", SENDER_KEY.dns_txt)
    spool = Spool(cfg.queue_dir)
    # the box's one notifier (appliance.daemon.create_services)
    notices = Notifier(
        accounts, store, spool, hostname=lambda: cfg.hostname, scratch=scratch_dir(cfg.queue_dir)
    )
    sieve = SieveFilter(
        store_for(cfg.data_dir),
        cfg.hostname,
        replies=notices,
        tracker=VacationTracker(cfg.data_dir / "sieve" / "vacation.sqlite"),
    )
    tls = TlsManager(cfg.tls.cert, cfg.tls.key, cfg.hostname, True)
    chain = FilterChain(
        [MailAuthFilter(dns, MailAuthSettings(hostname=cfg.hostname, timeout=5))], [sieve]
    )
    ctx = Parts(cfg, tls)
    from appliance.smtp.service import SmtpService
    from appliance.smtp.state import SmtpDeps

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    smtp = SmtpService(
        cfg,
        SmtpDeps(
            auth=Authenticator(accounts, LoginThrottle(free_failures=3, base=30.0)),
            tls=tls,
            delivery=PipelineDeps(accounts, store, spool, chain, notices),
        ),
    )
    resolver = DnsResolver(cache=DnsCache())  # the daemon's default; mail goes to the smarthost
    queue = QueueService(cfg, QueueDeps(accounts, notices, spool, resolver), poll=0.5, timeout=10)
    b = Box(ctx, loop, dns, sink, store, {})
    b.call(queue.start())
    b.call(smtp.start())
    for name, addrs in smtp.status()["listeners"].items():
        b.ports[name] = int(addrs[0].rsplit(":", 1)[1])
    try:
        yield b
    finally:
        try:
            b.call(smtp.stop())
            b.call(queue.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            accounts.close()


def signed_by_sender(subject: str = "forward me") -> bytes:
    body = (
        f"From: Carol <carol@sender.test>\r\nTo: fwd@{DOMAIN}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@sender.test>\r\n\r\nHello there\r\n"
    ).encode()
    signature: bytes = dkimpy.sign(body, b"s1", b"sender.test", SENDER_KEY.private_pem)
    return signature + body


def dkim_domains(message: bytes) -> list[str]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    out = []
    for field in head.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n"):
        if field.lower().startswith("dkim-signature:"):
            tags = dict(
                t.strip().split("=", 1) for t in field.split(":", 1)[1].split(";") if "=" in t
            )
            out.append(tags["d"])
    return out


def test_forward_is_arc_sealed_srs_rewritten_and_keeps_the_authors_signature(box: Box) -> None:
    original = signed_by_sender()
    with box.smtp() as s:
        s.sendmail("carol@sender.test", [f"fwd@{DOMAIN}"], original)
    box.wait_sent(1)
    [got] = box.sink.messages
    assert got.rcpt_tos == ["carol@remote.example"]
    # SRS0 at our domain, reversible to the original sender (RFC 7208 SPF at the next hop).
    local, _, domain = got.mail_from.rpartition("@")
    assert local.startswith("SRS0=") and domain == DOMAIN
    assert srs_for(box.ctx.config.data_dir).reverse(local) == "carol@sender.test"
    # Original header and body byte for byte, below our Received and the ARC set.
    assert got.content.endswith(original)
    assert dkim_domains(got.content) == ["sender.test"]  # nothing signed d=pillarbox.test
    head = got.content.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=pillarbox.test; s=pb1;")
    assert b"ARC-Message-Signature: i=1;" in head
    assert b"ARC-Authentication-Results: i=1; mail.pillarbox.test;" in head
    assert b"dmarc=pass" in head and b"dkim=pass header.d=sender.test" in head
    cv, _, reason = dkimpy.arc_verify(got.content, dnsfunc=box.box_dns)
    assert cv == dkimpy.CV_Pass, reason
    assert dkimpy.verify(got.content, dnsfunc=box.box_dns)  # the author's signature, at hop 2


def test_forged_local_from_is_neither_signed_nor_forwarded(box: Box) -> None:
    forged = (
        f"From: CEO <ceo@{DOMAIN}>\r\nTo: fwd@{DOMAIN}\r\nSubject: wire the money\r\n\r\nnow\r\n"
    ).encode()
    with box.smtp() as s:
        with pytest.raises(smtplib.SMTPDataError) as info:
            s.sendmail("anon@attacker.test", [f"fwd@{DOMAIN}"], forged)
        assert info.value.smtp_code == 550
        # With a local recipient too: bob's copy is stored, the forward is dropped.
        assert s.sendmail("anon@attacker.test", [f"fwd@{DOMAIN}", f"bob@{DOMAIN}"], forged) == {}
    assert len(box.messages(f"bob@{DOMAIN}")) == 1
    box.quiet()
    assert box.sink.messages == []


def test_dmarc_quarantine_failure_is_not_forwarded(box: Box) -> None:
    # From sender.test (p=quarantine) with no signature, sent from a foreign envelope.
    spoof = (
        f"From: Carol <carol@sender.test>\r\nTo: fwd@{DOMAIN}\r\nSubject: spoof\r\n\r\nx\r\n"
    ).encode()
    with box.smtp() as s:
        assert s.sendmail("x@elsewhere.test", [f"fwd@{DOMAIN}", f"bob@{DOMAIN}"], spoof) == {}
        with pytest.raises(smtplib.SMTPDataError) as info:
            s.sendmail("x@elsewhere.test", [f"fwd@{DOMAIN}"], spoof)
        assert info.value.smtp_code == 550
    assert len(box.messages(f"bob@{DOMAIN}", "Junk")) == 1  # the local copy, as junk
    box.quiet()
    assert box.sink.messages == []


def test_dmarc_temperror_is_not_forwarded(box: Box) -> None:
    box.dns.failing.add("_dmarc.sender.test")
    with box.smtp() as s:
        with pytest.raises(smtplib.SMTPDataError) as info:
            s.sendmail("carol@sender.test", [f"fwd@{DOMAIN}"], signed_by_sender("dns down"))
        assert info.value.smtp_code == 451  # the sender retries; it never passes unchecked
    box.quiet()
    assert box.sink.messages == []


def test_authenticated_submission_is_dkim_signed(box: Box) -> None:
    with box.submit() as s:
        s.sendmail(
            f"alice@{DOMAIN}",
            ["dave@remote.example", f"fwd@{DOMAIN}"],
            f"From: Alice <alice@{DOMAIN}>\r\nTo: dave@remote.example\r\n"
            f"Subject: mine\r\nMessage-ID: <s1@{DOMAIN}>\r\n\r\nHello\r\n".encode(),
        )
    box.wait_sent(1)
    [got] = box.sink.messages
    assert got.mail_from == f"alice@{DOMAIN}"  # no SRS for our own user's mail
    assert sorted(got.rcpt_tos) == ["carol@remote.example", "dave@remote.example"]
    assert dkim_domains(got.content) == [DOMAIN, DOMAIN]  # RSA and Ed25519
    assert b"ARC-Seal" not in got.content
    d = dkimpy.DKIM(got.content)
    assert d.verify(idx=0, dnsfunc=box.box_dns)


def test_dsn_about_a_refused_forward_is_dkim_signed(box: Box) -> None:
    box.sink.rcpt_replies["carol@remote.example"] = "550 5.1.1 no such user"
    with box.smtp() as s:
        s.sendmail("carol@sender.test", [f"fwd@{DOMAIN}"], signed_by_sender("bounce me"))
    # The next hop refused the forward: our DSN goes to the original sender, DKIM-signed.
    box.wait_sent(1)
    [dsn] = box.sink.messages
    assert dsn.mail_from == "<>" and dsn.rcpt_tos == ["carol@sender.test"]
    assert b"From: Mail Delivery System <MAILER-DAEMON@mail.pillarbox.test>" in dsn.content
    assert dkim_domains(dsn.content) == [DOMAIN, DOMAIN]
    assert dkimpy.DKIM(dsn.content).verify(idx=0, dnsfunc=box.box_dns)


def test_bounce_to_srs_address_reaches_original_sender_and_forgery_is_refused(
    box: Box,
) -> None:
    with box.smtp() as s:
        s.sendmail("carol@sender.test", [f"fwd@{DOMAIN}"], signed_by_sender("round trip"))
    box.wait_sent(1)
    srs_address = box.sink.messages[0].mail_from
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@remote.example>\r\n"
        f"To: {srs_address}\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n"
        "carol@remote.example: mailbox full\r\n"
    ).encode()
    with box.smtp() as s:
        assert s.sendmail("", [srs_address], bounce) == {}
        box.wait_sent(2)
        forged = f"SRS0=aaaaaaaa=AB=sender.test=carol@{DOMAIN}"
        s.mail("")
        code, text = s.rcpt(forged)
        assert code == 550, text
        # A genuine hash on another sender (the attacker edits the address): refused too.
        tampered = srs_address.replace("=carol@", "=mallory@")
        assert s.rcpt(tampered)[0] == 550
        s.rset()
    back = box.sink.messages[1]
    assert back.mail_from == "<>" and back.rcpt_tos == ["carol@sender.test"]  # null stays null
    assert back.content.endswith(bounce)


def test_sieve_redirect_is_a_forward_and_vacation_reply_is_signed(box: Box) -> None:
    store_for(box.ctx.config.data_dir).save_script(
        f"bob@{DOMAIN}",
        'require ["vacation"];\r\nredirect "carol@remote.example";\r\nkeep;\r\n'
        'vacation :days 1 "I am away";\r\n',
    )
    message = (
        f"From: Carol <carol@sender.test>\r\nTo: bob@{DOMAIN}\r\nSubject: for bob\r\n"
        "Message-ID: <for.bob@sender.test>\r\n\r\nHello Bob\r\n"
    ).encode()
    signed: bytes = dkimpy.sign(message, b"s1", b"sender.test", SENDER_KEY.private_pem)
    with box.smtp() as s:
        assert s.sendmail("carol@sender.test", [f"bob@{DOMAIN}"], signed + message) == {}
    box.wait_sent(2)
    by_rcpt = {m.rcpt_tos[0]: m for m in box.sink.messages}
    redirected = by_rcpt["carol@remote.example"]
    assert redirected.mail_from.startswith("SRS0=") and redirected.mail_from.endswith(DOMAIN)
    assert redirected.content.endswith(signed + message)
    assert dkim_domains(redirected.content) == ["sender.test"]
    assert dkimpy.arc_verify(redirected.content, dnsfunc=box.box_dns)[0] == dkimpy.CV_Pass
    reply = by_rcpt["carol@sender.test"]  # the vacation reply, written by the box
    assert reply.mail_from == "<>"
    assert dkim_domains(reply.content) == [DOMAIN, DOMAIN]
    assert dkimpy.DKIM(reply.content).verify(idx=0, dnsfunc=box.box_dns)
    assert len(box.messages(f"bob@{DOMAIN}")) == 1  # keep
