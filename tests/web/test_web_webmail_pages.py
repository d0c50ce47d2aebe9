"""Issue 21, the web UI around webmail: the dashboard's switch (an admin setting written
to [webmail] enabled), hardware sizing's advice by RAM, the links from the dashboard, My
account and the Mail apps page, and the first-boot config turning webmail on by RAM."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from flask.testing import FlaskClient

from appliance import config
from appliance.accounts import Accounts
from tests.harness import REPO
from tests.web.test_web_me import BOB, _bob
from tests.web.web_helpers import Env, post
from webui import sizing
from webui.sizing import GiB, Hardware


def _enabled(env: Env) -> bool:
    return config.load(env.cfg_path).webmail.enabled


def test_dashboard_switches_webmail_on_and_off(admin: FlaskClient, env: Env) -> None:
    assert not _enabled(env)
    page = admin.get("/").get_data(as_text=True)
    assert 'id="webmail"' in page and "Webmail is off" in page
    assert "this box has 4.0 GiB, enough" in page
    r = post(admin, "/webmail/setting", {"enabled": "on"}, form_page="/")
    assert r.status_code == 302 and r.location.endswith("/#webmail")
    assert _enabled(env)
    page = admin.get("/").get_data(as_text=True)
    assert 'id="webmail-link"' in page and 'href="/mail/"' in page
    assert "Webmail is on." in page  # the flash
    assert post(admin, "/webmail/setting", {}, form_page="/").status_code == 302
    assert not _enabled(env)


def test_a_mailbox_user_may_not_switch_webmail(admin: FlaskClient, env: Env) -> None:
    bob = _bob(admin, env)
    token = "test"
    with bob.session_transaction() as s:
        token = s["csrf"]
    r = bob.post("/webmail/setting", data={"enabled": "on", "csrf_token": token})
    assert r.status_code == 403
    assert not _enabled(env)


def test_my_account_and_mail_apps_link_to_webmail(admin: FlaskClient, env: Env) -> None:
    bob = _bob(admin, env)
    assert 'id="me-webmail"' not in bob.get("/me").get_data(as_text=True)
    assert 'id="webmail-address"' not in admin.get("/clients").get_data(as_text=True)
    post(admin, "/webmail/setting", {"enabled": "on"}, form_page="/")
    me = bob.get("/me").get_data(as_text=True)
    assert 'id="me-webmail"' in me and 'href="/mail/"' in me
    apps = admin.get("/clients").get_data(as_text=True)
    assert "https://mail.pillarbox.test/mail/" in apps
    assert Accounts(env.cfg.accounts_db).get_user(BOB) is not None


def test_webmail_off_page_points_admins_to_the_switch(admin: FlaskClient) -> None:
    r = admin.get("/mail/")
    assert r.status_code == 404
    body = r.get_data(as_text=True)
    assert "Webmail is off" in body and "/#webmail" in body
    anon = admin.application.test_client().get("/mail/").get_data(as_text=True)
    assert "Webmail is off" in anon and "/#webmail" not in anon


@pytest.mark.parametrize(
    ("ram", "on"),
    [(512 * 1024 * 1024, False), (1 * GiB - 1, False), (1 * GiB, True), (8 * GiB, True)],
)
def test_sizing_turns_webmail_on_from_one_gigabyte(ram: int, on: bool) -> None:
    hw = Hardware(cpus=2, ram=ram, disk_path="/", disk_total=100 * GiB, disk_free=50 * GiB)
    assert sizing.recommend(hw).webmail is on


def test_dashboard_says_what_sizing_decides(admin: FlaskClient, env: Env) -> None:
    env.hw = Hardware(cpus=1, ram=512 * 1024 * 1024, disk_path="/", disk_total=GiB, disk_free=GiB)
    dash = admin.get("/").get_data(as_text=True)
    assert "this box has 512.0 MiB: it may slow mail down" in dash


def _firstboot() -> ModuleType:
    path = REPO / "firmware-hooks" / "firstboot_config.py"
    spec = importlib.util.spec_from_file_location("firstboot_config_webmail", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("on", [True, False])
def test_first_boot_config_has_webmail_by_ram(tmp_path: Path, on: bool) -> None:
    text = _firstboot().appliance_config_text("mail.example.org", webmail=on)
    cfg = config.loads(text, tmp_path)
    assert cfg.webmail.enabled is on
    assert cfg.webmail.fpm_socket == Path("/run/pillarbox-webmail/fpm.sock")
    assert cfg.webmail.data == Path("/var/lib/pillarbox/webmail")
