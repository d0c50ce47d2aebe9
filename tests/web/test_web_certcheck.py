"""Issue 19: the certificate step checks first (public name, address record, port 80 over
a real HTTP request) and explains .test / private names; ACME failures say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance import config
from appliance.dns import SyncResolver
from tests.harness import free_port, write_config
from tests.web.web_helpers import HOST, Env, FakeResolver, post, served
from webui import acme_issue, certcheck, configedit
from webui.acme_issue import AcmeProblem, AcmeSettings, ChallengeStore

PUBLIC = "mail.example.org"
PUBLIC_IP = "93.184.216.34"


@pytest.mark.parametrize(
    ("name", "private"),
    [
        ("mail.pillarbox.test", True),
        ("box.local", True),
        ("mail.home.arpa", True),
        ("mailbox", True),
        ("mail.example.org", False),
        ("mx.testing.org", False),
    ],
)
def test_private_names_are_explained(name: str, private: bool) -> None:
    why = certcheck.private_name(name)
    assert (why is not None) is private
    if why and "." in name:
        assert "only on your own network" in why and "self-signed" in why


def test_checks_stop_at_the_first_problem() -> None:
    store = ChallengeStore()
    none = certcheck.check(PUBLIC, SyncResolver(FakeResolver()), store)
    assert [(f.title, f.level) for f in none] == [
        ("Public name", "ok"),
        ("Address record", "error"),
    ]
    assert "no address (A) record" in none[1].text
    lan = certcheck.check(
        PUBLIC, SyncResolver(FakeResolver({(PUBLIC, "A"): ["192.168.1.20"]})), store
    )
    assert lan[-1].level == "error" and "only your own network knows" in lan[-1].text


def test_port_80_probe_fetches_the_token_from_this_web_ui(client: FlaskClient) -> None:
    """A real request to the web UI on a real socket, as the CA would make it; the token
    is gone again afterwards."""
    resolver = SyncResolver(FakeResolver({(PUBLIC, "A"): [PUBLIC_IP]}))
    ctx = client.application.extensions["pillarbox"]
    seen: list[tuple[str, str]] = []
    with served(client.application) as base:
        port = int(base.rsplit(":", 1)[1])

        def via_loopback(address: str, _port: int, host: str, path: str) -> str | None:
            seen.append((address, host))  # the public address cannot be reached in a test
            return certcheck.http_fetch("127.0.0.1", port, host, path)

        found = certcheck.check(PUBLIC, resolver, ctx.challenges, 80, via_loopback)
        assert [f.level for f in found] == ["ok", "ok", "ok"], found
        assert seen == [(PUBLIC_IP, PUBLIC)]
        assert ctx.challenges._items == {}
        closed = free_port()
        assert certcheck.http_fetch("127.0.0.1", closed, PUBLIC, "/") is None
    blocked = certcheck.check(
        PUBLIC,
        resolver,
        ctx.challenges,
        closed,
        lambda a, p, h, u: certcheck.http_fetch("127.0.0.1", p, h, u),
    )
    assert blocked[-1].level == "error" and "Forward port 80" in blocked[-1].text


def test_certificate_page_explains_a_test_name_and_checks_first(
    admin: FlaskClient, env: Env
) -> None:
    assert env.cfg.hostname == HOST
    body = admin.get("/certificate").get_data(as_text=True)
    assert "ends in .test" in body and "Get certificate" not in body
    configedit.update(env.cfg_path, {"hostname": PUBLIC})
    body = admin.get("/certificate").get_data(as_text=True)
    assert "Check first" in body and "Get certificate" not in body
    r = post(admin, "/certificate/check", {}, form_page="/certificate")
    page = r.get_data(as_text=True)
    assert "no address (A) record" in page and "Get certificate" not in page


def test_acme_unreachable_directory_says_what_to_fix(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path / "box"))
    closed = free_port()
    settings = AcmeSettings(directory=f"http://127.0.0.1:{closed}/dir", timeout=5)
    with pytest.raises(AcmeProblem) as caught:
        acme_issue.issue(cfg, settings, ChallengeStore(), "", lambda _m: None)
    assert "Can't reach Let's Encrypt — is the box online?" in str(caught.value)
    assert "Errno" not in str(caught.value) and "HTTPConnection" not in str(caught.value)
