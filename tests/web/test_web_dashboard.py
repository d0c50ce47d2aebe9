"""Dashboard status lines: daemon, queue, disk, certificate, DNS."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from appliance.tls import generate_self_signed
from tests.web.web_helpers import Env, complete_zone, make_pair
from webui.sizing import GiB, Hardware


def lines(admin: FlaskClient) -> dict[str, tuple[str, str]]:
    """title -> (level, text) from the rendered status list."""
    body = admin.get("/").get_data(as_text=True)
    found = re.findall(
        r'class="check check-(\w+)">.*?check-title">([^<]+)</span>\s*'
        r'<span class="check-text">([^<]+)</span>',
        body,
        re.S,
    )
    return {title: (level, text) for level, title, text in found}


def test_everything_ok(admin: FlaskClient, env: Env) -> None:
    env.resolver.records.update(complete_zone(env.cfg))
    generate_self_signed(env.cfg.tls.cert, env.cfg.tls.key, env.cfg.hostname)
    got = lines(admin)
    assert got["Mail service"][0] == "ok" and "Running" in got["Mail service"][1]
    assert got["Outgoing mail"][0] == "ok"
    assert got["Mail storage"][0] == "ok"
    assert got["DNS"][0] == "ok"
    assert got["Certificate"][0] == "warning" and "Self-signed" in got["Certificate"][1]


def test_daemon_down(admin: FlaskClient, env: Env) -> None:
    env.ctl.running = False
    got = lines(admin)
    assert got["Mail service"][0] == "error"
    assert "Outgoing mail" not in got


@pytest.mark.parametrize(
    ("size", "level"), [(0, "ok"), (49, "ok"), (50, "warning"), (500, "error")]
)
def test_queue_levels(admin: FlaskClient, env: Env, size: int, level: str) -> None:
    env.ctl.queue = [{"id": str(i)} for i in range(size)]
    assert lines(admin)["Outgoing mail"][0] == level
    assert "queue.list" not in env.ctl.calls  # the size came with the status


def test_queue_size_from_listing_when_status_lacks_it(admin: FlaskClient, env: Env) -> None:
    env.ctl.queue_in_status = False
    env.ctl.queue = [{"id": "A"}, {"id": "B"}]
    assert lines(admin)["Outgoing mail"] == ("ok", "2 messages waiting to be delivered.")
    assert "queue.list" in env.ctl.calls


@pytest.mark.parametrize(("free", "level"), [(500, "ok"), (150, "warning"), (50, "error")])
def test_disk_levels(admin: FlaskClient, env: Env, free: int, level: str) -> None:
    env.hw = Hardware(
        cpus=2, ram=2 * GiB, disk_path="/", disk_total=1000 * GiB, disk_free=free * GiB
    )
    assert lines(admin)["Mail storage"][0] == level


@pytest.mark.parametrize(
    ("days", "start", "level", "text"),
    [(10, -1, "warning", "Expires in"), (-2, -30, "error", "Expired on"), (90, -1, "ok", "Valid")],
)
def test_certificate_levels(
    admin: FlaskClient, env: Env, days: int, start: int, level: str, text: str
) -> None:
    cert, _key = make_pair(days=days, start_days=start)
    env.cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
    env.cfg.tls.cert.write_bytes(cert)
    got = lines(admin)["Certificate"]
    assert got[0] == level and text in got[1]


def test_dns_missing_records_and_cache(admin: FlaskClient, env: Env) -> None:
    got = lines(admin)
    assert got["DNS"][0] == "error" and "pillarbox.test" in got["DNS"][1]
    queries = len(env.resolver.queries)
    lines(admin)
    assert len(env.resolver.queries) == queries  # cached for ten minutes
    env.resolver.records.update(complete_zone(env.cfg))
    env.clock[0] += 601
    assert lines(admin)["DNS"][0] == "ok"
