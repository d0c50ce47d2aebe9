"""The web UI's own SQLite file, ``<data_dir>/web.sqlite`` (mode 0600): server-side
sessions and users' second factors. accounts.sqlite stays the accounts' alone.

Threading: one connection per thread (the server runs views in a pool); writes are
short ``BEGIN IMMEDIATE`` transactions; WAL lets readers go on meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WEB_DB = "web.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,   -- sha256 of the cookie's session id: a copy of the file
    user TEXT,                  -- is no set of live cookies
    data TEXT NOT NULL,
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);
CREATE INDEX IF NOT EXISTS sessions_seen ON sessions(seen);
CREATE TABLE IF NOT EXISTS totp (
    email TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    last_step INTEGER NOT NULL DEFAULT -1,
    created REAL NOT NULL,
    fails INTEGER NOT NULL DEFAULT 0,   -- wrong codes in a row
    fail_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recovery_codes (
    email TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (email, code_hash)
);
"""


class WebDb:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self.conn().executescript(SCHEMA)  # each statement is idempotent

    def conn(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        db = self.conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
