"""Snapshot time of a large Maildir mailbox (default 100,000 messages).

    .venv/bin/python bench/store_open.py [--messages N] [--dir PATH]

Builds the mailbox by writing message files straight into cur/ (as another Maildir
program would), then measures: the first open (the index is built from the files),
a snapshot with a fresh index, status(), and a snapshot after one more delivery.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore

USER = "bench@example.org"
BODY = b"From: a@example.net\r\nSubject: bench\r\n\r\n" + b"x" * 2000 + b"\r\n"


def build(store: MaildirStore, n: int) -> None:
    store.ensure_user(USER)
    cur = store.user_dir(USER) / "cur"
    for i in range(1, n + 1):
        flags = "S" if i % 3 else "FS"
        (cur / f"1700000000.M{i}P1.bench,S={len(BODY)},U={i}:2,{flags}").write_bytes(BODY)
    old = time.time() - 60
    os.utime(cur, (old, old))
    os.utime(cur.parent / "new", (old, old))


def timed(label: str, fn: object) -> object:
    start = time.perf_counter()
    result = fn()  # type: ignore[operator]
    print(f"{label:<40} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp) / "mail"
        store = MaildirStore(root, lambda e: None, lambda p: b"")
        timed(f"write {args.messages} files", lambda: build(store, args.messages))
        snap = timed("first open (index built from files)", lambda: store.snapshot(USER, INBOX))
        assert len(snap.messages) == args.messages  # type: ignore[attr-defined]
        for i in range(3):
            timed(f"snapshot, fresh index (#{i + 1})", lambda: store.snapshot(USER, INBOX))
        timed("status", lambda: store.status(USER, INBOX))
        src = Path(tmp) / "one.eml"
        src.write_bytes(BODY)
        timed("deliver one message", lambda: store.deliver([DeliveryTarget(USER)], src))
        timed("snapshot after a delivery", lambda: store.snapshot(USER, INBOX))
        timed(
            "flag one message (rename in cur/)",
            lambda: store.store_flags(USER, INBOX, [7], "add", ["\\Answered"]),
        )
        timed("snapshot after the flag change", lambda: store.snapshot(USER, INBOX))
        since = store.status(USER, INBOX).highest_modseq
        store.store_flags(USER, INBOX, [9], "add", ["\\Flagged"])
        timed("changes() after one more flag change", lambda: store.changes(USER, INBOX, since))
        fresh = MaildirStore(root, lambda e: None, lambda p: b"")
        timed("snapshot, new instance (no cache)", lambda: fresh.snapshot(USER, INBOX))
        timed("snapshot, new instance, again", lambda: fresh.snapshot(USER, INBOX))


if __name__ == "__main__":
    main()
