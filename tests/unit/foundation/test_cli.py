from __future__ import annotations

from pathlib import Path

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
    assert "alice@example.org" in listing and str(1024**3) in listing
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
