"""The chain build_filters makes from a config, run the way the delivery pipeline runs
it (in order, stop at the first reject/tempfail), with a real clamd behind it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import config
from appliance.filters.base import InboundMessage, RecipientAction, Verdict
from appliance.filters.setup import build_filters
from appliance.filters.sieve_store import SieveStore
from tests.dnsfake import FakeResolver
from tests.protocol.filters.services import EICAR


@dataclass
class Queue:
    sent: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def enqueue(self, sender: str, recipients: Sequence[str], message: Path) -> str:
        self.sent.append((sender, tuple(recipients)))
        return "q"


@dataclass
class Ctx:
    config: config.Config
    queue: Queue
    replies: Any = None  # the notifier's; no reply is sent in these tests


def pipeline(
    ctx: Ctx, msg: InboundMessage, resolver: FakeResolver
) -> tuple[Verdict, list[tuple[str, str]], RecipientAction | None]:
    filters, per_rcpt = build_filters(ctx, resolver)

    async def go() -> tuple[Verdict, list[tuple[str, str]], RecipientAction | None]:
        headers: list[tuple[str, str]] = []
        final = Verdict()
        for f in filters:
            verdict = await f.check(msg)
            headers += verdict.headers
            if verdict.action in ("reject", "tempfail"):
                return verdict, headers, None
            if verdict.action == "junk":
                final = verdict
        action = await per_rcpt[0].route(msg.rcpt_to[0], msg, final)
        return final, headers, action

    return asyncio.run(go())


def setup(tmp_path: Path, clamd_socket: Path) -> tuple[Ctx, FakeResolver]:
    cfg = config.from_mapping(
        {
            "hostname": "mx.pillarbox.test",
            "data_dir": str(tmp_path / "data"),
            "filters": {"clamav": True, "clamd_socket": str(clamd_socket)},
        },
        tmp_path,
    )
    r = FakeResolver()
    r.add("example.org", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    r.add("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine")
    return Ctx(cfg, Queue()), r


def inbound(tmp_path: Path, body: bytes, ip: str) -> InboundMessage:
    path = tmp_path / "spooled.eml"
    data = (
        b"From: Alice <alice@example.org>\r\nTo: bob@pillarbox.test\r\nSubject: hi\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(body)
    )
    path.write_bytes(data)
    return InboundMessage(
        path, "alice@example.org", ("bob@pillarbox.test",), ip, "", "mx.example.org", size=len(data)
    )


def test_clean_authenticated_mail_goes_where_sieve_says(tmp_path: Path, clamd_socket: Path) -> None:
    ctx, r = setup(tmp_path, clamd_socket)
    SieveStore(ctx.config.data_dir / "sieve").save_script(
        "bob@pillarbox.test", 'require "fileinto";\nfileinto "Friends";'
    )
    verdict, headers, action = pipeline(ctx, inbound(tmp_path, b"hello", "198.51.100.5"), r)
    names = [n for n, _ in headers]
    assert names == ["X-Virus-Scanned", "Authentication-Results"]
    assert "dmarc=pass" in dict(headers)["Authentication-Results"]
    assert verdict.action == "accept" and action is not None
    assert action.mailboxes == ("Friends",)


def test_virus_stops_the_chain(tmp_path: Path, clamd_socket: Path) -> None:
    ctx, r = setup(tmp_path, clamd_socket)
    verdict, _, action = pipeline(ctx, inbound(tmp_path, EICAR, "198.51.100.5"), r)
    assert (verdict.action, verdict.smtp_code) == ("reject", 554) and action is None
    assert r.queries == []  # mailauth never ran


def test_dmarc_quarantine_lands_in_junk(tmp_path: Path, clamd_socket: Path) -> None:
    ctx, r = setup(tmp_path, clamd_socket)
    verdict, _, action = pipeline(ctx, inbound(tmp_path, b"hello", "203.0.113.66"), r)
    assert verdict.action == "junk" and action is not None
    assert action.mailboxes == ("Junk",)
