"""appliance.webmail: Roundcube's data directory (a per-box key made once, never Debian's;
the SQLite schema from the package, upgraded by Roundcube's own updatedb.sh), php-fpm's
config, and `python -m appliance.webmail enabled` for the box's systemd ExecCondition."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import config
from appliance.webmail import fpm_config_text, installed, max_children, prepare
from appliance.webmail.fpm import GiB
from tests.harness import REPO, write_config

needs_roundcube = pytest.mark.skipif(not installed(), reason="Roundcube is not installed")
DEBIAN_CONFIG = Path("/etc/roundcube/config.inc.php")


def _cfg(tmp_path: Path, **webmail: object) -> config.Config:
    return config.load(write_config(tmp_path, webmail={"enabled": True, **webmail}))


@needs_roundcube
def test_prepare_makes_a_key_once_and_the_schema(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    confdir = prepare(cfg)
    data = cfg.webmail.data
    key = (data / "des_key").read_text().strip()
    assert len(key) == 24
    assert (data / "des_key").stat().st_mode & 0o777 == 0o600
    text = (confdir / "config.inc.php").read_text()
    assert (confdir / "config.inc.php").stat().st_mode & 0o777 == 0o640
    assert f"$config['des_key'] = '{key}';" in text
    if DEBIAN_CONFIG.exists():
        debian = re.search(r"des_key'\] = '([^']*)'", DEBIAN_CONFIG.read_text())
        assert debian is None or debian.group(1) != key
    ls = cfg.listeners
    assert f"$config['imap_host'] = 'ssl://127.0.0.1:{ls.imaps[0].port}';" in text
    assert f"$config['smtp_host'] = 'ssl://127.0.0.1:{ls.submissions[0].port}';" in text
    assert f"'tls://127.0.0.1:{ls.managesieve[0].port}'" in text
    assert "$config['junk_mbox'] = 'Junk';" in text
    assert "$config['plugins'] = ['managesieve', 'archive', 'markasjunk', 'zipdownload'];" in text
    assert (confdir / "defaults.inc.php").resolve() == Path("/etc/roundcube/defaults.inc.php")
    with sqlite3.connect(data / "roundcube.sqlite") as db:
        version = db.execute("SELECT value FROM system WHERE name = 'roundcube-version'")
        assert version.fetchone() is not None
    # a second start keeps the key and the database
    db_inode = (data / "roundcube.sqlite").stat().st_ino
    prepare(cfg)
    assert (data / "des_key").read_text().strip() == key
    assert (data / "roundcube.sqlite").stat().st_ino == db_inode


@needs_roundcube
def test_a_new_roundcube_version_runs_its_updater(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    prepare(cfg)
    stamp = cfg.webmail.data / "schema-version"
    current = stamp.read_text()
    stamp.write_text("1.5.0\n")  # as if the package was upgraded since
    prepare(cfg)  # updatedb.sh runs (php): nothing to apply, the stamp moves on
    assert stamp.read_text() == current


def test_php_fpm_config(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, max_children=3, max_upload_mib=10)
    text = fpm_config_text(cfg, cfg.webmail.data / "config")
    assert f"listen = {cfg.webmail.fpm_socket}\n" in text
    assert cfg.webmail.fpm_socket == cfg.data_dir / "run" / "webmail-fpm.sock"  # dev default
    assert "listen.mode = 0660\n" in text and "pm = ondemand\n" in text
    assert "pm.max_children = 3\n" in text
    assert f"env[ROUNDCUBE_CONFIG_DIR] = {cfg.webmail.data / 'config'}\n" in text
    assert "security.limit_extensions = .php\n" in text
    assert "php_admin_value[upload_max_filesize] = 10M\n" in text
    assert "open_basedir" in text and str(cfg.webmail.data) in text


@pytest.mark.parametrize(
    ("ram", "children"), [(512 << 20, 2), (1 * GiB, 4), (2 * GiB, 6), (16 * GiB, 10)]
)
def test_children_sized_by_ram(tmp_path: Path, ram: int, children: int) -> None:
    assert max_children(_cfg(tmp_path), ram=ram) == children


def _enabled(cfg_path: Path) -> int:
    return subprocess.run(
        [sys.executable, "-m", "appliance.webmail", "enabled", "--config", str(cfg_path)],
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    ).returncode


@needs_roundcube
def test_enabled_exit_status(tmp_path: Path) -> None:
    assert _enabled(write_config(tmp_path / "on", webmail={"enabled": True})) == 0
    assert _enabled(write_config(tmp_path / "off", webmail={"enabled": False})) == 1
