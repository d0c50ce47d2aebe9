"""On the box the dashboard's webmail switch also starts or stops pillarbox-webmail.service
through the root helper (webmail.apply); the web UI finds the helper's client from its unit."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance import config
from tests.harness import write_config
from tests.web.web_helpers import Env, admin_client, new_env, post
from webui.helper import DEFAULT_ARGV, RootHelper


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """A box config (not dev mode), as first boot writes it."""
    made = new_env(tmp_path)
    write_config(tmp_path / "box", dev=False)
    assert not config.load(made.cfg_path).dev
    return made


def test_switch_makes_the_unit_follow(admin: FlaskClient, env: Env) -> None:
    post(admin, "/webmail/setting", {"enabled": "on"}, form_page="/")
    assert config.load(env.cfg_path).webmail.enabled
    assert env.helper_commands() == [["systemctl", "restart", "pillarbox-webmail.service"]]
    post(admin, "/webmail/setting", {}, form_page="/")
    assert not config.load(env.cfg_path).webmail.enabled
    assert env.helper_commands()[-1] == ["systemctl", "stop", "pillarbox-webmail.service"]


def test_dev_mode_switch_runs_no_helper(tmp_path: Path, accounts_template: Path) -> None:
    """make run starts php-fpm itself: no system helper, no unit to follow."""
    dev = new_env(tmp_path / "dev")
    assert config.load(dev.cfg_path).dev
    client = admin_client(dev, accounts_template)
    post(client, "/webmail/setting", {"enabled": "on"}, form_page="/")
    assert config.load(dev.cfg_path).webmail.enabled
    assert dev.helper_commands() == []


def test_helper_client_from_the_unit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILLARBOX_ROOT_HELPER", "/usr/lib/pillarbox/root-helper-client")
    assert RootHelper().argv == ("/usr/lib/pillarbox/root-helper-client",)
    monkeypatch.delenv("PILLARBOX_ROOT_HELPER")
    assert RootHelper().argv == DEFAULT_ARGV
