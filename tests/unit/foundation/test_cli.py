from __future__ import annotations

from pathlib import Path

import pytest

from tests.addresses import REFUSED
from tests.harness import pillarbox, write_config


def test_help_everywhere() -> None:
    for args in (
        ["--help"],
        ["user", "--help"],
        ["user", "add", "--help"],
        ["alias", "--help"],
        ["domain", "--help"],
        ["config", "--help"],
        ["status", "--help"],
    ):
        r = pillarbox(*args)
        assert r.returncode == 0
        assert "usage: pillarbox" in r.stdout


def test_user_alias_domain_lifecycle(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    assert pillarbox("domain", "add", "example.org", "-c", cfg).stdout == (
        "added domain example.org\n"
    )
    r = pillarbox(
        "user",
        "add",
        "alice@example.org",
        "--quota",
        "1G",
        "--password-stdin",
        "-c",
        cfg,
        input="a long password\n",
    )
    assert r.stdout == "added user alice@example.org\n"
    listing = pillarbox("user", "list", "-c", cfg).stdout
    assert "alice@example.org" in listing and "1 GiB" in listing  # quotas in units
    pillarbox(
        "alias", "add", "info@example.org", "alice@example.org", "bob@else.example", "-c", cfg
    )
    aliases = pillarbox("alias", "list", "-c", cfg).stdout
    assert "info@example.org  alice@example.org" in aliases
    assert "bob@else.example" in aliases
    pillarbox(
        "user",
        "passwd",
        "alice@example.org",
        "--password-stdin",
        "-c",
        cfg,
        input="another long password\n",
    )
    from appliance.accounts import Accounts
    from appliance.config import load

    acc = Accounts(load(Path(cfg)).accounts_db)
    assert acc.authenticate("alice@example.org", "another long password") is not None
    assert pillarbox("alias", "del", "info@example.org", "-c", cfg).stdout.startswith(
        "removed 2 alias entries"
    )
    pillarbox("user", "del", "alice@example.org", "-c", cfg)
    assert "alice" not in pillarbox("user", "list", "-c", cfg).stdout


def test_clear_errors_and_exit_codes(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    r = pillarbox(
        "user",
        "add",
        "bob@nowhere.example",
        "--password-stdin",
        "-c",
        cfg,
        input="a long password\n",
        check=False,
    )
    assert r.returncode == 1
    assert r.stderr == "pillarbox: domain nowhere.example is not served here; add it first\n"
    pillarbox("domain", "add", "example.org", "-c", cfg)
    r = pillarbox(
        "user",
        "add",
        "bob@example.org",
        "--password-stdin",
        "-c",
        cfg,
        input="short\n",
        check=False,
    )
    assert r.returncode == 1 and "at least 8 characters" in r.stderr
    r = pillarbox("user", "add", "bob@example.org", "--quota", "lots", "-c", cfg, check=False)
    assert r.returncode == 2 and "not a size" in r.stderr
    r = pillarbox("frobnicate", check=False)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = pillarbox("status", "-c", cfg, check=False)
    assert r.returncode == 1 and "the daemon is not running" in r.stderr


def test_config_check(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    r = pillarbox("config", "check", "-c", str(cfg))
    assert r.returncode == 0 and "ok" in r.stdout
    cfg.write_text(cfg.read_text() + "\n[queue]\nmax_age = 5\n")
    r = pillarbox("config", "check", "-c", str(cfg), check=False)
    assert r.returncode == 1
    assert "queue.max_age: must be an integer >= 60" in r.stderr


@pytest.mark.slow
def test_user_and_alias_add_refuse_what_smtp_refuses(tmp_path: Path) -> None:
    """One validator: `bad@@d`, `.dot@d`, `trailing.@d` ... are refused, nothing created."""
    cfg = str(write_config(tmp_path))
    pillarbox("domain", "add", "example.org", "-c", cfg)
    for local in REFUSED:
        r = pillarbox(
            "user",
            "add",
            f"{local}@example.org",
            "--password-stdin",
            "-c",
            cfg,
            input="a long password\n",
            check=False,
        )
        assert r.returncode == 1, local
        assert "not allowed as a mailbox name" in r.stderr, (local, r.stderr)
        r = pillarbox(
            "alias", "add", f"{local}@example.org", "x@else.example", "-c", cfg, check=False
        )
        assert r.returncode == 1 and "not allowed as a mailbox name" in r.stderr, local
    assert pillarbox("user", "list", "-c", cfg).stdout.splitlines()[1:] == []
    assert pillarbox("alias", "list", "-c", cfg).stdout.splitlines()[1:] == []


def test_dns_prints_every_record_as_zone_text(tmp_path: Path) -> None:
    """`pillarbox dns`: the DNS page's records (not only DKIM) as zone text dnspython
    parses, the RSA DKIM value split into strings of at most 255 octets."""
    from appliance.config import load
    from tests.zonecheck import check_zone

    cfg = write_config(tmp_path)
    pillarbox("domain", "add", "example.org", "-c", str(cfg))
    pillarbox("domain", "add", "example.net", "-c", str(cfg))
    out = pillarbox("dns", "-c", str(cfg)).stdout
    assert out.count("$TTL") == 2
    first, second = out.split("\n\n")
    assert check_zone(first, load(cfg), "example.net") >= 10
    assert check_zone(second, load(cfg), "example.org") >= 10
    one = pillarbox("dns", "--domain", "example.org", "-c", str(cfg)).stdout
    assert one == second


def test_user_list_quota_units_and_a_role_for_everyone(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    pillarbox("domain", "add", "example.org", "-c", cfg)
    for email, extra in (
        ("alice@example.org", ["--quota", "1G"]),
        ("bob@example.org", ["--quota", "0", "--admin"]),
        ("carol@example.org", ["--quota", "1536M"]),
        ("dave@example.org", ["--quota", "100"]),
    ):
        pillarbox(
            "user", "add", email, *extra, "--password-stdin", "-c", cfg, input="a long password\n"
        )
    lines = pillarbox("user", "list", "-c", cfg).stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "QUOTA", "ROLE", "STATE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["alice@example.org"].split()[1:] == ["1", "GiB", "user"]
    assert rows["bob@example.org"].split()[1:] == ["unlimited", "admin"]
    assert rows["carol@example.org"].split()[1:] == ["1.5", "GiB", "user"]
    assert rows["dave@example.org"].split()[1:] == ["100", "B", "user"]
    r = pillarbox("user", "quota", "alice@example.org", "500M", "-c", cfg)
    assert r.stdout == "quota for alice@example.org: 500 MiB\n"


def test_missing_config_lists_every_place_searched(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from appliance.cliconfig import APPLIANCE_CONFIG
    from tests.harness import REPO

    if APPLIANCE_CONFIG.exists():
        pytest.skip("this machine has an appliance config")
    env = {k: v for k, v in os.environ.items() if k != "PILLARBOX_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "user", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 1
    assert "no config file found" in r.stderr
    assert f"{APPLIANCE_CONFIG} (the appliance)" in r.stderr
    assert f"{tmp_path / 'var' / 'pillarbox.toml'} (dev mode" in r.stderr
    assert "$PILLARBOX_CONFIG" in r.stderr
    env["PILLARBOX_CONFIG"] = str(tmp_path / "elsewhere.toml")
    r = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "user", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert f"{tmp_path / 'elsewhere.toml'} ($PILLARBOX_CONFIG)" in r.stderr
    r = pillarbox("user", "list", "-c", str(tmp_path / "nope.toml"), check=False)
    assert f"{tmp_path / 'nope.toml'} (--config)" in r.stderr


def test_status_for_people_and_json_for_scripts(tmp_path: Path) -> None:
    import json

    from tests.harness import Daemon

    cfg = write_config(tmp_path)
    with Daemon(cfg) as d:
        text = pillarbox("status", "-c", str(cfg)).stdout
        raw = json.loads(pillarbox("status", "--json", "-c", str(cfg)).stdout)
    host, port = d.addr("smtp")
    assert text.startswith("Pillarbox ") and "running for " in text
    assert "incoming mail (SMTP)" in text and f"{host}:{port}" in text
    assert "Outgoing queue:    empty" in text
    assert "Backup:            no target set up" in text
    for raw_syntax in ("{", "[", "=", "True", "None", "'"):
        assert raw_syntax not in text, raw_syntax
    assert set(raw) == {"version", "hostname", "uptime", "services"}
    assert raw["services"]["queue"]["size"] == 0
    assert raw["services"]["smtp"]["listeners"]["smtp"] == [f"{host}:{port}"]
