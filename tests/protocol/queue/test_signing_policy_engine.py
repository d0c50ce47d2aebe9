"""The delivery engine signs by the entry's recorded origin (issue 16 item 2): entries
from an older spool (no origin) go out unsigned, forwards are ARC-sealed and sent with
their SRS wire sender, never DKIM-signed, whatever their From domain."""

from __future__ import annotations

import asyncio
import json

import dkim as dkimpy

from appliance.queue import dkim
from appliance.queue.engine import DeliveryEngine
from appliance.queue.spool import Spool

from .conftest import World


def _engine(world: World) -> DeliveryEngine:
    cfg = world.config()
    world.signer = lambda domain, data: dkim.sign(cfg, domain, data)
    engine = world.engine()
    engine.sealer = lambda domain, ar, data: dkim.arc_seal(cfg, domain, ar, data)
    return engine


def test_entry_from_an_older_spool_loads_and_is_not_signed(world: World, sinks) -> None:
    handler, ctl = sinks()
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    spool: Spool = world.spool
    qid = spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    meta = spool.meta_path(qid)
    raw = json.loads(meta.read_text())
    for key in ("origin", "wire_sender", "auth_results", "forward_domain"):
        del raw[key]  # what a previous version wrote
    meta.write_text(json.dumps(raw))
    assert spool.load(qid).origin == ""
    asyncio.run(_engine(world).run_due())
    [got] = handler.messages
    assert b"DKIM-Signature" not in got.content and b"ARC-Seal" not in got.content


def test_unknown_origin_value_is_not_signed(world: World) -> None:
    spool = world.spool
    qid = spool.enqueue("a@pillarbox.test", ["b@example.net"], world.message(), origin="local")
    meta = spool.meta_path(qid)
    raw = json.loads(meta.read_text())
    raw["origin"] = "trusted-by-someone"
    meta.write_text(json.dumps(raw))
    assert spool.load(qid).origin == ""


def test_null_sender_without_origin_is_the_box_s_own(world: World) -> None:
    spool = world.spool
    assert spool.load(spool.enqueue("", ["b@example.net"], world.message())).origin == "local"
    plain = spool.enqueue("a@pillarbox.test", ["b@example.net"], world.message())
    assert spool.load(plain).origin == ""


def test_forward_entry_is_sealed_not_signed_and_uses_wire_sender(world: World, sinks) -> None:
    handler, ctl = sinks()
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    cfg = world.config()
    ar = "mail.pillarbox.test; spf=pass smtp.mailfrom=x@sender.test; dmarc=pass"
    qid = world.spool.enqueue(
        "x@sender.test",
        ["bob@example.net"],
        world.message("ceo@pillarbox.test"),  # a local From does not make it ours
        origin="forward",
        wire_sender="SRS0=abcdefgh=AB=sender.test=x@pillarbox.test",
        auth_results=ar,
        forward_domain="pillarbox.test",
    )
    entry = world.spool.load(qid)
    assert (entry.origin, entry.auth_results, entry.forward_domain) == (
        "forward",
        ar,
        "pillarbox.test",
    )
    asyncio.run(_engine(world).run_due())
    [got] = handler.messages
    assert got.mail_from == "SRS0=abcdefgh=AB=sender.test=x@pillarbox.test"
    assert b"DKIM-Signature" not in got.content
    assert got.content.startswith(b"ARC-Seal: i=1; cv=none;")
    records = {n + ".": v.encode() for n, v in dkim.dns_records(cfg, "pillarbox.test")}
    cv, _, reason = dkimpy.arc_verify(
        got.content, dnsfunc=lambda name, timeout=5: records.get(name.decode())
    )
    assert cv == dkimpy.CV_Pass, reason
