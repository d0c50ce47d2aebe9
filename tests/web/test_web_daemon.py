"""The web UI against the real daemon over its ctl socket: status, queue size, reload."""

from __future__ import annotations

import re
from pathlib import Path

from appliance import config
from appliance.dns import SyncResolver
from tests.harness import Daemon, write_config
from tests.web import relay_helpers
from tests.web.web_helpers import FakeResolver, complete_setup, post
from webui import create_app


def test_dashboard_and_reload_with_real_daemon(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    with Daemon(cfg_path) as daemon:
        app = create_app(cfg_path, resolver=SyncResolver(FakeResolver()))
        app.extensions["pillarbox"].relay_probe = relay_helpers.probe()  # relay on loopback
        client = app.test_client()
        complete_setup(client, config.load(cfg_path))
        body = client.get("/").get_data(as_text=True)
        assert re.search(r"Running (\(just started\)|for \d+ minutes?)\.", body)
        assert "Backups are off: no backup target is set up." in body  # backup_status
        assert "Empty: all outgoing mail is delivered." in body
        assert "Nothing is waiting" in client.get("/queue").get_data(as_text=True)
        r = post(
            client,
            "/dns/smarthost",
            {"host": "smtp.relay.example", "port": "587", "tls": "starttls", "action": "save"},
            form_page="/dns",
        )
        assert r.status_code == 302
        page = client.get("/dns").get_data(as_text=True)
        assert "Saved and applied." in page
        assert "reload=ok" in daemon.log()
