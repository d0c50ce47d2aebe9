"""Helpers: a populated box, and a fingerprint of all a restore must bring back."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.backup.store_lock import open_store
from appliance.filters.sieve_store import SieveStore
from appliance.queue import dkim
from appliance.queue.spool import Spool
from appliance.store.maildir import MaildirStore
from tests.harness import write_config

if shutil.which("restic") is None:  # pragma: no cover - apt-packages.txt installs it
    pytest.skip("restic is not installed (tests/apt-packages.txt)", allow_module_level=True)

USERS = ("alice@example.org", "bob@example.org", "carol@example.net")
PASSWORD = "correct horse battery staple 9"
SIEVE = 'require "fileinto";\nif header :contains "subject" "report" { fileinto "Projects"; }\n'


def message(n: int, user: str, size: int = 0) -> bytes:
    body = f"Message {n} for {user}.\r\n".encode() + b"x" * size
    return (
        (
            f"From: sender{n}@example.com\r\nTo: {user}\r\nSubject: test {n}\r\n"
            f"Message-ID: <{n}.{user}@test>\r\n\r\n"
        ).encode()
        + body
        + b"\r\n"
    )


@dataclass
class Box:
    cfg: config.Config
    store: MaildirStore
    accounts: Accounts


@pytest.fixture
def new_box(tmp_path: Path) -> Callable[[str], Box]:
    usb = tmp_path / "usb" / "repo"

    def make(name: str) -> Box:
        path = write_config(
            tmp_path / name,
            backup={"target": "local", "path": str(usb)},
            smarthost={"host": "relay.example.net", "password_file": "smarthost-password"},
        )
        cfg = config.load(path)
        return Box(cfg, open_store(cfg.mail_dir), Accounts(cfg.accounts_db))

    return make


def populate(box: Box, tmp_path: Path) -> None:
    """Users, aliases, DKIM keys, a certificate, queued mail and several folders whose
    messages have flags, keywords and UID gaps (expunged messages)."""
    acc, store, cfg = box.accounts, box.store, box.cfg
    for d in ("example.org", "example.net"):
        acc.add_domain(d)
        dkim.keys(cfg, d)
    for u in USERS:
        acc.add_user(u, PASSWORD, quota_bytes=10_000_000, is_admin=u.startswith("alice"))
    acc.add_alias("postmaster@example.org", "alice@example.org")
    acc.add_alias("@example.net", "carol@example.net")
    acc.add_alias("team@example.org", "bob@example.org")
    cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
    cfg.tls.cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    cfg.tls.key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    (cfg.data_dir / "smarthost-password").write_text("s3cr3t\n")
    sieve = SieveStore(cfg.data_dir / "sieve")
    sieve.save_script("bob@example.org", SIEVE)
    spool = Spool(cfg.queue_dir)
    src = tmp_path / "queued.eml"
    src.write_bytes(message(999, "friend@remote.example"))
    spool.enqueue("alice@example.org", ["friend@remote.example"], src)
    n = 0
    for u in USERS:
        store.ensure_user(u)
        store.create_mailbox(u, "Projects/2026")
        for mailbox, count in (("INBOX", 6), ("Projects/2026", 3), ("Sent", 2)):
            for _ in range(count):
                n += 1
                f = tmp_path / f"m{n}.eml"
                f.write_bytes(message(n, u, size=n * 37))
                store.append(u, mailbox, f, internal_date=1_700_000_000 + n * 3600)
        uids = [m.uid for m in store.snapshot(u, "INBOX").messages]
        store.store_flags(u, "INBOX", uids[:3], "add", ["\\Seen"])
        store.store_flags(u, "INBOX", uids[1:2], "add", ["\\Answered", "$Label1"])
        store.store_flags(u, "INBOX", uids[4:5], "add", ["\\Flagged", "$Important"])
        store.store_flags(u, "INBOX", uids[2:3], "add", ["\\Deleted"])
        store.expunge(u, "INBOX")  # a UID gap a renumbering restore would close
        p_uids = [m.uid for m in store.snapshot(u, "Projects/2026").messages]
        store.store_flags(u, "Projects/2026", p_uids[-1:], "set", ["\\Draft", "\\Seen"])
        store.subscribe(u, "Projects/2026", True)


def fingerprint(box: Box) -> dict[str, Any]:
    """Everything a whole-box restore must reproduce exactly."""
    cfg, store, acc = box.cfg, box.store, box.accounts
    mail: dict[str, Any] = {}
    for u in USERS:
        for info in store.list_mailboxes(u):
            if not info.selectable:
                continue
            snap = store.snapshot(u, info.name)
            st = snap.status
            msgs = []
            for m in snap.messages:
                with store.open_message(u, info.name, m.uid) as fh:
                    data = fh.read()
                msgs.append((m.uid, sorted(m.flags), m.internal_date, m.size, m.key, data))
            mail[f"{u}/{info.name}"] = {
                "special_use": info.special_use,
                "subscribed": info.subscribed,
                "uidvalidity": st.uidvalidity,
                "uidnext": st.uidnext,
                "messages": msgs,
            }
    dkim_files = {
        str(p.relative_to(cfg.dkim_dir)): p.read_bytes()
        for p in sorted(cfg.dkim_dir.rglob("*"))
        if p.is_file()
    }
    spool = Spool(cfg.queue_dir)
    return {
        "sieve": SieveStore(cfg.data_dir / "sieve").get_script("bob@example.org"),
        "smarthost": [h.password_file.read_text() for h in cfg.smarthosts if h.password_file],
        "mail": mail,
        "domains": acc.list_domains(),
        "users": [(u.email, u.quota_bytes, u.is_admin, u.disabled) for u in acc.list_users()],
        "aliases": [(a.source, a.target) for a in acc.list_aliases()],
        "dkim": dkim_files,
        "tls": (cfg.tls.cert.read_bytes(), cfg.tls.key.read_bytes()),
        "queue": [
            (e.sender, [r.address for r in e.recipients], spool.message_path(e.id).read_bytes())
            for e in spool.entries()
        ],
    }
