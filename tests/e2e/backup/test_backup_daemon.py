"""The backup service inside the real daemon, driven over the ctl socket."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from appliance import config
from appliance.accounts import Accounts
from appliance.backup.initialize import init_repository
from appliance.backup.store_lock import open_store
from appliance.ctl.client import CtlClient
from appliance.ctl.protocol import CtlError
from tests.e2e.backup.backup_box import message
from tests.harness import Daemon, write_config

USER = "dora@example.org"


def wait_idle(ctl: CtlClient, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st: dict[str, Any] = ctl.call("backup_status")
        if st["state"] == "idle" and st.get("last"):
            return st
        time.sleep(0.1)
    raise TimeoutError(f"backup still running: {st}")


def test_run_list_status_and_restore_over_ctl(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "box",
        backup={"target": "local", "path": str(tmp_path / "usb"), "schedule": "off"},
    )
    cfg = config.load(path)
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    acc.add_user(USER, "correct horse battery staple 7")
    acc.close()
    store = open_store(cfg.mail_dir)
    store.ensure_user(USER)
    for n in range(3):
        f = tmp_path / f"{n}.eml"
        f.write_bytes(message(n, USER))
        store.append(USER, "INBOX", f, flags=["\\Seen"] if n else [])
    init_repository(cfg)

    with Daemon(path) as d:
        ctl = CtlClient(cfg.ctl_socket)
        st = ctl.call("backup_status")
        assert st["target"] == "local" and st["state"] == "never"
        assert ctl.call("backup_run") == {"started": True}
        st = wait_idle(ctl)
        assert st["last"]["ok"], st
        snaps = ctl.call("backup_list")
        assert [s["short_id"] for s in snaps] == [st["last"]["snapshot_id"][:8]]
        assert "backup" in ctl.call("status")["services"]

        store.delete_messages(USER, "INBOX", [1])
        result = ctl.call("backup_restore", user=USER, wait=True)
        assert result["messages"] == 3
        restored = store.snapshot(USER, f"{result['destination']}/INBOX").messages
        assert [sorted(m.flags) for m in restored] == [[], ["\\Seen"], ["\\Seen"]]
        assert ctl.call("backup_status")["restore"]["state"] == "done"
        try:
            ctl.call("backup_restore", user="")
        except CtlError as exc:
            assert "needs a user" in str(exc)
        else:
            raise AssertionError("an empty user was accepted")
        assert d.proc is not None and d.proc.poll() is None
