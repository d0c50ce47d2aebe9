"""`pillarbox backup ...` through the real argparse CLI (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance import cli, config
from appliance.accounts import Accounts
from appliance.backup.store_lock import open_store

USER = "erin@example.org"


def test_backup_command_is_registered() -> None:
    assert "appliance.backup.cli" in cli.CLI_MODULES
    assert "backup" in cli.build_parser().format_help()


def run(cfg: config.Config, *args: str) -> int:
    assert cfg.source is not None
    return cli.main(["backup", *args, "--config", str(cfg.source)])


def test_cli_round_trip(
    cfg: config.Config, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    acc.add_user(USER, "correct horse battery staple 3")
    store = open_store(cfg.mail_dir)
    store.ensure_user(USER)
    f = tmp_path / "m.eml"
    f.write_bytes(b"Subject: hi\r\n\r\nhello\r\n")
    store.append(USER, "INBOX", f, flags=["\\Flagged"])

    assert run(cfg, "run") == 1
    assert "backup init" in capsys.readouterr().err

    assert run(cfg, "init") == 0
    out = capsys.readouterr().out
    assert cfg.backup.password_file is not None
    pw = cfg.backup.password_file.read_text().strip()
    assert pw in out and "recovery sheet" in out

    assert run(cfg, "run", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["snapshot_id"]

    assert run(cfg, "run", "--scheduled") == 0  # the timer's next tick: nothing owed
    assert "nothing to do" in capsys.readouterr().out

    assert run(cfg, "list", "--json") == 0
    snaps = json.loads(capsys.readouterr().out)
    assert [s["short_id"] for s in snaps] == [result["snapshot_id"][:8]]

    assert run(cfg, "status") == 0
    assert result["snapshot_id"][:8] in capsys.readouterr().out

    assert run(cfg, "check") == 0
    assert "check passed" in capsys.readouterr().out

    assert run(cfg, "restore", "--user", USER, "--json") == 0
    restored = json.loads(capsys.readouterr().out)
    assert restored["mailboxes"]["INBOX"] == 1
    (m,) = store.snapshot(USER, restored["destination"] + "/INBOX").messages
    assert m.flags == frozenset({"\\Flagged"})

    assert run(cfg, "restore", "--all") == 1
    assert "already has users" in capsys.readouterr().err


def test_scheduled_run_is_a_no_op_when_the_schedule_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.harness import write_config

    path = write_config(
        tmp_path / "b", backup={"target": "local", "path": "usb", "schedule": "off"}
    )
    assert cli.main(["backup", "run", "--scheduled", "--config", str(path)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    path = write_config(tmp_path / "c")
    assert cli.main(["backup", "list", "--config", str(path)]) == 1
    assert "no backup target" in capsys.readouterr().err
