"""Restores: the whole box (disaster recovery) and one user's mail into the live store.

Whole box (``restore_box``): only while the daemon is stopped, into a fresh box (no users
in the accounts database, no Maildirs) unless ``force``. The snapshot is restored next
to the mail (``mail_dir/.pillarbox-restore``) and each piece is moved into the place the
*current* config names: accounts database, every Maildir exactly as backed up (message
files with their flags, index, uidlist and UIDVALIDITY files, so IMAP UIDs are unchanged),
DKIM keys, certificate and key, outbound queue, Sieve scripts, smarthost password files
and, unless ``keep_config``, the config file. Anything already there is moved aside to
``<name>.pre-restore-<time>``, never deleted.

One user (``restore_mailbox``): never overwrites or changes live mail. The user's tree
is restored to a scratch directory, read with the store's own code, and every message
is *appended* through the live store (its locking, new UIDs in the destination) under
``Restored/<snapshot date>/<original mailbox>`` with its flags (except \\Deleted) and
internal date. Restoring twice gives a second, separate folder. A single mailbox or a
set of UIDs in it (the UIDs the message had at backup time) can be chosen. The user's
quota holds: a restore that would exceed it is refused before anything is created
(the store's own quota decision, the same as IMAP APPEND's NO [OVERQUOTA]), and if the
store refuses midway (mail arrived meanwhile) the folders made so far are removed:
a refused restore leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import config as config_mod
from appliance.accounts import Accounts
from appliance.backup import staging
from appliance.backup.restic import BackupError, Restic, SnapshotInfo, repository_for
from appliance.backup.runner import run_lock
from appliance.config import Config
from appliance.delivery.recipients import quota_of
from appliance.store.base import INBOX, MailboxExists, MailStore, MessageInfo, StoreError
from appliance.store.quota import exceeds

log = logging.getLogger(__name__)

RESTORE_NAME = ".pillarbox-restore"
RESTORED_ROOT = "Restored"

StoreFactory = Callable[[Path], MailStore]


# ------------------------------------------------------------------ helpers


def daemon_running(cfg: Config) -> bool:
    """True when something answers on the ctl socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(cfg.ctl_socket))
        except OSError:
            return False
    return True


def _count_users(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            (n,) = conn.execute("SELECT count(*) FROM users").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(n)


def is_fresh(cfg: Config) -> bool:
    return (
        _count_users(cfg.accounts_db) == 0 and next(staging.user_dirs(cfg.mail_dir), None) is None
    )


def find_snapshot(restic: Restic, wanted: str) -> SnapshotInfo:
    snaps = restic.snapshots()
    if not snaps:
        raise BackupError("the repository holds no Pillarbox snapshots")
    if wanted in ("", "latest"):
        return snaps[-1]
    for s in snaps:
        if s.id.startswith(wanted) or s.short_id == wanted:
            return s
    raise BackupError(f"no snapshot {wanted!r} in the repository")


def _move_aside(path: Path, stamp: str, moved: list[str]) -> None:
    if path.exists() or path.is_symlink():
        aside = path.with_name(f"{path.name}.pre-restore-{stamp}")
        os.replace(path, aside)
        moved.append(str(aside))


def _place(src: Path, dst: Path, stamp: str, moved: list[str]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    _move_aside(dst, stamp, moved)
    shutil.move(str(src), str(dst))


def user_relpath(user: str) -> Path:
    """mail_dir-relative Maildir of ``user`` (``<domain>/<local>``)."""
    local, at, domain = user.strip().lower().rpartition("@")
    for part in (local, domain):
        if not at or not part or part.startswith(".") or "/" in part or "\\" in part:
            raise BackupError(f"{user!r} is not a mail address")
    return Path(domain) / local


# ------------------------------------------------------------------ whole box


@dataclass(frozen=True)
class BoxRestoreResult:
    snapshot: SnapshotInfo
    users: tuple[str, ...]
    config_restored: bool
    moved_aside: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.to_json(),
            "users": list(self.users),
            "config_restored": self.config_restored,
            "moved_aside": list(self.moved_aside),
        }


def restore_box(
    cfg: Config,
    *,
    snapshot: str = "latest",
    keep_config: bool = False,
    force: bool = False,
    restic: Restic | None = None,
    clock: Callable[[], float] = time.time,
) -> BoxRestoreResult:
    """Disaster recovery into the paths of ``cfg`` (blocking; the daemon must be stopped)."""
    if daemon_running(cfg):
        raise BackupError("stop the mail daemon before restoring the whole box")
    if not force and not is_fresh(cfg):
        raise BackupError(
            "this box already has users or mail; restore a single mailbox instead, "
            "or use --force (the current data is moved aside, not deleted)"
        )
    r = restic or Restic(repository_for(cfg))
    with run_lock(cfg, "restore"):
        snap = find_snapshot(r, snapshot)
        cfg.mail_dir.mkdir(parents=True, exist_ok=True)
        work = cfg.mail_dir / RESTORE_NAME
        staging.remove_tree(work)
        work.mkdir(mode=0o700)
        try:
            r.restore(snap.id, work)
            return _install(cfg, snap, work, keep_config, clock)
        finally:
            with contextlib.suppress(OSError):
                staging.remove_tree(work)


def _install(
    cfg: Config, snap: SnapshotInfo, work: Path, keep_config: bool, clock: Callable[[], float]
) -> BoxRestoreResult:
    try:
        manifest = json.loads((work / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise BackupError(f"snapshot {snap.short_id} is not a Pillarbox backup") from None
    if not isinstance(manifest, dict) or manifest.get("format") != staging.FORMAT:
        raise BackupError(f"snapshot {snap.short_id} has an unknown backup format")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock()))
    moved: list[str] = []

    new_config: str | None = None
    cfg_dir = work / "config"
    if not keep_config and cfg.source is not None and cfg_dir.is_dir():
        files = sorted(cfg_dir.iterdir())
        if files:
            new_config = files[0].read_text()
            try:
                config_mod.loads(new_config, cfg.source.parent)
            except config_mod.ConfigError as exc:
                raise BackupError(f"the backed-up config is not valid here: {exc}") from None

    if (work / "accounts.sqlite").is_file():
        for suffix in ("-wal", "-shm"):
            _move_aside(Path(str(cfg.accounts_db) + suffix), stamp, moved)
        _place(work / "accounts.sqlite", cfg.accounts_db, stamp, moved)

    mail = work / "mail"
    users: list[str] = []
    if mail.is_dir():
        for domain in sorted(mail.iterdir()):
            if domain.is_dir():
                users += [f"{u.name}@{domain.name}" for u in sorted(domain.iterdir()) if u.is_dir()]
                _place(domain, cfg.mail_dir / domain.name, stamp, moved)

    if (work / "dkim").is_dir():
        _place(work / "dkim", cfg.dkim_dir, stamp, moved)
    for name, dst in (("cert.pem", cfg.tls.cert), ("key.pem", cfg.tls.key)):
        if (work / "tls" / name).is_file():
            _place(work / "tls" / name, dst, stamp, moved)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(cfg.tls.key, 0o600)
    if (work / "queue").is_dir():
        _place(work / "queue", cfg.queue_dir, stamp, moved)
    if (work / "sieve").is_dir():
        _place(work / "sieve", cfg.data_dir / staging.SIEVE_DIR, stamp, moved)
    target_cfg = cfg
    if new_config is not None and cfg.source is not None:
        target_cfg = config_mod.loads(new_config, cfg.source.parent)
    for i, host in enumerate(target_cfg.smarthosts):
        saved = work / "smarthost" / str(i)
        if host.password_file is not None and saved.is_file():
            _place(saved, host.password_file, stamp, moved)
            os.chmod(host.password_file, 0o600)

    if new_config is not None and cfg.source is not None:
        if cfg.source.exists():
            shutil.copy2(cfg.source, cfg.source.with_name(f"{cfg.source.name}.pre-restore-{stamp}"))
            moved.append(str(cfg.source.with_name(f"{cfg.source.name}.pre-restore-{stamp}")))
        config_mod.save(cfg.source, new_config)

    log.info(
        "backup=restored-box snapshot=%s users=%s config=%s",
        snap.short_id,
        len(users),
        new_config is not None,
    )
    return BoxRestoreResult(snap, tuple(users), new_config is not None, tuple(moved))


# ------------------------------------------------------------------ one user


@dataclass(frozen=True)
class MailboxRestoreResult:
    user: str
    snapshot: SnapshotInfo
    destination: str  # "Restored/<date>"
    mailboxes: dict[str, int]  # original mailbox -> messages appended

    @property
    def messages(self) -> int:
        return sum(self.mailboxes.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "snapshot": self.snapshot.to_json(),
            "destination": self.destination,
            "mailboxes": self.mailboxes,
            "messages": self.messages,
        }


def default_store_factory(mail_dir: Path) -> MailStore:
    from appliance.backup.store_lock import open_store

    return open_store(mail_dir)


def _create_path(store: MailStore, user: str, name: str) -> list[str]:
    """Create ``name`` and its parents; returns the ones created now (parents first)."""
    parts = name.split("/")
    created = []
    for i in range(1, len(parts) + 1):
        level = "/".join(parts[:i])
        with contextlib.suppress(MailboxExists):
            store.create_mailbox(user, level)
            created.append(level)
    return created


def user_quota(cfg: Config, user: str) -> int:
    """The user's quota in bytes (0 = unlimited), as delivery and IMAP apply it."""
    if not cfg.accounts_db.exists():
        return cfg.limits.default_quota
    accounts = Accounts(cfg.accounts_db)
    try:
        return quota_of(accounts, user, cfg.limits.default_quota)
    finally:
        accounts.close()


def _destination_root(store: MailStore, user: str, snap: SnapshotInfo) -> str:
    existing = {m.name for m in store.list_mailboxes(user)}
    base = f"{RESTORED_ROOT}/{snap.time.astimezone().strftime('%Y-%m-%d_%H%M')}"
    name, n = base, 1
    while name in existing:
        n += 1
        name = f"{base}-{n}"
    return name


def restore_mailbox(
    cfg: Config,
    store: MailStore,
    user: str,
    *,
    snapshot: str = "latest",
    mailbox: str | None = None,
    uids: Sequence[int] | None = None,
    restic: Restic | None = None,
    store_factory: StoreFactory = default_store_factory,
    quota_bytes: int | None = None,
) -> MailboxRestoreResult:
    """Append ``user``'s backed-up mail (all, one mailbox, or some UIDs of one mailbox)
    to the live ``store`` under Restored/<date>/. Blocking. ``quota_bytes`` (default:
    the user's quota from the accounts database) bounds what the restore may add."""
    rel = user_relpath(user)
    addr = f"{rel.name}@{rel.parent.name}"
    if uids and mailbox is None:
        raise BackupError("choose the mailbox the UIDs belong to")
    r = restic or Restic(repository_for(cfg))
    snap = find_snapshot(r, snapshot)
    cfg.mail_dir.mkdir(parents=True, exist_ok=True)
    work = cfg.mail_dir / f"{RESTORE_NAME}-{rel.parent.name}-{rel.name}"
    staging.remove_tree(work)
    work.mkdir(mode=0o700)
    try:
        r.restore(snap.id, work, includes=[f"/mail/{rel.as_posix()}"])
        if not (work / "mail" / rel).is_dir():
            raise BackupError(f"snapshot {snap.short_id} holds no mail for {addr}")
        old = store_factory(work / "mail")
        names = [m.name for m in old.list_mailboxes(addr) if m.selectable]
        if mailbox is not None:
            wanted = INBOX if mailbox.upper() == INBOX else mailbox
            if wanted not in names:
                raise BackupError(f"snapshot {snap.short_id} has no mailbox {mailbox!r}")
            names = [wanted]
        store.ensure_user(addr)
        limit = user_quota(cfg, addr) if quota_bytes is None else quota_bytes
        plan = _plan(old, addr, names, uids)
        _check_quota(store, addr, plan, limit)
        dest_root = _destination_root(store, addr, snap)
        counts = _copy_mailboxes(old, store, addr, plan, dest_root, limit)
    finally:
        with contextlib.suppress(OSError):
            staging.remove_tree(work)
    log.info(
        "backup=restored-mailbox user=%s snapshot=%s dest=%s messages=%s",
        addr,
        snap.short_id,
        dest_root,
        sum(counts.values()),
    )
    return MailboxRestoreResult(addr, snap, dest_root, counts)


def _plan(
    old: MailStore, user: str, names: Iterable[str], uids: Sequence[int] | None
) -> list[tuple[str, list[MessageInfo]]]:
    """The messages to restore, per backed-up mailbox."""
    wanted = set(uids) if uids else None
    plan = []
    for name in names:
        snap = old.snapshot(user, name)
        msgs = [m for m in snap.messages if wanted is None or m.uid in wanted]
        if wanted is not None and not msgs:
            raise BackupError(f"none of the UIDs {sorted(wanted)} are in {name!r} in the backup")
        plan.append((name, msgs))
    return plan


def _check_quota(
    live: MailStore, user: str, plan: Sequence[tuple[str, list[MessageInfo]]], limit: int
) -> None:
    incoming = sum(m.size for _, msgs in plan for m in msgs)
    used = live.usage(user).bytes
    # RFC 9208 4.3.1: the restore is refused whole, as APPEND is with NO [OVERQUOTA].
    if exceeds(used, incoming, limit):
        log.info(
            "backup=restore-over-quota user=%s used=%s incoming=%s quota=%s",
            user,
            used,
            incoming,
            limit,
        )
        raise BackupError(
            f"restoring {incoming} bytes would exceed the quota of {user} "
            f"({used} of {limit} bytes used); nothing was restored"
        )


def _copy_mailboxes(
    old: MailStore,
    live: MailStore,
    user: str,
    plan: Sequence[tuple[str, list[MessageInfo]]],
    dest_root: str,
    quota_bytes: int,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    created: list[str] = []
    try:
        for name, msgs in plan:
            dest = f"{dest_root}/{name}"
            created += _create_path(live, user, dest)
            for m in msgs:
                live.append(
                    user,
                    dest,
                    old.message_path(user, name, m.uid),
                    flags=sorted(m.flags - {"\\Deleted", "\\Recent"}),
                    internal_date=m.internal_date,
                    quota_bytes=quota_bytes,
                )
            counts[name] = len(msgs)
    except StoreError as exc:
        for mailbox in reversed(created):  # children before parents
            try:
                live.delete_mailbox(user, mailbox)
            except StoreError as cleanup:
                log.error("backup=restore-cleanup-failed mailbox=%s error=%s", mailbox, cleanup)
        raise BackupError(f"the store refused the restore ({exc}); nothing was restored") from exc
    return counts
