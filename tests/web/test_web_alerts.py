"""Alert rules and the dashboard's alert controls, with the daemon faked (FakeCtl records
each ``alert_send``): thresholds and their hysteresis, port 25, backups, a source that
cannot be read this time, the recipient, the banner, the address form, the test button."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance import config
from appliance.ctl.protocol import CtlError
from tests.harness import write_config
from tests.web.alert_box import expired_cert
from tests.web.web_helpers import ADMIN, NOW, Env, FakeCtl, backup_run, make_pair, post
from webui import alertchecks, alerts, serve
from webui.alertchecks import Memory
from webui.context import WebContext
from webui.sizing import GiB, Hardware
from webui.webdb import WEB_DB, WebDb


class MailCtl(FakeCtl):
    """FakeCtl that also takes ``alert_send`` (and can refuse it)."""

    def __init__(self) -> None:
        super().__init__()
        self.mails: list[dict[str, Any]] = []
        self.refuse = False

    def call(self, cmd: str, **args: Any) -> Any:
        if cmd == "alert_send" and self.running:
            if self.refuse:
                raise CtlError("the alert could not be stored or queued: disk full")
            self.mails.append(args)
            return {"stored": 1, "queue_id": ""}
        return super().call(cmd, **args)


@pytest.fixture
def mail_ctl(env: Env) -> MailCtl:
    """The daemon faked, and a box with nothing wrong: a certificate valid for 90 days."""
    cert, _key = make_pair(days=90)
    env.cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
    env.cfg.tls.cert.write_bytes(cert)
    env.ctl = MailCtl()
    return env.ctl


def monitor(client: FlaskClient, env: Env) -> alerts.Monitor:
    ctx: WebContext = client.application.extensions["pillarbox"]
    return alerts.Monitor(
        ctx, system_path=env.cfg.mail_dir, memory=lambda: Memory(4 * GiB, 3 * GiB, 0, 0)
    )


def used(env: Env, share: float) -> None:
    total = 100 * GiB
    env.hw = Hardware(2, 4 * GiB, "/srv", total, int(total * (1 - share)))


def subjects(ctl: MailCtl) -> list[str]:
    return [m["subject"].split("] ", 1)[1] for m in ctl.mails]


@pytest.mark.parametrize(
    ("share", "before", "level"),
    [
        (0.50, None, None),
        (0.849, None, None),
        (0.85, None, "85"),
        (0.94, "85", "85"),
        (0.95, "85", "95"),
        (0.94, "95", "95"),  # holds 2 points below
        (0.929, "95", "85"),
        (0.84, "85", "85"),
        (0.829, "85", None),
        (0.84, None, None),
    ],
)
def test_disk_levels_hold_two_points_below_their_mark(
    share: float, before: str | None, level: str | None
) -> None:
    assert alertchecks._disk_level(share, before) == level


def rcpt(address: str, error: str, ago: float = 600, now: float = 10_000_000.0) -> dict[str, Any]:
    return {
        "address": address,
        "status": "pending",
        "attempts": 1,
        "last_attempt": now - ago,
        "last_error": error,
    }


TIMEOUT = "Timed out connecting to 192.0.2.1 on port 25"
REFUSED = "Error connecting to 192.0.2.2 on port 25: [Errno 111] Connect call failed"


@pytest.mark.parametrize(
    ("recipients", "blocked"),
    [
        (
            [rcpt("a@one.test", TIMEOUT), rcpt("b@one.test", REFUSED), rcpt("c@two.test", TIMEOUT)],
            True,
        ),
        ([rcpt("a@one.test", TIMEOUT), rcpt("b@one.test", TIMEOUT)], False),  # 2 recipients
        (
            [rcpt("a@one.test", TIMEOUT), rcpt("b@one.test", TIMEOUT), rcpt("c@one.test", TIMEOUT)],
            False,
        ),  # one domain
        (
            [
                rcpt("a@one.test", TIMEOUT),
                rcpt("b@two.test", TIMEOUT),
                rcpt("c@two.test", TIMEOUT),
                rcpt("d@three.test", "451 4.7.1 greylisted"),  # port 25 answered
            ],
            False,
        ),
        (
            [
                rcpt("a@one.test", TIMEOUT),
                rcpt("b@two.test", TIMEOUT),
                rcpt("c@two.test", TIMEOUT, ago=7 * 3600),  # outside the 6 hours
            ],
            False,
        ),
        (
            [
                rcpt("a@one.test", TIMEOUT.replace("port 25", "port 587")),
                rcpt("b@two.test", TIMEOUT),
                rcpt("c@two.test", TIMEOUT),
            ],
            False,
        ),
    ],
)
def test_port25_blocked_rule(recipients: list[dict[str, Any]], blocked: int, env: Env) -> None:
    entries = [{"id": "A", "created": 0, "recipients": recipients}]
    assert alertchecks.port25_blocked(entries, env.cfg, 10_000_000.0) is bool(blocked)


def test_port25_ignores_domains_a_smarthost_carries(tmp_path: Path) -> None:
    cfg = config.loads(
        'hostname = "mail.pillarbox.test"\n[[smarthost]]\nhost = "relay.test"\n'
        'domains = ["two.test"]\n',
        tmp_path,
    )
    entries = [
        {
            "recipients": [
                rcpt("a@one.test", TIMEOUT),
                rcpt("b@one.test", TIMEOUT),
                rcpt("c@two.test", TIMEOUT),
                rcpt("d@three.test", TIMEOUT),
            ]
        }
    ]
    assert alertchecks.port25_blocked(entries, cfg, 10_000_000.0)
    entries[0]["recipients"] = entries[0]["recipients"][:3]
    assert not alertchecks.port25_blocked(entries, cfg, 10_000_000.0)  # two.test: relayed


def test_no_backup_for_two_days(admin: FlaskClient, env: Env, mail_ctl: MailCtl) -> None:
    now = env.clock[0]
    mail_ctl.backup = {
        "state": "idle",
        "target": "local",
        "schedule": "daily",
        "last": backup_run(True, now - 3 * 86400),
        "last_success": backup_run(True, now - 3 * 86400),
    }
    mon = monitor(admin, env)
    mon.run_once()
    mon.run_once()
    assert subjects(mail_ctl) == ["No recent backup"]
    assert "The last good backup is 3 days old." in mail_ctl.mails[0]["text"]
    assert mail_ctl.mails[0]["to"] == ADMIN


def test_backups_set_up_but_never_successful(
    admin: FlaskClient, env: Env, mail_ctl: MailCtl
) -> None:
    mail_ctl.backup = {"state": "never", "target": "local", "schedule": "daily"}
    mon = monitor(admin, env)
    mon.run_once()
    env.clock[0] += 2 * 86400 - 60
    mon.run_once()
    assert mail_ctl.mails == []
    env.clock[0] += 120
    mon.run_once()
    assert subjects(mail_ctl) == ["No recent backup"]
    assert (
        "No backup has succeeded since backups were set up 2 days ago" in mail_ctl.mails[0]["text"]
    )


def test_a_source_that_cannot_be_read_keeps_its_alert(
    admin: FlaskClient, env: Env, mail_ctl: MailCtl
) -> None:
    mail_ctl.backup = {
        "state": "idle",
        "target": "local",
        "last": backup_run(False, env.clock[0] - 60, "repository not found"),
    }
    mon = monitor(admin, env)
    mon.run_once()
    assert subjects(mail_ctl) == ["Backup failed"]
    mail_ctl.backup = None  # backup_status: unknown command -> CtlError: not judged
    mon.run_once()
    mon.run_once()
    assert subjects(mail_ctl) == ["Backup failed"]  # no "Resolved"
    assert [a.key for a in alerts.alerts(admin.application.extensions["pillarbox"])] == [
        "backup:failed"
    ]


def test_a_refused_mail_is_sent_on_the_next_run(
    admin: FlaskClient, env: Env, mail_ctl: MailCtl
) -> None:
    used(env, 0.9)
    mon = monitor(admin, env)
    mail_ctl.refuse = True
    assert mon.run_once() == []
    mail_ctl.refuse = False
    assert mon.run_once() == ["Mail disk 90% full"]
    assert mon.run_once() == []


def test_a_condition_gone_before_it_was_mailed_is_not_resolved(
    admin: FlaskClient, env: Env, mail_ctl: MailCtl
) -> None:
    used(env, 0.9)
    mon = monitor(admin, env)
    mail_ctl.refuse = True
    mon.run_once()
    used(env, 0.3)
    mail_ctl.refuse = False
    mon.run_once()
    assert mail_ctl.mails == []


def test_certificate_uploaded_and_expiring(admin: FlaskClient, env: Env, mail_ctl: MailCtl) -> None:
    cert, _key = make_pair(days=10)
    env.cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
    env.cfg.tls.cert.write_bytes(cert)
    env.clock[0] = NOW.timestamp()
    mon = monitor(admin, env)
    mon.run_once()
    assert subjects(mail_ctl) == ["Certificate expires soon"]
    assert "not renewed automatically" in mail_ctl.mails[0]["text"]


def test_recipient_is_the_first_admin_unless_configured(admin: FlaskClient, env: Env) -> None:
    ctx: WebContext = admin.application.extensions["pillarbox"]
    ctx.accounts.add_user("second@pillarbox.test", "correct horse battery 2", is_admin=True)
    assert alerts.recipient(ctx) == ADMIN
    r = post(admin, "/alerts/address", {"email": "Ops@Example.org"}, form_page="/")
    assert r.status_code == 302
    assert env.cfg.alerts.email == "ops@example.org"
    assert alerts.recipient(ctx) == "ops@example.org"
    page = admin.get("/").get_data(as_text=True)
    assert "Alerts now go to ops@example.org." in page
    r = post(admin, "/alerts/address", {"email": "not an address"}, form_page="/")
    assert "Enter one email address" in admin.get("/").get_data(as_text=True)
    assert env.cfg.alerts.email == "ops@example.org"
    post(admin, "/alerts/address", {"email": ""}, form_page="/")
    assert alerts.recipient(ctx) == ADMIN


def test_banner_and_test_button(admin: FlaskClient, env: Env, mail_ctl: MailCtl) -> None:
    page = admin.get("/").get_data(as_text=True)
    assert 'id="alert-banner"' not in page and "Not checked yet." in page
    used(env, 0.96)
    monitor(admin, env).run_once()
    page = admin.get("/").get_data(as_text=True)
    checked = dt.datetime.fromtimestamp(env.clock[0]).strftime("%Y-%m-%d %H:%M")
    assert f"Last checked {checked}." in page
    assert 'id="alert-banner"' in page and "1 problem needs attention" in page
    assert "Mail disk 96% full" in page
    r = post(admin, "/alerts/test", {}, form_page="/")
    assert r.status_code == 302
    assert "A test alert is on its way to admin@pillarbox.test." in admin.get("/").get_data(
        as_text=True
    )
    assert subjects(mail_ctl)[-1] == "Test alert"
    mail_ctl.running = False
    post(admin, "/alerts/test", {}, form_page="/")
    assert "The test alert was not sent" in admin.get("/").get_data(as_text=True)


def test_alert_routes_need_an_admin(client: FlaskClient) -> None:
    for path in ("/alerts/test", "/alerts/address"):
        r = client.post(path)
        assert r.status_code in (302, 400, 403)
        assert r.status_code != 302 or "/alerts" not in r.location


def test_config_key(tmp_path: Path) -> None:
    assert config.loads("", tmp_path).alerts.email == ""
    cfg = config.loads('[alerts]\nemail = "Me@Example.org"\n', tmp_path)
    assert cfg.alerts.email == "me@example.org"
    with pytest.raises(config.ConfigError, match=r"alerts\.email"):
        config.loads('[alerts]\nemail = "nobody"\n', tmp_path)
    with pytest.raises(config.ConfigError, match=r"alerts\.to"):
        config.loads('[alerts]\nto = "a@b.org"\n', tmp_path)


def test_the_web_server_runs_the_checks_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `make run` and the appliance start (webui.serve) checks on its own: here an
    expired certificate, recorded for the banner (no daemon, so no mail)."""
    monkeypatch.setattr(alerts, "FIRST_DELAY", 0.1)
    cfg_path = write_config(tmp_path)
    cfg = config.load(cfg_path)
    cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
    expired_cert(cfg.tls.cert)
    server = serve.create_server(cfg_path)
    try:
        db = WebDb(cfg.data_dir / WEB_DB)
        deadline = time.monotonic() + 30
        keys: list[str] = []
        while time.monotonic() < deadline and "cert" not in keys:
            time.sleep(0.1)
            with contextlib.suppress(sqlite3.OperationalError):  # table not made yet
                keys = [k for (k,) in db.conn().execute("SELECT key FROM alert_state")]
        assert "cert" in keys
    finally:
        server.close()
