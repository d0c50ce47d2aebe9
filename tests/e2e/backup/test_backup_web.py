"""The backup pages against the real daemon (ctl socket) and a real restic repository."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from appliance import config
from appliance.backup.initialize import init_repository
from appliance.backup.store_lock import open_store
from tests.e2e.backup.backup_box import message
from tests.harness import Daemon, write_config
from tests.web.web_helpers import ADMIN, complete_setup, post
from webui import create_app
from webui.backup import bp


def poll(client: FlaskClient, done: Any, limit: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        st: dict[str, Any] = client.get("/backup/status.json").get_json()
        if done(st):
            return st
        time.sleep(0.1)
    raise TimeoutError(f"status never reached the expected state: {st}")


def test_backup_pages(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "box",
        backup={"target": "local", "path": str(tmp_path / "usb"), "schedule": "off"},
    )
    cfg = config.load(path)
    app = create_app(path)
    app.testing = True
    if "backup" not in app.blueprints:  # until create_app registers it
        app.register_blueprint(bp)
    client = app.test_client()
    complete_setup(client, cfg)
    store = open_store(cfg.mail_dir)
    store.ensure_user(ADMIN)
    for n in range(2):
        f = tmp_path / f"{n}.eml"
        f.write_bytes(message(n, ADMIN))
        store.append(ADMIN, "INBOX", f, flags=["\\Seen"])
    pw = init_repository(cfg).password
    assert pw is not None

    with Daemon(path):
        page = client.get("/backup/").get_data(as_text=True)
        assert "Back up now" in page and "No snapshots yet" in page

        r = post(client, "/backup/run", {}, form_page="/backup/")
        assert r.status_code == 302
        st = poll(client, lambda s: s["state"] == "idle" and s.get("last"))
        assert st["last"]["ok"], st
        short = st["last"]["snapshot_id"][:8]
        page = client.get("/backup/").get_data(as_text=True)
        assert short in page and "saved snapshot" in page

        r = post(client, "/backup/restore", {"user": ADMIN, "snapshot": short}, "/backup/")
        assert r.status_code == 302
        st = poll(client, lambda s: s["restore"]["state"] in ("done", "failed"))
        assert st["restore"]["state"] == "done", st
        dest = st["restore"]["result"]["destination"]
        assert len(store.snapshot(ADMIN, f"{dest}/INBOX").messages) == 2

        r = post(client, "/backup/restore", {"user": "stranger@else.where"}, "/backup/")
        assert r.status_code == 302
        assert "Choose one of the mailboxes" in client.get("/backup/").get_data(as_text=True)

        sheet = client.get("/backup/recovery-sheet").get_data(as_text=True)
        assert pw in sheet and str(tmp_path / "usb") in sheet
        r = post(client, "/backup/recovery-sheet/ack", {}, "/backup/recovery-sheet")
        assert r.status_code == 302
        sheet = client.get("/backup/recovery-sheet").get_data(as_text=True)
        assert pw not in sheet and "Not shown any more" in sheet

    page = client.get("/backup/").get_data(as_text=True)
    assert "does not answer" in page
    assert client.get("/backup/status.json").status_code == 503


def test_backup_target_form_creates_the_repository(tmp_path: Path) -> None:
    """No target yet: the Backup page is the form (never "edit the config, run a
    command"); choosing the plugged-in USB disk saves [backup], the real daemon creates
    the restic repository, and the recovery sheet shows the new password."""
    import dataclasses

    from tests.web.web_helpers import SPARE, SYSTEM

    path = write_config(tmp_path / "box")
    cfg = config.load(path)
    mount = tmp_path / "media" / "usb"
    mount.mkdir(parents=True)
    usb = dataclasses.replace(SPARE, mountpoint=str(mount), fstype="ext4", uuid="u-2")
    app = create_app(path, disks=lambda: [SYSTEM, usb])
    app.testing = True
    client = app.test_client()
    complete_setup(client, cfg)
    with Daemon(path):
        page = client.get("/backup/").get_data(as_text=True)
        assert "Where should the backups go?" in page and "backup init" not in page
        assert str(mount / "pillarbox-backup") in page
        r = post(client, "/backup/target", {"kind": "sftp", "url": "nohost"}, "/backup/")
        assert r.status_code == 400 and "user@host:/path" in r.get_data(as_text=True)
        r = post(
            client,
            "/backup/target",
            {"kind": "local", "path": str(mount / "pillarbox-backup")},
            "/backup/",
        )
        assert r.status_code == 302 and r.location.endswith("/backup/recovery-sheet")
        assert config.load(path).backup.target == "local"
        assert (mount / "pillarbox-backup" / "config").is_file()  # restic's repository
        sheet = client.get("/backup/recovery-sheet").get_data(as_text=True)
        assert "sheet-password" in sheet and str(mount / "pillarbox-backup") in sheet
        page = client.get("/backup/").get_data(as_text=True)
        assert "Back up now" in page and "Change where backups go" in page
