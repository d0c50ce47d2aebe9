"""A real rspamd (Debian rules, Bayes in a throw-away redis) over its HTTP API."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from appliance import config
from appliance.filters.base import InboundMessage
from appliance.filters.learning import learn
from appliance.filters.rspamd import RspamdClient, RspamdFilter, SpamThresholds

# rspamd loads its whole rule set at start: 15 s on an idle machine, a minute when busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WORDS = (
    "cheap watches replica pharmacy discount offer limited winner prize claim "
    "urgent transfer million dollars bank account verify password lottery casino"
)


def spam(n: int = 0) -> bytes:
    return (
        "From: winner@prizes.example\r\nTo: bob@pillarbox.test\r\n"
        f"Subject: You won {n}\r\n\r\n" + " ".join([WORDS] * 3) + f" {n}\r\n"
    ).encode()


def inbound(tmp_path: Path, data: bytes, name: str = "m.eml", **kw: object) -> InboundMessage:
    path = tmp_path / name
    path.write_bytes(data)
    args: dict[str, object] = {
        "path": path,
        "mail_from": "winner@prizes.example",
        "rcpt_to": ("bob@pillarbox.test",),
        "client_ip": "198.51.100.99",
        "client_name": "",
        "helo": "prizes.example",
    }
    args.update(kw)
    return InboundMessage(**args)  # type: ignore[arg-type]


def test_check_reports_score_and_symbols(tmp_path: Path, rspamd_urls: tuple[str, str]) -> None:
    client = RspamdClient(*rspamd_urls)
    result = asyncio.run(client.check(inbound(tmp_path, spam())))
    names = {name for name, _ in result.symbols}
    assert "MISSING_MID" in names and "MISSING_DATE" in names
    assert result.score > 0 and result.required > 0

    f = RspamdFilter(client, SpamThresholds(header=1.0, junk=100.0, reject=200.0))
    verdict = asyncio.run(f.check(inbound(tmp_path, spam())))
    headers = dict(verdict.headers)
    assert verdict.action == "accept" and headers["X-Spam"] == "Yes"
    assert headers["X-Spam-Score"].startswith(f"{result.score:.2f} ")
    assert "MISSING_MID(" in headers["X-Spam-Symbols"]


def test_thresholds_junk_and_reject(tmp_path: Path, rspamd_urls: tuple[str, str]) -> None:
    client = RspamdClient(*rspamd_urls)
    junk = RspamdFilter(client, SpamThresholds(header=0.5, junk=1.0, reject=200.0))
    assert asyncio.run(junk.check(inbound(tmp_path, spam()))).action == "junk"
    reject = RspamdFilter(client, SpamThresholds(header=0.5, junk=1.0, reject=2.0))
    verdict = asyncio.run(reject.check(inbound(tmp_path, spam())))
    assert (verdict.action, verdict.smtp_code, verdict.enhanced) == ("reject", 550, "5.7.1")
    authed = inbound(tmp_path, spam(), authenticated_user="bob@pillarbox.test")
    assert asyncio.run(reject.check(authed)).action == "accept"  # own users are not scanned


def _learned(controller: str) -> int:
    with urllib.request.urlopen(f"{controller}/stat", timeout=10) as r:
        return int(json.load(r)["learned"])


def test_learning_spam_and_ham(tmp_path: Path, rspamd_urls: tuple[str, str]) -> None:
    normal, controller = rspamd_urls
    before = _learned(controller)
    cfg = config.from_mapping(
        {"filters": {"rspamd": True, "rspamd_url": normal, "rspamd_controller_url": controller}},
        tmp_path,
    )
    path = tmp_path / "spam.eml"
    path.write_bytes(spam(1))
    assert asyncio.run(learn(cfg, "spam", path))
    assert _learned(controller) == before + 1
    assert asyncio.run(learn(cfg, "spam", path))  # already learned: still fine, not counted
    ham = tmp_path / "ham.eml"
    ham.write_bytes(
        b"From: carol@example.net\r\nTo: bob@pillarbox.test\r\nSubject: minutes\r\n\r\n"
        + b"Here are the minutes of the project meeting with the agreed action items, "
        b"the next review date and the open questions about the budget for next year.\r\n"
    )
    assert asyncio.run(learn(cfg, "ham", ham))
    assert _learned(controller) == before + 2
    tiny = tmp_path / "tiny.eml"
    tiny.write_bytes(b"Subject: x\r\n\r\nhi\r\n")
    assert not asyncio.run(learn(cfg, "spam", tiny))  # too few tokens: not learned


def test_learning_off_or_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(spam())
    off = config.from_mapping({}, tmp_path)
    assert not asyncio.run(learn(off, "spam", path))
    dead = config.from_mapping(
        {"filters": {"rspamd": True, "rspamd_controller_url": "http://127.0.0.1:9"}}, tmp_path
    )
    assert not asyncio.run(learn(dead, "ham", path))


def test_rspamd_down_accepts(tmp_path: Path) -> None:
    f = RspamdFilter(RspamdClient("http://127.0.0.1:9", "http://127.0.0.1:9"), SpamThresholds())
    verdict = asyncio.run(f.check(inbound(tmp_path, spam())))
    assert verdict.action == "accept"
    assert dict(verdict.headers)["X-Spam-Status"].startswith("unknown")


def test_envelope_reaches_rspamd(tmp_path: Path, rspamd_urls: tuple[str, str]) -> None:
    client = RspamdClient(*rspamd_urls)
    same = inbound(tmp_path, spam(), rcpt_to=("bob@pillarbox.test", "carol@pillarbox.test"))
    assert "FROM_EQ_ENVFROM" in {n for n, _ in asyncio.run(client.check(same)).symbols}
    other = inbound(tmp_path, spam(), mail_from="bounces@mailer.example")
    assert "FROM_NEQ_ENVFROM" in {n for n, _ in asyncio.run(client.check(other)).symbols}
