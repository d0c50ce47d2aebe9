"""DKIM signing on the way out, smarthost relay with AUTH over TLS, MTA-STS enforcement."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import dkim as dkimpy
import pytest

from appliance import config as config_mod
from appliance.queue import dkim
from appliance.queue.mtasts import HttpsPolicyFetcher, MtaSts, parse_policy
from tests.dnsfake import FakeResolver

from .conftest import Authenticator, FakeClock, Pki, World


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# ------------------------------------------------------------------ DKIM


def test_outgoing_message_is_dkim_signed_and_verifies(world: World, sinks) -> None:
    handler, ctl = sinks()
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    cfg = world.config()
    world.signer = lambda domain, data: dkim.sign(cfg, domain, data)
    world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    [got] = handler.messages
    assert got.content.count(b"DKIM-Signature:") == 2
    records = {n + ".": v.encode() for n, v in dkim.dns_records(cfg, "pillarbox.test")}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name.decode())

    d = dkimpy.DKIM(got.content)
    assert d.verify(idx=0, dnsfunc=lookup)
    assert d.verify(idx=1, dnsfunc=lookup)
    assert b"a=rsa-sha256" in got.content and b"a=ed25519-sha256" in got.content


def test_foreign_from_domain_not_signed(world: World, sinks) -> None:
    handler, ctl = sinks()
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    cfg = world.config()
    world.signer = lambda domain, data: dkim.sign(cfg, domain, data)
    world.spool.enqueue(
        "x@elsewhere.example",
        ["bob@example.net"],
        world.message("x@elsewhere.example"),
        origin="submission",
    )
    _run(world.engine().run_due())
    assert b"DKIM-Signature:" not in handler.messages[0].content


# ------------------------------------------------------------------ smarthost


def _smarthost(world: World, tmp_path: Path, port: int, tls: str, username: str = "relay") -> None:
    pw = tmp_path / "relay.pw"
    pw.write_text("s3cret-pass\n")
    sh = config_mod.Smarthost(
        host="127.0.0.1",
        port=port,
        tls=tls,  # type: ignore[arg-type]
        username=username,
        password_file=pw,
    )
    world.configure(smarthosts=(sh,))


def test_smarthost_implicit_tls_with_auth(world: World, sinks, pki: Pki, tmp_path: Path) -> None:
    auth = Authenticator("relay", "s3cret-pass")
    handler, ctl = sinks(
        ssl_context=pki.server_context("127.0.0.1"), authenticator=auth, auth_require_tls=False
    )
    _smarthost(world, tmp_path, ctl.port, "tls")
    world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())  # no MX lookup: the resolver knows nothing
    [got] = handler.messages
    assert got.login == "relay" and got.tls
    assert world.spool.ids() == []


def test_smarthost_starttls_with_auth(world: World, sinks, pki: Pki, tmp_path: Path) -> None:
    auth = Authenticator("relay", "s3cret-pass")
    handler, ctl = sinks(tls_context=pki.server_context("127.0.0.1"), authenticator=auth)
    _smarthost(world, tmp_path, ctl.port, "starttls")
    world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    [got] = handler.messages
    assert got.login == "relay" and got.tls


def test_smarthost_wrong_password_defers(world: World, sinks, pki: Pki, tmp_path: Path) -> None:
    auth = Authenticator("relay", "another-password")
    handler, ctl = sinks(tls_context=pki.server_context("127.0.0.1"), authenticator=auth)
    _smarthost(world, tmp_path, ctl.port, "starttls")
    qid = world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    assert handler.messages == []
    r = world.spool.load(qid).recipients[0]
    assert r.status == "pending" and "authentication failed" in r.last_error


def test_smarthost_never_sends_credentials_in_clear(world: World, sinks, tmp_path: Path) -> None:
    auth = Authenticator("relay", "s3cret-pass")
    handler, ctl = sinks(authenticator=auth, auth_require_tls=False)
    _smarthost(world, tmp_path, ctl.port, "none")
    qid = world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    assert auth.attempts == [] and handler.messages == [] and handler.connections == 0
    r = world.spool.load(qid).recipients[0]
    assert r.status == "pending" and "TLS" in r.last_error


def test_smarthost_starttls_refuses_unverified_certificate(
    world: World, sinks, pki: Pki, tmp_path: Path
) -> None:
    auth = Authenticator("relay", "s3cret-pass")
    handler, ctl = sinks(tls_context=pki.server_context("wrong.example"), authenticator=auth)
    _smarthost(world, tmp_path, ctl.port, "starttls")
    world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    assert auth.attempts == [] and handler.messages == []


def test_per_domain_smarthost_only_for_its_domains(world: World, sinks, tmp_path: Path) -> None:
    relay, relay_ctl = sinks()
    direct, direct_ctl = sinks()
    world.configure(
        smarthosts=(
            config_mod.Smarthost(
                host="127.0.0.1", port=relay_ctl.port, tls="none", domains=("relayed.example",)
            ),
        )
    )
    world.add_mx("example.net", "mx1.example.net", direct_ctl.port)
    world.spool.enqueue(
        "alice@pillarbox.test", ["a@relayed.example", "b@example.net"], world.message()
    )
    _run(world.engine().run_due())
    assert [m.rcpt_tos for m in relay.messages] == [["a@relayed.example"]]
    assert [m.rcpt_tos for m in direct.messages] == [["b@example.net"]]


# ------------------------------------------------------------------ MTA-STS


class PolicyServer:
    def __init__(self, pki: Pki, body: str) -> None:
        self.body = body
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                data = outer.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = pki.server_context("mta-sts.example.net")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def policy_server(pki: Pki) -> Iterator[PolicyServer]:
    server = PolicyServer(pki, "")
    yield server
    server.close()


def _sts(world: World, server: PolicyServer, pki: Pki, mode: str, mx: str) -> None:
    server.body = f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n"
    world.resolver.add("_mta-sts.example.net", "TXT", "v=STSv1; id=20261123")
    world.fetcher = HttpsPolicyFetcher(
        lambda: pki.client_context(True), lambda host: ("127.0.0.1", server.port), timeout=5
    )


def test_mta_sts_enforce_refuses_unverified_host(world: World, sinks, pki, policy_server) -> None:
    handler, ctl = sinks(tls_context=pki.server_context("other.example.org"))
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    _sts(world, policy_server, pki, "enforce", "mx1.example.net")
    qid = world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    assert policy_server.hits == 1
    assert handler.messages == []
    r = world.spool.load(qid).recipients[0]
    assert r.status == "pending" and "TLS" in r.last_error
    assert world.bounces.sent == []


def test_mta_sts_enforce_delivers_when_verified(world: World, sinks, pki, policy_server) -> None:
    handler, ctl = sinks(tls_context=pki.server_context("mx1.example.net"))
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    _sts(world, policy_server, pki, "enforce", "*.example.net")
    world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    assert len(handler.messages) == 1 and handler.messages[0].tls


def test_mta_sts_enforce_skips_unlisted_mx(world: World, sinks, pki, policy_server) -> None:
    handler, ctl = sinks(tls_context=pki.server_context("mx1.example.net"))
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    _sts(world, policy_server, pki, "enforce", "mx.elsewhere.example")
    qid = world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    assert handler.connections == 0
    assert "MTA-STS" in world.spool.load(qid).recipients[0].last_error


def test_mta_sts_testing_only_logs(world: World, sinks, pki, policy_server) -> None:
    handler, ctl = sinks(tls_context=pki.server_context("other.example.org"))
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    _sts(world, policy_server, pki, "testing", "mx.elsewhere.example")
    world.spool.enqueue(
        "alice@pillarbox.test", ["bob@example.net"], world.message(), origin="submission"
    )
    _run(world.engine().run_due())
    assert len(handler.messages) == 1


def test_mta_sts_policy_cached_for_max_age(pki: Pki, policy_server: PolicyServer) -> None:
    resolver = FakeResolver({("_mta-sts.example.net", "TXT"): ["v=STSv1; id=abc1"]})
    policy_server.body = "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 600\n"
    clock = FakeClock()
    fetcher = HttpsPolicyFetcher(
        lambda: pki.client_context(True), lambda host: ("127.0.0.1", policy_server.port), 5
    )
    sts = MtaSts(resolver, fetcher, clock)

    async def go() -> None:
        p1 = await sts.policy("example.net")
        assert p1 is not None and p1.mode == "enforce" and p1.mx == ("mx.example.net",)
        await sts.policy("example.net")
        assert policy_server.hits == 1  # same id, within max_age: cache
        resolver.records.pop(("_mta-sts.example.net", "TXT"))
        assert await sts.policy("example.net") == p1  # TXT gone: cached policy still holds
        clock.now += 601
        assert await sts.policy("example.net") is None  # expired, no TXT: no policy
        resolver.records[("_mta-sts.example.net", "TXT")] = ["v=STSv1; id=abc2"]
        await sts.policy("example.net")
        assert policy_server.hits == 2

    asyncio.run(go())


def test_mta_sts_fetch_requires_valid_certificate(pki: Pki, tmp_path: Path) -> None:
    other = Pki(tmp_path, *_foreign_ca(tmp_path))
    server = PolicyServer(other, "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 60\n")
    try:
        fetcher = HttpsPolicyFetcher(
            lambda: pki.client_context(True), lambda host: ("127.0.0.1", server.port), 5
        )
        resolver = FakeResolver({("_mta-sts.example.net", "TXT"): ["v=STSv1; id=x1"]})
        sts = MtaSts(resolver, fetcher, FakeClock())
        assert asyncio.run(sts.policy("example.net")) is None
    finally:
        server.close()


def _foreign_ca(tmp_path: Path):  # type: ignore[no-untyped-def]
    from .conftest import make_pki

    p = make_pki(tmp_path / "foreign")
    return p.ca_key, p.ca_cert


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 60\n", True),
        ("version: STSv1\r\nmode: testing\r\nmx: *.example\r\nmax_age: 60\r\n", True),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 60\n", False),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 60\n", False),
        ("version: STSv1\nmode: enforce\nmax_age: 60\n", False),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", False),
    ],
)
def test_parse_policy(text: str, ok: bool) -> None:
    from appliance.queue.mtasts import PolicyError

    if ok:
        assert parse_policy(text).max_age == 60
    else:
        with pytest.raises(PolicyError):
            parse_policy(text)


def test_ssl_module_has_tls12() -> None:
    assert ssl.TLSVersion.TLSv1_2


def test_lf_only_message_signed_after_crlf_normalisation(world: World, sinks) -> None:
    handler, ctl = sinks()
    world.add_mx("example.net", "mx1.example.net", ctl.port)
    cfg = world.config()
    world.signer = lambda domain, data: dkim.sign(cfg, domain, data)
    src = world.tmp / "lf.eml"
    src.write_bytes(
        b"From: alice@pillarbox.test\nTo: bob@example.net\nSubject: lf\n\nline 1\nline 2\n"
    )
    world.spool.enqueue("alice@pillarbox.test", ["bob@example.net"], src, origin="submission")
    _run(world.engine().run_due())
    [got] = handler.messages
    records = {n + ".": v.encode() for n, v in dkim.dns_records(cfg, "pillarbox.test")}
    d = dkimpy.DKIM(got.content)
    assert d.verify(idx=0, dnsfunc=lambda name, timeout=5: records.get(name.decode()))


def test_mta_sts_cache_survives_restart(pki: Pki, policy_server: PolicyServer, tmp_path) -> None:
    resolver = FakeResolver({("_mta-sts.example.net", "TXT"): ["v=STSv1; id=p1"]})
    policy_server.body = "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 600\n"
    clock = FakeClock()
    fetcher = HttpsPolicyFetcher(
        lambda: pki.client_context(True), lambda host: ("127.0.0.1", policy_server.port), 5
    )
    cache = tmp_path / "sts.json"
    first = MtaSts(resolver, fetcher, clock, cache_file=cache)
    policy = asyncio.run(first.policy("example.net"))
    assert policy is not None and cache.exists()
    # After a restart, with the TXT record blocked, the cached policy still applies.
    resolver.records.clear()
    second = MtaSts(resolver, fetcher, clock, cache_file=cache)
    assert asyncio.run(second.policy("example.net")) == policy
    assert policy_server.hits == 1
    clock.now += 601
    assert asyncio.run(MtaSts(resolver, fetcher, clock, cache).policy("example.net")) is None
