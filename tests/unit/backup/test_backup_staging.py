from __future__ import annotations

import json
import os
import sqlite3

from appliance import config
from appliance.accounts import Accounts
from appliance.backup import staging


def populate(cfg: config.Config) -> Accounts:
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    acc.add_user("alice@example.org", "correct horse battery staple 1")
    acc.add_alias("postmaster@example.org", "alice@example.org")
    inbox = cfg.mail_dir / "example.org" / "alice"
    for sub in ("cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp", "pillarbox-locks"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    (inbox / "cur" / "1.a,S=5,U=1:2,S").write_bytes(b"one\r\n")
    (inbox / "new" / "2.b,S=5,U=2").write_bytes(b"two\r\n")
    (inbox / "tmp" / "3.c").write_bytes(b"in flight")
    (inbox / ".Sent" / "cur" / "4.d,S=6,U=1:2,RS").write_bytes(b"sent\r\n")
    (inbox / "pillarbox-locks" / "INBOX.lock").write_bytes(b"")
    (inbox / "pillarbox-uidvalidity").write_text("1700000000\n")
    db = sqlite3.connect(inbox / "pillarbox-index.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (42)")
    db.commit()  # the row sits in the WAL: db stays open
    cfg.dkim_dir.mkdir(parents=True, exist_ok=True)
    (cfg.dkim_dir / "example.org.pb1.rsa.key").write_text("RSA KEY")
    cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
    cfg.tls.cert.write_text("CERT")
    cfg.tls.key.write_text("KEY")
    for d in ("msg", "meta", "tmp"):
        (cfg.queue_dir / d).mkdir(parents=True, exist_ok=True)
    (cfg.queue_dir / "msg" / "AAAAAAAAAA.eml").write_bytes(b"queued")
    (cfg.queue_dir / "meta" / "AAAAAAAAAA.json").write_text("{}")
    (cfg.queue_dir / "meta" / "BBBBBBBBBB.json").write_text("{}")  # message not committed
    (cfg.queue_dir / "tmp" / "x").write_text("partial")
    (cfg.data_dir / "sieve").mkdir()
    (cfg.data_dir / "sieve" / "alice@example.org.sieve").write_text("keep;\n")
    return acc


def test_staging_tree_holds_everything_consistently(cfg: config.Config) -> None:
    acc = populate(cfg)
    locked: list[str] = []

    class Lock:
        def __init__(self, user: str) -> None:
            self.user = user

        def __enter__(self) -> None:
            locked.append(self.user)

        def __exit__(self, *exc: object) -> None:
            locked.append("-" + self.user)

    staged = staging.build(cfg, acc, user_lock=Lock, clock=lambda: 1234.0)
    root = staged.root
    assert root == cfg.mail_dir / staging.STAGING_NAME
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    assert staged.users == ("alice@example.org",)
    assert locked == ["alice@example.org", "-alice@example.org"]
    assert staged.messages == 3
    assert set(staged.entries()) == set(staging.ENTRIES) - {"smarthost"}  # none configured
    assert (root / "sieve" / "alice@example.org.sieve").read_text() == "keep;\n"

    # accounts: a real, self-contained SQLite copy
    copy = Accounts(root / "accounts.sqlite")
    assert [u.email for u in copy.list_users()] == ["alice@example.org"]
    assert [(a.source, a.target) for a in copy.list_aliases()] == [
        ("postmaster@example.org", "alice@example.org")
    ]
    # mail: messages linked (same inode), side files copied, tmp/ and locks skipped
    m = root / "mail" / "example.org" / "alice"
    src = cfg.mail_dir / "example.org" / "alice" / "cur" / "1.a,S=5,U=1:2,S"
    assert os.stat(m / "cur" / "1.a,S=5,U=1:2,S").st_ino == src.stat().st_ino
    assert (m / "new" / "2.b,S=5,U=2").read_bytes() == b"two\r\n"
    assert (m / ".Sent" / "cur" / "4.d,S=6,U=1:2,RS").read_bytes() == b"sent\r\n"
    assert (m / "pillarbox-uidvalidity").read_text() == "1700000000\n"
    assert not (m / "tmp").exists() and not (m / "pillarbox-locks").exists()
    # the index comes through the online backup API, WAL content included
    assert not (m / "pillarbox-index.sqlite-wal").exists()
    idx = sqlite3.connect(m / "pillarbox-index.sqlite")
    assert idx.execute("SELECT x FROM t").fetchall() == [(42,)]
    idx.close()
    # keys, certificate, config, queue
    assert (root / "dkim" / "example.org.pb1.rsa.key").read_text() == "RSA KEY"
    assert (root / "tls" / "cert.pem").read_text() == "CERT"
    assert (root / "tls" / "key.pem").read_text() == "KEY"
    assert cfg.source is not None
    assert (root / "config" / "pillarbox.toml").read_bytes() == cfg.source.read_bytes()
    assert (root / "queue" / "msg" / "AAAAAAAAAA.eml").read_bytes() == b"queued"
    assert sorted(p.name for p in (root / "queue" / "meta").iterdir()) == ["AAAAAAAAAA.json"]
    assert not (root / "queue" / "tmp").exists()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["format"] == staging.FORMAT
    assert manifest["users"] == ["alice@example.org"]
    assert manifest["created"] == 1234.0
    assert manifest["tls"] == {"cert.pem": True, "key.pem": True}
    # the live tree is untouched, and the staging tree goes away cleanly
    staging.remove_tree(root)
    assert src.read_bytes() == b"one\r\n"
    assert list(staging.user_dirs(cfg.mail_dir)) == [
        ("alice@example.org", cfg.mail_dir / "example.org" / "alice")
    ]


def test_staging_a_box_without_mail_or_keys(cfg: config.Config) -> None:
    acc = Accounts(cfg.accounts_db)
    staged = staging.build(cfg, acc)
    assert staged.users == () and staged.messages == 0
    assert "accounts.sqlite" in staged.entries()
    manifest = json.loads((staged.root / "manifest.json").read_text())
    assert manifest["tls"] == {"cert.pem": False, "key.pem": False}
