"""Outbound delivery on real loopback sockets: MX order, STARTTLS recording, retries,
bounces (RFC 3464), expiry, null sender, null MX."""

from __future__ import annotations

import asyncio
import email
from email.message import Message

import pytest

from appliance.queue.spool import Entry


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def _only(world: object) -> Entry:
    spool = world.spool  # type: ignore[attr-defined]
    entries = list(spool.entries())
    assert len(entries) == 1
    return entries[0]


def _dsn_parts(message: bytes) -> tuple[Message, list[Message]]:
    msg = email.message_from_bytes(message)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert isinstance(parts, list)
    return msg, parts


def test_delivers_via_mx_with_verified_starttls(world, sinks, pki) -> None:
    handler, ctl = sinks(tls_context=pki.server_context("mx1.example.net"))
    handler.rcpt_replies["later@example.net"] = "451 4.7.1 greylisted"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    qid = world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net", "later@example.net"], world.message()
    )
    engine = world.engine()
    assert _run(engine.run_due()) == 1
    assert len(handler.messages) == 1
    got = handler.messages[0]
    assert got.mail_from == "alice@pillarbox.test"
    assert got.rcpt_tos == ["bob@example.net"]
    assert got.tls
    assert b"\r\n.leading dot line\r\n" in got.content
    entry = world.spool.load(qid)
    bob, later = entry.recipients
    assert (bob.status, bob.tls, bob.remote_host) == ("delivered", "verified", "mx1.example.net")
    assert later.status == "pending" and later.attempts == 1
    assert later.last_error == "451 4.7.1 greylisted"
    assert later.tls == "verified"


def test_unverified_certificate_recorded(world, sinks, pki) -> None:
    # Certificate for another name: opportunistic TLS still used, recorded as unverified.
    handler, ctl = sinks(tls_context=pki.server_context("other.example.org"))
    handler.rcpt_replies["later@example.net"] = "451 4.3.0 later"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    world.spool.enqueue("a@pillarbox.test", ["b@example.net", "later@example.net"], world.message())
    _run(world.engine().run_due())
    assert handler.messages and handler.messages[0].tls
    b = _only(world).recipients[0]
    assert (b.status, b.tls) == ("delivered", "unverified")


def test_plaintext_when_no_starttls_recorded_none(world, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["later@example.net"] = "451 4.3.0 later"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    world.spool.enqueue("a@pillarbox.test", ["b@example.net", "later@example.net"], world.message())
    _run(world.engine().run_due())
    assert handler.messages and not handler.messages[0].tls
    assert _only(world).recipients[0].tls == "none"


def test_mx_preference_order_and_fallback(world, sinks) -> None:
    from tests.harness import free_port

    handler, ctl = sinks()
    dead = free_port()  # nothing listens: connection refused
    world.add_mx("example.net", "mx0.example.net", dead, preference=5)
    world.add_mx("example.net", "mx1.example.net", ctl.port, preference=10)
    world.spool.enqueue("a@pillarbox.test", ["b@example.net"], world.message())
    _run(world.engine().run_due())
    assert len(handler.messages) == 1
    assert world.spool.ids() == []  # fully delivered entries leave the queue


def test_implicit_mx_when_no_mx_record(world, sinks) -> None:
    handler, ctl = sinks()
    world.resolver.add("example.net", "A", "127.0.0.1")
    world.ports["example.net"] = ctl.port
    world.spool.enqueue("a@pillarbox.test", ["b@example.net"], world.message())
    _run(world.engine().run_due())
    assert len(handler.messages) == 1


def test_retry_after_4xx_with_backoff(world, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["b@example.net"] = "451 4.7.1 try again later"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    qid = world.spool.enqueue("a@pillarbox.test", ["b@example.net"], world.message())
    engine = world.engine()
    start = world.clock.now
    _run(engine.run_due())
    r = world.spool.load(qid).recipients[0]
    assert r.status == "pending" and r.attempts == 1
    # First back-off: 300 s +- 20 % jitter.
    assert 240 <= r.next_attempt - start <= 360
    assert _run(engine.run_due()) == 0  # not due yet: nothing attempted
    assert handler.connections == 1
    handler.rcpt_replies.clear()
    world.clock.now = r.next_attempt
    assert _run(engine.run_due()) == 1
    assert len(handler.messages) == 1
    assert world.spool.ids() == []
    assert world.bounces.sent == []


def test_backoff_grows_and_is_capped(world) -> None:
    import random

    from appliance.queue.engine import RetryPolicy

    policy = RetryPolicy(base=300, factor=2, cap=3600, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng) for n in (1, 2, 3, 4, 5, 9)] == [300, 600, 1200, 2400, 3600, 3600]
    jittered = RetryPolicy(jitter=0.2)
    values = {round(jittered.delay(1, rng)) for _ in range(50)}
    assert len(values) > 10 and all(240 <= v <= 360 for v in values)


def test_5xx_bounces_immediately_with_rfc3464_report(world, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["nobody@example.net"] = "550 5.1.1 no such user"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    world.spool.enqueue(
        "alice@pillarbox.test", ["nobody@example.net", "bob@example.net"], world.message()
    )
    _run(world.engine().run_due())
    assert handler.messages[0].rcpt_tos == ["bob@example.net"]
    assert world.spool.ids() == []
    [(to, dsn)] = world.bounces.sent
    assert to == "alice@pillarbox.test"
    msg, parts = _dsn_parts(dsn)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert "MAILER-DAEMON@mail.pillarbox.test" in msg["From"]
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    text = dsn.decode()
    assert "Reporting-MTA: dns; mail.pillarbox.test" in text
    assert "Final-Recipient: rfc822; nobody@example.net" in text
    assert "Action: failed" in text
    assert "Status: 5.1.1" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1 no such user" in text
    assert "Remote-MTA: dns; mx1.example.net" in text
    assert "bob@example.net" not in text.split("message/delivery-status")[1].split("--=_pb")[0]
    assert "Subject: test message" in text  # original header attached


def test_data_5xx_bounces_all_accepted(world, sinks) -> None:
    handler, ctl = sinks()
    handler.data_reply = "554 5.6.0 content rejected"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    world.spool.enqueue("alice@pillarbox.test", ["b@example.net", "c@example.net"], world.message())
    _run(world.engine().run_due())
    [(_, dsn)] = world.bounces.sent
    assert dsn.count(b"Action: failed") == 2
    assert world.spool.ids() == []


def test_expiry_bounces_after_max_age_with_one_delay_warning(world, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["b@example.net"] = "452 4.2.2 mailbox full"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    cfg = world.config()
    world.configure(queue=type(cfg.queue)(max_age=3 * 3600, delay_warning=3600))
    qid = world.spool.enqueue("alice@pillarbox.test", ["b@example.net"], world.message())
    engine = world.engine()
    created = world.clock.now
    attempts = 0
    for _ in range(50):  # bounded: the clock jumps to each next attempt
        if not world.spool.ids():
            break
        attempts += _run(engine.run_due())
        if world.spool.ids():
            world.clock.now = max(world.spool.load(qid).next_attempt, world.clock.now + 1)
    assert world.spool.ids() == []
    assert attempts >= 3
    kinds = [dsn for _, dsn in world.bounces.sent]
    assert len(kinds) == 2
    delay, failure = kinds
    assert b"Action: delayed" in delay and b"Will-Retry-Until:" in delay
    assert b"Action: failed" in failure
    assert b"Status: 4.4.7" in failure  # delivery time expired
    assert b"452 4.2.2 mailbox full" in failure
    assert world.clock.now - created >= 3 * 3600


def test_null_sender_never_bounced(world, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["b@example.net"] = "550 5.1.1 unknown"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    world.spool.enqueue("", ["b@example.net"], world.message(), kind="bounce")
    _run(world.engine().run_due())
    assert world.bounces.sent == []
    assert world.spool.ids() == []


def test_null_mx_bounces_without_connecting(world) -> None:
    world.resolver.add("nomail.example", "MX", "0 .")
    world.spool.enqueue("alice@pillarbox.test", ["x@nomail.example"], world.message())
    _run(world.engine().run_due())
    [(_, dsn)] = world.bounces.sent
    assert b"Status: 5.1.10" in dsn  # RFC 7505
    assert world.spool.ids() == []


def test_nxdomain_bounces(world) -> None:
    # the resolver knows no nowhere.example: NXDOMAIN
    world.spool.enqueue("alice@pillarbox.test", ["x@nowhere.example"], world.message())
    _run(world.engine().run_due())
    [(_, dsn)] = world.bounces.sent
    assert b"Status: 5.1.2" in dsn


def test_all_hosts_down_defers(world) -> None:
    from tests.harness import free_port

    world.add_mx("example.net", "mx1.example.net", free_port())
    qid = world.spool.enqueue("alice@pillarbox.test", ["b@example.net"], world.message())
    _run(world.engine().run_due())
    r = world.spool.load(qid).recipients[0]
    assert r.status == "pending" and r.attempts == 1 and r.last_error
    assert world.bounces.sent == []


def test_recipients_grouped_per_domain(world, sinks) -> None:
    h1, c1 = sinks()
    h2, c2 = sinks()
    world.add_mx("one.example", "mx.one.example", c1.port)
    world.add_mx("two.example", "mx.two.example", c2.port)
    world.spool.enqueue(
        "alice@pillarbox.test",
        ["a@one.example", "b@two.example", "c@one.example"],
        world.message(),
    )
    _run(world.engine().run_due())
    assert [m.rcpt_tos for m in h1.messages] == [["a@one.example", "c@one.example"]]
    assert [m.rcpt_tos for m in h2.messages] == [["b@two.example"]]


@pytest.mark.parametrize("per_domain", [1, 2])
def test_per_destination_concurrency_limit(world, sinks, per_domain: int) -> None:
    import threading
    import time

    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    from tests.protocol.queue.conftest import SinkHandler

    class Slow(SinkHandler):
        async def handle_DATA(self, server, session, envelope):
            with lock:
                active["now"] += 1
                active["max"] = max(active["max"], active["now"])
            await asyncio.sleep(0.15)
            with lock:
                active["now"] -= 1
            return await super().handle_DATA(server, session, envelope)

    handler, ctl = sinks(Slow())
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    cfg = world.config()
    world.configure(queue=type(cfg.queue)(concurrency_per_domain=per_domain, concurrency=10))
    for i in range(4):
        world.spool.enqueue("a@pillarbox.test", [f"r{i}@example.net"], world.message())
    t0 = time.monotonic()
    _run(world.engine().run_due())
    assert len(handler.messages) == 4
    assert active["max"] == per_domain
    assert time.monotonic() - t0 < 10


def test_smtputf8_recipient_needs_server_support(world, sinks) -> None:
    plain, plain_ctl = sinks(enable_SMTPUTF8=False)
    utf8, utf8_ctl = sinks(enable_SMTPUTF8=True)
    world.add_mx("old.example", "mx.old.example", plain_ctl.port)
    world.add_mx("new.example", "mx.new.example", utf8_ctl.port)
    world.spool.enqueue(
        "alice@pillarbox.test", ["jürgen@old.example", "jürgen@new.example"], world.message()
    )
    _run(world.engine().run_due())
    assert plain.messages == []
    assert [m.rcpt_tos for m in utf8.messages] == [["jürgen@new.example"]]
    [(_, dsn)] = world.bounces.sent
    assert b"Status: 5.6.7" in dsn  # RFC 6531 3.5


def test_address_literal_skips_mx_lookup(world, sinks) -> None:
    handler, ctl = sinks()
    world.ports["127.0.0.1"] = ctl.port
    world.spool.enqueue("alice@pillarbox.test", ["postmaster@[127.0.0.1]"], world.message())
    _run(world.engine().run_due())
    assert [m.rcpt_tos for m in handler.messages] == [["postmaster@[127.0.0.1]"]]


def test_global_concurrency_limit(world, sinks) -> None:
    import threading

    from tests.protocol.queue.conftest import SinkHandler

    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    class Slow(SinkHandler):
        async def handle_DATA(self, server, session, envelope):
            with lock:
                active["now"] += 1
                active["max"] = max(active["max"], active["now"])
            await asyncio.sleep(0.1)
            with lock:
                active["now"] -= 1
            return await super().handle_DATA(server, session, envelope)

    handler, ctl = sinks(Slow())
    for i in range(3):
        world.add_mx(f"d{i}.example", f"mx.d{i}.example", ctl.port)
        world.spool.enqueue("a@pillarbox.test", [f"r@d{i}.example"], world.message())
    cfg = world.config()
    world.configure(queue=type(cfg.queue)(concurrency_per_domain=5, concurrency=1))
    _run(world.engine().run_due())
    assert len(handler.messages) == 3
    assert active["max"] == 1


def test_delete_while_in_flight_is_not_written_back(world, sinks) -> None:
    from tests.protocol.queue.conftest import SinkHandler

    class Slow(SinkHandler):
        async def handle_RCPT(self, server, session, envelope, address, options):
            await asyncio.sleep(0.3)
            return "451 4.3.0 later"

    _handler, ctl = sinks(Slow())
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    qid = world.spool.enqueue("alice@pillarbox.test", ["b@example.net"], world.message())
    engine = world.engine()

    async def go() -> None:
        task = asyncio.create_task(engine.process(qid))
        for _ in range(100):
            if qid in engine.inflight:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        await engine.delete(qid)
        await task

    _run(go())
    assert world.spool.ids() == []
    assert list(world.spool.msg_dir.iterdir()) == []


def test_failed_dsn_is_retried_later_not_lost(world, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["b@example.net"] = "550 5.1.1 unknown"
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    broken = {"on": True}
    sent = world.bounces.sent

    class FlakyBounces:
        async def send_dsn(self, recipient, message, log_id):
            if broken["on"]:
                raise OSError("store unavailable")
            sent.append((recipient, message))

    world.bounces = FlakyBounces()
    qid = world.spool.enqueue("alice@pillarbox.test", ["b@example.net"], world.message())
    engine = world.engine()
    _run(engine.run_due())
    entry = world.spool.load(qid)
    assert entry.recipients[0].status == "failed" and not entry.recipients[0].bounced
    assert _run(engine.run_due()) == 0  # held back: no busy loop
    broken["on"] = False
    world.clock.now += 301
    assert _run(engine.run_due()) == 1
    assert len(sent) == 1 and b"Status: 5.1.1" in sent[0][1]
    assert world.spool.ids() == []
    assert len(handler.messages) == 0


def test_554_greeting_from_every_host_bounces(world) -> None:
    import socketserver
    import threading

    class Refuse(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"554 5.3.2 no service here\r\n")
            self.request.recv(1024)

    servers = [socketserver.ThreadingTCPServer(("127.0.0.1", 0), Refuse) for _ in range(2)]
    for i, srv in enumerate(servers):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        world.add_mx("example.net", f"mx{i}.example.net", srv.server_address[1], 10 + i)
    try:
        world.spool.enqueue("alice@pillarbox.test", ["b@example.net"], world.message())
        _run(world.engine().run_due())
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
    [(_, dsn)] = world.bounces.sent
    assert b"554 5.3.2 no service here" in dsn and b"Status: 5.3.2" in dsn
    assert world.spool.ids() == []
