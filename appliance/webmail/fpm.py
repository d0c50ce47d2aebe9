"""The php-fpm master config for Roundcube: one pool, started on demand.

php-fpm runs in the foreground (``-F``) as whoever starts it: in dev mode the developer
(appliance.devrun starts it as a child), on the box a systemd service under its own user.
Its pid file and logs live under ``[webmail] data``; its one pool listens on
``[webmail] fpm_socket`` with mode 0660, so only its user and group (the web front's)
may connect. Children come and go with the load (pm = ondemand), at most
:func:`max_children`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from appliance import atomicfile, config
from appliance.webmail.roundcube import ETC, ROUNDCUBE_HOME, SHARE

MiB = 1024 * 1024
GiB = 1024 * MiB
FPM_NAMES = ("php-fpm8.2", "php-fpm")
FPM_DIRS = ("/usr/sbin", "/usr/local/sbin")
# (RAM at least, children): a busy child is about 27 MB RSS, 5 MB of its own beside the
# pages it shares with the master (bench/README.md, Webmail).
_CHILDREN_BY_RAM = ((4 * GiB, 10), (2 * GiB, 6), (1 * GiB, 4), (0, 2))
# Hardware sizing turns webmail on from this much RAM (bench/README.md, Webmail: php-fpm
# with 3 busy users holds about 170 MB RSS summed, 41 MB PSS; below 1 GB the mail service
# and its filters need the memory more).
WEBMAIL_MIN_RAM = 1 * GiB
IDLE_SECONDS = 30  # an idle child exits after this long (pm.process_idle_timeout)
MAX_REQUESTS = 500  # a child is replaced after this many requests (bounds PHP leaks)
PHP_MEMORY_MIB = 128  # memory_limit of one request


def fpm_binary() -> Path | None:
    """php-fpm's path (it lives in /usr/sbin, often not on a user's PATH), or None."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *FPM_DIRS])
    for name in FPM_NAMES:
        found = shutil.which(name, path=search)
        if found:
            return Path(found)
    return None


def _ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def ram_allows_webmail(ram: int | None = None) -> bool:
    """Hardware sizing's answer: webmail on when the box has WEBMAIL_MIN_RAM or more."""
    return (_ram() if ram is None else ram) >= WEBMAIL_MIN_RAM


def max_children(cfg: config.Config, ram: int | None = None) -> int:
    """``[webmail] max_children``, or when 0 a count sized by the box's RAM."""
    if cfg.webmail.max_children:
        return cfg.webmail.max_children
    total = _ram() if ram is None else ram
    return next(n for floor, n in _CHILDREN_BY_RAM if total >= floor)


def fpm_config_text(cfg: config.Config, confdir: Path) -> str:
    """php-fpm's master config (global section and the ``webmail`` pool)."""
    w = cfg.webmail
    data = w.data
    upload = w.max_upload_mib
    # PHP may open only Roundcube, its Debian libraries and our data directory.
    basedir = ":".join(f"{p}/" for p in (ROUNDCUBE_HOME, SHARE, ETC, Path("/usr/share/php"), data))
    return f"""; Written by Pillarbox (appliance.webmail.fpm) on every start: edits are lost.
[global]
pid = {data / "run" / "php-fpm.pid"}
error_log = {data / "logs" / "php-fpm.log"}
daemonize = no

[webmail]
listen = {w.fpm_socket}
listen.mode = 0660
pm = ondemand
pm.max_children = {max_children(cfg)}
pm.process_idle_timeout = {IDLE_SECONDS}s
pm.max_requests = {MAX_REQUESTS}
request_terminate_timeout = {w.request_timeout}s
clear_env = yes
env[ROUNDCUBE_CONFIG_DIR] = {confdir}
env[PATH] = /usr/bin:/bin
env[TMPDIR] = {data / "temp"}
security.limit_extensions = .php
catch_workers_output = yes
php_admin_value[open_basedir] = {basedir}
php_admin_value[upload_max_filesize] = {upload}M
php_admin_value[post_max_size] = {upload + 1}M
php_admin_value[memory_limit] = {PHP_MEMORY_MIB}M
php_admin_value[upload_tmp_dir] = {data / "temp"}
php_admin_value[sys_temp_dir] = {data / "temp"}
php_admin_value[error_log] = {data / "logs" / "php-error.log"}
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
php_admin_flag[expose_php] = off
php_admin_flag[allow_url_fopen] = off
"""


def write_fpm_config(cfg: config.Config, confdir: Path) -> Path:
    """Write ``<data>/php-fpm.conf`` and make the socket's and pid's directories."""
    (cfg.webmail.data / "run").mkdir(parents=True, exist_ok=True)
    cfg.webmail.fpm_socket.parent.mkdir(parents=True, exist_ok=True)
    path = cfg.webmail.data / "php-fpm.conf"
    atomicfile.write_text(path, fpm_config_text(cfg, confdir), mode=0o640)
    return path


def fpm_command(binary: Path, conf: Path) -> list[str]:
    """php-fpm in the foreground. As root (a dev container, CI) it needs -R to run the
    pool as the current user; the box runs it under its own user."""
    root = ["-R"] if os.geteuid() == 0 else []
    return [str(binary), "-F", "-y", str(conf), *root]
