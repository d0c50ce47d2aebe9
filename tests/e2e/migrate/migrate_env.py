"""Shared pieces of the import/export tests: a local box with one user, a private
Dovecot filled straight on disk (Maildir++ with flags, keywords and dates), and a
reader of what the local store holds per Message-ID."""

from __future__ import annotations

import os
import pwd
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance import config
from appliance.accounts import Accounts
from appliance.mime.summary import is_current, summarize
from appliance.store.maildir import MaildirStore
from tests.harness import write_config

USER = "alice@example.org"
PASSWORD = "correct horse battery staple 9"
KEYWORDS = ("$Work", "Important", "$label1")
LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}


@dataclass(frozen=True)
class Box:
    path: Path  # pillarbox.toml
    cfg: config.Config

    def store(self) -> MaildirStore:
        return MaildirStore(
            self.cfg.mail_dir,
            notify=lambda _e: None,
            summarizer=summarize,
            summary_current=is_current,
        )


def new_box(tmp: Path, quota: int = 0, **overrides: object) -> Box:
    path = write_config(tmp / "box", **overrides)
    cfg = config.load(path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain(USER.split("@")[1])
    accounts.add_user(USER, PASSWORD, quota_bytes=quota)
    return Box(path, cfg)


@dataclass(frozen=True)
class Expected:
    folder: str
    flags: frozenset[str]
    date: int
    data: bytes


def message(i: int, rng: random.Random, size: int = 0) -> bytes:
    body_lines = rng.randint(3, 30) if not size else max(1, size // 60)
    body = "".join(
        f"line {n} of message {i} {'x' * rng.randint(0, 40)}\r\n" for n in range(body_lines)
    )
    return (
        f"From: sender{i % 37}@old.example\r\n"
        f"To: {USER}\r\n"
        f"Subject: message {i}\r\n"
        f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        f"Message-ID: <m{i}.{rng.randint(0, 1 << 30)}@old.example>\r\n"
        "\r\n" + body
    ).encode()


def fill_dovecot(maildir: Path, folders: dict[str, int], seed: int = 1) -> dict[str, Expected]:
    """Write ``folders`` ({"INBOX": n, "Work/Projects": n, ...}) into a Dovecot Maildir
    with random flags, keywords and dates; returns Message-ID -> what must arrive."""
    rng = random.Random(seed)
    expected: dict[str, Expected] = {}
    i = 0
    nobody = pwd.getpwnam("nobody")
    for name, count in folders.items():
        folder = maildir if name == "INBOX" else maildir / ("." + name.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "dovecot-keywords").write_text(
            "".join(f"{n} {k}\n" for n, k in enumerate(KEYWORDS))
        )
        for _ in range(count):
            i += 1
            data = message(i, rng)
            flags = {f for f in LETTERS if rng.random() < 0.3}
            kws = {k for k in KEYWORDS if rng.random() < 0.2}
            letters = sorted(LETTERS[f] for f in flags) + sorted(
                chr(ord("a") + KEYWORDS.index(k)) for k in kws
            )
            date = 1_500_000_000 + rng.randint(0, 200_000_000)
            path = folder / "cur" / f"{date}.M{i}P1.ref,S={len(data)}:2,{''.join(letters)}"
            path.write_bytes(data)
            os.utime(path, (date, date))
            mid = data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
            expected[mid] = Expected(name, frozenset(flags | kws), date, data)
    for root, dirs, files in os.walk(maildir):
        for n in [root, *(os.path.join(root, x) for x in dirs + files)]:
            os.chown(n, nobody.pw_uid, nobody.pw_gid)
    return expected


@dataclass(frozen=True)
class Stored:
    folder: str
    flags: frozenset[str]
    date: int
    data: bytes


def stored_messages(box: Box, user: str = USER) -> dict[str, list[Stored]]:
    """Message-ID -> every copy in the local store."""
    store = box.store()
    out: dict[str, list[Stored]] = {}
    for mb in store.list_mailboxes(user):
        for info in store.snapshot(user, mb.name).messages:
            with store.open_message(user, mb.name, info.uid) as fh:
                data = fh.read()
            head = data.split(b"\r\n\r\n")[0]
            mid = ""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    mid = line.split(b":", 1)[1].strip().decode()
            out.setdefault(mid, []).append(
                Stored(mb.name, info.flags, int(info.internal_date), data)
            )
    return out


def folder_counts(box: Box, names: Iterable[str], user: str = USER) -> dict[str, int]:
    store = box.store()
    return {n: len(store.snapshot(user, n).messages) for n in names}
