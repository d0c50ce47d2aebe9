"""Build the staging tree that one restic snapshot is made of.

Layout of the tree (and so of every snapshot, restic sees it from its root)::

    manifest.json          what is in it, from which box, when
    accounts.sqlite        users, aliases, domains: SQLite's online backup API
    config/pillarbox.toml  the config file the box ran with
    dkim/...               the DKIM signing keys (config.dkim_dir)
    tls/cert.pem, key.pem  the certificate and its key
    queue/msg, queue/meta  the outbound spool (entries complete on both sides only)
    sieve/<user>.scripts/  users' Sieve scripts and active pointer (filters.sieve_store)
    smarthost/<n>          the password file of smarthost number n, if it has one
    mail/<domain>/<local>  every user's Maildir++ tree, index and uidlist files included

Mail is staged per user while holding that user's store lock, so the message files, the
flags in their names and the index/uidlist that maps them to IMAP UIDs come from the
same instant. Message files under ``cur/`` and ``new/`` never change once written (a flag
change is a rename), so they are hard-linked into the staging tree (a copy when the
staging tree is on another filesystem); everything else (index, uidlist, keywords,
subscriptions) is copied, the per-user SQLite index through SQLite's online backup
API. ``tmp/`` holds deliveries in flight and is skipped, and so are lock files.

The staging tree lives inside mail_dir (``.pillarbox-backup``; dot names are never
domains) so hard links work when mail is on an attached disk. It is removed afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance import __version__
from appliance.config import Config

log = logging.getLogger(__name__)

FORMAT = 1
STAGING_NAME = ".pillarbox-backup"
MESSAGE_DIRS = frozenset({"cur", "new"})
SKIP_DIRS = frozenset({"tmp", "pillarbox-locks"})
SQLITE_SIDE_FILES = (".sqlite-wal", ".sqlite-shm", ".sqlite-journal")
# Top-level entries of a snapshot, in the order restic is given them.
ENTRIES = (
    "manifest.json",
    "accounts.sqlite",
    "config",
    "dkim",
    "tls",
    "queue",
    "sieve",
    "smarthost",
    "mail",
)
SIEVE_DIR = "sieve"  # under data_dir, see appliance.filters.setup

UserLock = Callable[[str], AbstractContextManager[object]]


class AccountsBackup(Protocol):
    def backup_to(self, target: Path) -> None: ...


@dataclass(frozen=True)
class Staged:
    root: Path
    users: tuple[str, ...]
    messages: int
    linked: int
    copied: int

    def entries(self) -> list[str]:
        return [e for e in ENTRIES if (self.root / e).exists()]


def staging_dir(cfg: Config) -> Path:
    return cfg.mail_dir / STAGING_NAME


def user_dirs(mail_dir: Path) -> Iterator[tuple[str, Path]]:
    """(user address, Maildir) for every user directory under mail_dir/<domain>/<local>."""
    if not mail_dir.is_dir():
        return
    for domain in sorted(mail_dir.iterdir()):
        if domain.name.startswith(".") or not domain.is_dir():
            continue
        for local in sorted(domain.iterdir()):
            if local.name.startswith(".") or not local.is_dir():
                continue
            yield f"{local.name}@{domain.name}", local


class _Counter:
    def __init__(self) -> None:
        self.linked = 0
        self.copied = 0
        self.messages = 0
        self.cross_device = False


def _link_or_copy(src: Path, dst: Path, counter: _Counter) -> None:
    if not counter.cross_device:
        try:
            os.link(src, dst)
            counter.linked += 1
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            counter.cross_device = True
    shutil.copy2(src, dst)
    counter.copied += 1


def _sqlite_copy(src: Path, dst: Path) -> None:
    """The store's per-user index (SQLite, WAL) through the online backup API."""
    source = sqlite3.connect(src, timeout=30)
    try:
        dest = sqlite3.connect(dst)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()


def _stage_maildir(src: Path, dst: Path, counter: _Counter) -> None:
    """Mirror one user's Maildir++ tree: link messages, copy the rest, skip tmp/."""
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        rel = here.relative_to(src)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        target = dst / rel
        target.mkdir(parents=True, exist_ok=True)
        is_messages = here.name in MESSAGE_DIRS
        for name in sorted(filenames):
            s = here / name
            if name.endswith(SQLITE_SIDE_FILES):
                continue  # the online backup below carries what the WAL holds
            try:
                if is_messages:
                    _link_or_copy(s, target / name, counter)
                    counter.messages += 1
                elif name.endswith(".sqlite"):
                    _sqlite_copy(s, target / name)
                    counter.copied += 1
                else:
                    shutil.copy2(s, target / name)
                    counter.copied += 1
            except FileNotFoundError:
                # Only without a store lock (plain Maildir): a file renamed under us.
                log.warning("backup=stage-vanished path=%s", s)


def _copy_tree(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> int:
    count = 0
    if not src.is_dir():
        return 0
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        target = dst / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                shutil.copy2(here / name, target / name)
                count += 1
    return count


def _stage_queue(queue_dir: Path, dst: Path) -> int:
    """The spool's msg/ and meta/; a meta without its message (mid-commit) is dropped."""
    _copy_tree(queue_dir, dst, skip=frozenset({"tmp"}))
    meta = dst / "meta"
    msg = dst / "msg"
    kept = 0
    if meta.is_dir():
        for m in meta.glob("*.json"):
            if not (msg / (m.stem + ".eml")).exists():
                m.unlink()
            else:
                kept += 1
    return kept


def _gone_is_fine(func: Callable[..., object], path: str, exc_info: Any) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def remove_tree(path: Path) -> None:
    """Remove a staging or scratch tree; files vanishing meanwhile (SQLite side files
    removed at close) are not an error."""
    if path.exists():
        shutil.rmtree(path, onerror=_gone_is_fine)


def build(
    cfg: Config,
    accounts: AccountsBackup,
    *,
    user_lock: UserLock | None = None,
    clock: Callable[[], float] = time.time,
) -> Staged:
    """Create a fresh staging tree for ``cfg``; the caller removes it (:func:`remove_tree`)."""
    root = staging_dir(cfg)
    remove_tree(root)
    root.mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    lock = user_lock or (lambda _user: nullcontext())

    accounts.backup_to(root / "accounts.sqlite")

    if cfg.source is not None and cfg.source.is_file():
        (root / "config").mkdir()
        shutil.copy2(cfg.source, root / "config" / cfg.source.name)

    _copy_tree(cfg.dkim_dir, root / "dkim")

    tls_files: dict[str, bool] = {}
    (root / "tls").mkdir()
    for name, path in (("cert.pem", cfg.tls.cert), ("key.pem", cfg.tls.key)):
        tls_files[name] = path.is_file()
        if path.is_file():
            shutil.copy2(path, root / "tls" / name)

    queued = _stage_queue(cfg.queue_dir, root / "queue")
    _copy_tree(cfg.data_dir / SIEVE_DIR, root / "sieve")
    for i, host in enumerate(cfg.smarthosts):
        if host.password_file is not None and host.password_file.is_file():
            (root / "smarthost").mkdir(exist_ok=True)
            shutil.copy2(host.password_file, root / "smarthost" / str(i))

    counter = _Counter()
    users: list[str] = []
    (root / "mail").mkdir()
    for user, maildir in user_dirs(cfg.mail_dir):
        rel = maildir.relative_to(cfg.mail_dir)
        with lock(user):
            _stage_maildir(maildir, root / "mail" / rel, counter)
        users.append(user)

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "pillarbox_version": __version__,
        "hostname": cfg.hostname,
        "node": socket.gethostname(),
        "created": clock(),
        "config_name": cfg.source.name if cfg.source is not None else None,
        "users": users,
        "messages": counter.messages,
        "queued": queued,
        "tls": tls_files,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info(
        "backup=staged users=%s messages=%s linked=%s copied=%s",
        len(users),
        counter.messages,
        counter.linked,
        counter.copied,
    )
    return Staged(root, tuple(users), counter.messages, counter.linked, counter.copied)
