"""Roundcube's config directory under ``[webmail] data``, written by :func:`prepare`.

Debian's roundcube reads its config directory from the environment variable
ROUNDCUBE_CONFIG_DIR (program/include/iniset.php) and loads defaults.inc.php from the same
directory, so php-fpm's pool sets that variable to ``<data>/config`` and nothing of
/etc/roundcube is used but the package's defaults and MIME table (symlinked). In
particular the des_key Debian generates at package install (it would ship, identical, in
every image) is never read: each box makes its own once, with :mod:`secrets`.

Layout under ``<data>``::

    config/config.inc.php   ours, rewritten on every prepare (0640)
    config/defaults.inc.php, config/mimetypes.php -> /etc/roundcube/...
    des_key                 the per-box secret (0600), made once
    roundcube.sqlite        the database; schema from the package on first run
    schema-version          the RCMAIL_VERSION the schema was last brought up to
    temp/, logs/            Roundcube's temp_dir and log_dir
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
import subprocess
from pathlib import Path

from appliance import atomicfile, config

log = logging.getLogger(__name__)

ROUNDCUBE_HOME = Path("/var/lib/roundcube")
PUBLIC_HTML = ROUNDCUBE_HOME / "public_html"
SHARE = Path("/usr/share/roundcube")
ETC = Path("/etc/roundcube")
INITIAL_SQL = SHARE / "SQL" / "sqlite.initial.sql"
UPDATEDB = SHARE / "bin" / "updatedb.sh"
INISET = SHARE / "program" / "include" / "iniset.php"
PLUGINS = ("managesieve", "archive", "markasjunk", "zipdownload")
# Folder names of the store (appliance.store.base.DEFAULT_FOLDERS): markasjunk moves to
# Junk, which the spam filter learns from; archive moves to Archive.
FOLDERS = {
    "drafts_mbox": "Drafts",
    "sent_mbox": "Sent",
    "trash_mbox": "Trash",
    "junk_mbox": "Junk",
    "archive_mbox": "Archive",
}
DES_KEY_CHARS = 24  # Roundcube's des_key: 24 characters (a 3DES-sized key)


class WebmailError(Exception):
    """Roundcube is missing or its data directory cannot be prepared."""


def installed() -> bool:
    """True when Debian's roundcube packages are installed."""
    return (PUBLIC_HTML / "index.php").is_file() and INITIAL_SQL.is_file()


def roundcube_version() -> str:
    """RCMAIL_VERSION of the installed Roundcube (e.g. "1.6.5")."""
    match = re.search(r"define\('RCMAIL_VERSION', '([^']+)'\)", INISET.read_text())
    if match is None:
        raise WebmailError(f"no RCMAIL_VERSION in {INISET}")
    return match.group(1)


def _php(value: object) -> str:
    """A PHP literal for a str, bool, int or a list/dict of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_php(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join(f"{_php(k)} => {_php(v)}" for k, v in value.items()) + "]"
    raise TypeError(f"no PHP literal for {value!r}")


def _port(addrs: tuple[config.Listen, ...], name: str) -> int:
    if not addrs:
        raise WebmailError(f"webmail needs listeners.{name}")
    return addrs[0].port


def roundcube_config_text(cfg: config.Config, des_key: str) -> str:
    """Our config.inc.php: every setting Roundcube needs on this box."""
    data = cfg.webmail.data
    ls = cfg.listeners
    # TLS to the daemon on loopback without certificate checks: the connection never
    # leaves the host, the box's certificate names the public host name (not 127.0.0.1)
    # and in dev and before ACME it is self-signed; whoever could intercept loopback
    # traffic already runs code on the box.
    no_verify = {"ssl": {"verify_peer": False, "verify_peer_name": False}}
    settings: dict[str, object] = {
        "des_key": des_key,
        "db_dsnw": f"sqlite:///{data / 'roundcube.sqlite'}?mode=0640",
        "temp_dir": f"{data / 'temp'}/",
        "log_dir": f"{data / 'logs'}/",
        "log_driver": "file",
        "imap_host": f"ssl://127.0.0.1:{_port(ls.imaps, 'imaps')}",
        "imap_conn_options": no_verify,
        "smtp_host": f"ssl://127.0.0.1:{_port(ls.submissions, 'submissions')}",
        "smtp_user": "%u",
        "smtp_pass": "%p",
        "smtp_conn_options": no_verify,
        # RFC 5804 1.7 via the managesieve plugin: "tls://" asks for STARTTLS.
        "managesieve_host": f"tls://127.0.0.1:{_port(ls.managesieve, 'managesieve')}",
        "managesieve_auth_type": "PLAIN",
        "managesieve_conn_options": no_verify,
        "managesieve_vacation": 1,  # Filters and a Vacation page
        "markasjunk_move_spam": True,
        "markasjunk_move_ham": True,
        # The store makes these folders for every user; Roundcube lists subscribed folders
        # only, so it subscribes them at a user's first login.
        "create_default_folders": True,
        "plugins": list(PLUGINS),
        "product_name": "Pillarbox webmail",
        "support_url": "/me",  # the user's own settings in the dashboard
        "skin": "elastic",
        "enable_spellcheck": False,
        "enable_installer": False,
        "x_frame_options": "sameorigin",
        "session_path": "/mail/",  # Roundcube's cookies stay out of the dashboard's way
        "max_message_size": f"{cfg.webmail.max_upload_mib}M",
        **FOLDERS,
    }
    lines = [
        "<?php",
        "// Written by Pillarbox (appliance.webmail) on every start: edits are lost.",
        "$config = [];",
    ]
    lines += [f"$config[{_php(k)}] = {_php(v)};" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def _des_key(path: Path) -> str:
    """The per-box key, made once (0600)."""
    try:
        key = path.read_text().strip()
        if len(key) == DES_KEY_CHARS:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)[:DES_KEY_CHARS]
    atomicfile.write_text(path, key + "\n", mode=0o600)
    log.info("webmail=des-key-created path=%s", path)
    return key


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    tmp = link.with_name(link.name + ".tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


def _database(data: Path, version: str, env: dict[str, str]) -> None:
    """Create the schema on first run; bring it up to date when Roundcube changed."""
    db = data / "roundcube.sqlite"
    stamp = data / "schema-version"
    if not db.exists():
        tmp = db.with_name(db.name + ".new")
        tmp.unlink(missing_ok=True)
        with sqlite3.connect(tmp) as conn:
            conn.executescript(INITIAL_SQL.read_text())
        conn.close()
        tmp.chmod(0o640)
        tmp.replace(db)
        atomicfile.write_text(stamp, version + "\n")
        log.info("webmail=database-created path=%s version=%s", db, version)
        return
    try:
        done = stamp.read_text().strip()
    except FileNotFoundError:
        done = ""
    if done == version:
        return
    # Roundcube's own updater applies SQL/sqlite/<date>.sql newer than the database.
    result = subprocess.run(
        ["php", str(UPDATEDB), "--package=roundcube", f"--dir={SHARE / 'SQL'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise WebmailError(f"updatedb.sh failed: {result.stderr.strip() or result.stdout.strip()}")
    atomicfile.write_text(stamp, version + "\n")
    log.info("webmail=database-updated from=%s to=%s", done or "?", version)


def prepare(cfg: config.Config) -> Path:
    """Write Roundcube's config directory for ``cfg``; returns it (ROUNDCUBE_CONFIG_DIR)."""
    if not installed():
        raise WebmailError(f"Roundcube is not installed ({PUBLIC_HTML} is missing)")
    data = cfg.webmail.data
    confdir = data / "config"
    for d in (data, confdir, data / "temp", data / "logs"):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o750)
    key = _des_key(data / "des_key")
    text = roundcube_config_text(cfg, key)
    atomicfile.write_text(confdir / "config.inc.php", text, mode=0o640)
    _link(confdir / "defaults.inc.php", ETC / "defaults.inc.php")
    _link(confdir / "mimetypes.php", ETC / "mimetypes.php")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ROUNDCUBE_CONFIG_DIR": str(confdir)}
    _database(data, roundcube_version(), env)
    return confdir
