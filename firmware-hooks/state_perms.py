"""Owners and modes of what the web UI trusts in /var/lib/pillarbox (privilege separation).

Run as root before the mail daemon and the web UI start (``ExecStartPre=+`` in both
units) and at the end of first boot. Stdlib only.

The mail daemon (user ``pillarbox``) faces the internet; the web UI
(``pillarbox-web``) holds the admin session key, writes the accounts and reaches the
root helper. A daemon compromise must not become a web one, so:

- the state directory is ``root:pillarbox 3770``: both services create files in it
  (group ``pillarbox``, setgid), and the sticky bit stops either from removing or
  renaming the other's files (a directory *owner* may, hence root owns it);
- ``accounts.sqlite`` and its ``-wal``/``-shm`` are ``pillarbox-web:pillarbox 0640``:
  the daemon reads them (it opens the database ``mode=ro``), only the web UI writes;
  the ``-wal``/``-shm`` are created empty if missing, because a read-only SQLite reader
  cannot create them (SQLite >= 3.22 reads a WAL database read-only when they exist);
- ``web-session-key``, ``setup-secret`` and ``web.sqlite`` (+ ``-wal``/``-shm``: web
  sessions, second factors) are ``pillarbox-web`` ``0600``.

A file the web UI trusts that belongs to another non-root user was planted (or left by
a release before this separation): it is moved aside as ``<name>.foreign-<time>``, and
the web UI makes a fresh one. The one exception is ``accounts.sqlite`` itself: owned by
``pillarbox`` is the layout of earlier releases and is handed over once; the daemon can
no longer replace it after that. Root-owned files (the CLI, a restore) are handed over.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import stat
import sys
import time
from pathlib import Path

ACCOUNTS = "accounts.sqlite"
SIDE_SUFFIXES = ("-wal", "-shm")
# web.sqlite: server-side web sessions and admins' second factors (webui/webdb.py).
WEB_SECRETS = (
    "web-session-key",
    "setup-secret",
    "web.sqlite",
    "web.sqlite-wal",
    "web.sqlite-shm",
)
DIR_MODE = 0o3770
ACCOUNTS_MODE = 0o640
SECRET_MODE = 0o600


def _say(msg: str) -> None:
    print(f"pillarbox-state-perms: {msg}", file=sys.stderr)


def _move_aside(path: Path, why: str) -> None:
    target = path.with_name(f"{path.name}.foreign-{int(time.time())}")
    os.rename(path, target)
    _say(f"moved {path} aside to {target.name}: {why}")


def _owned(path: Path, web_uid: int, *, legacy_uid: int | None = None) -> bool:
    """True if ``path`` is (now) a regular file of the web user; False if absent or moved."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        _move_aside(path, "not a regular file")
        return False
    if st.st_uid == web_uid:
        return True
    if st.st_uid == 0 or (legacy_uid is not None and st.st_uid == legacy_uid):
        os.chown(path, web_uid, -1, follow_symlinks=False)
        return True
    _move_aside(path, f"owned by uid {st.st_uid}, not the web UI")
    return False


def fix(state: Path, *, web_uid: int, web_gid: int, group_gid: int, daemon_uid: int) -> None:
    os.chown(state, 0, group_gid, follow_symlinks=False)
    os.chmod(state, DIR_MODE)
    db = state / ACCOUNTS
    if _owned(db, web_uid, legacy_uid=daemon_uid):
        os.chown(db, web_uid, group_gid, follow_symlinks=False)
        os.chmod(db, ACCOUNTS_MODE)
        for suffix in SIDE_SUFFIXES:
            side = state / (ACCOUNTS + suffix)
            if not _owned(side, web_uid):
                fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                os.close(fd)
            os.chown(side, web_uid, group_gid, follow_symlinks=False)
            os.chmod(side, ACCOUNTS_MODE)
    for name in WEB_SECRETS:
        path = state / name
        if _owned(path, web_uid):
            os.chown(path, web_uid, web_gid, follow_symlinks=False)
            os.chmod(path, SECRET_MODE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--state", type=Path, default=Path("/var/lib/pillarbox"))
    parser.add_argument("--web-user", default="pillarbox-web")
    parser.add_argument("--daemon-user", default="pillarbox")
    parser.add_argument("--group", default="pillarbox")
    args = parser.parse_args(argv)
    web = pwd.getpwnam(args.web_user)
    fix(
        args.state,
        web_uid=web.pw_uid,
        web_gid=web.pw_gid,
        group_gid=grp.getgrnam(args.group).gr_gid,
        daemon_uid=pwd.getpwnam(args.daemon_user).pw_uid,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
