"""Domains, users, aliases and app passwords in SQLite (WAL).

One file, shared by the daemon and the web UI through this module only. Each thread
gets its own connection; writes are short transactions, so WAL lets readers (SMTP
recipient checks, IMAP logins) proceed while the wizard edits. On the appliance the
mail daemon only reads it (``Accounts(readonly=True)``, the file belongs to the web
UI's user): a compromised daemon cannot make itself an admin.

Addresses are stored lower-cased. An alias source is either ``local@domain`` or
``@domain`` (catch-all); a source may have several targets, local or remote.
Subaddressing: ``user+tag@domain`` reaches ``user@domain`` when no exact entry exists.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance import atomicfile
from appliance.accounts import hashing
from appliance.address import AddressError, mailbox_name
from appliance.address import domain as is_domain

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    domain TEXT NOT NULL REFERENCES domains(name),
    password_hash TEXT NOT NULL,
    quota_bytes INTEGER NOT NULL DEFAULT 0,
    is_admin INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (source, target)
);
CREATE TABLE IF NOT EXISTS app_passwords (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    label TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL
);
CREATE INDEX IF NOT EXISTS app_passwords_email ON app_passwords(email);
"""

MAX_ALIAS_DEPTH = 10
MAX_APP_PASSWORDS = 20  # per user: add_app_password refuses beyond

# An app password is "<public id>-<secret>": 8 hex digits naming the row (not secret,
# unique per user), then four groups of 6 hex digits (96 random bits). The public id
# lets a login check one app-password hash instead of one per app password.
# Those made before public ids are the four groups alone.
_APP_NEW = re.compile(r"([0-9a-f]{8})-[0-9a-f]{6}(?:-[0-9a-f]{6}){3}")
_APP_OLD = re.compile(r"[0-9a-f]{6}(?:-[0-9a-f]{6}){3}")

# Beside accounts.sqlite: {"<app password id>": <last used, unix time>}, written by a
# read-only (daemon) Accounts, merged into list_app_passwords. Only timestamps: a
# writer trusts nothing else from it.
USAGE_FILE = "app-password-usage.json"
MAX_USAGE_ENTRIES = 10_000


class AccountError(ValueError):
    """Bad input or a conflict; the message is safe to show to the user."""


class NotFound(AccountError):
    pass


class AlreadyExists(AccountError):
    pass


class ReadOnly(AccountError):
    """A change through a read-only Accounts (the mail daemon, or a user who may not
    write the file)."""


@dataclass(frozen=True)
class User:
    email: str
    quota_bytes: int
    is_admin: bool
    disabled: bool
    created: float

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


@dataclass(frozen=True)
class Alias:
    source: str
    target: str


@dataclass(frozen=True)
class AppPassword:
    id: int
    email: str
    label: str
    created: float
    last_used: float | None


@dataclass(frozen=True)
class Resolution:
    """Where mail for one address goes: local mailboxes and remote forwards."""

    local: tuple[str, ...] = ()
    remote: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return bool(self.local or self.remote)


def normalize_domain(name: str) -> str:
    """Lower-case IDNA (A-label) form without the root dot; raise AccountError unless it
    is an RFC 5321 4.1.2 Domain (appliance.address) of at least two labels."""
    d = name.strip().rstrip(".").lower()
    try:
        d = d.encode("idna").decode("ascii")
    except UnicodeError:
        raise AccountError(f"{name!r} is not a valid domain name") from None
    if len(d.split(".")) < 2 or not is_domain(d):
        raise AccountError(f"{name!r} is not a valid domain name")
    return d


def normalize_address(text: str) -> str:
    """Lower-case ``local@domain`` with an IDNA domain; raise AccountError unless SMTP
    would accept it: the one grammar in appliance.address (``mailbox_name``: RFC 5321
    4.1.2 dot-string local part, so no ``bad@@d``, ``.dot@d`` or ``trailing.@d``).
    White space, ``<>`` and the domain's root dot are cleaned off first."""
    addr = text.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    local, at, domain = addr.rpartition("@")
    if not at or not local:
        raise AccountError(f"{text!r} is not an email address (local@domain)")
    domain = normalize_domain(domain)
    try:
        mailbox_name(f"{local}@{domain}")
    except AddressError as exc:
        raise AccountError(
            f"{text!r} is not allowed as a mailbox name ({exc}): use letters, digits and"
            " !#$%&'*+-/=?^_`{|}~ in parts joined by single dots, at most 64 octets"
        ) from None
    return f"{local.lower()}@{domain}"


def _stored_key(text: str) -> str:
    """The key to look up for a removal: the normal form, or for a name stored before the
    grammar was enforced (``bad@@d``), the cleaned text as it was stored."""
    try:
        return normalize_address(text)
    except AccountError:
        return text.strip().lower()


def split(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain


class Accounts:
    """The accounts database.

    ``readonly=True`` (the mail daemon on the appliance): every connection is opened
    ``mode=ro``, so a write raises ``sqlite3.OperationalError`` (readonly database) even
    where the file system would allow it, and the methods that change something raise
    ``ReadOnly`` before trying; the file must exist, the schema is the
    writer's business, and app-password use is recorded in a side file instead (see
    ``usage_file``). A WAL database opens read-only as long as its ``-wal`` and
    ``-shm`` exist (SQLite >= 3.22), which the daemon's unit ensures.
    The writer (web UI, ``pillarbox`` CLI) refuses ``-wal``/``-shm`` files owned by
    another non-root user: another user could have planted frames there.
    """

    def __init__(
        self, path: Path, *, readonly: bool = False, usage_file: Path | None = None
    ) -> None:
        self.path = path
        # Not writable for this user (the backup timer on the appliance): read-only too.
        self.readonly = readonly or (path.is_file() and not os.access(path, os.W_OK))
        self.usage_file = usage_file or path.with_name(USAGE_FILE)
        self._local = threading.local()
        if self.readonly:
            if not path.is_file():
                raise AccountError(f"accounts database {path} does not exist")
            missing = [s for s in ("-wal", "-shm") if not Path(f"{path}{s}").exists()]
            if missing and os.geteuid() != 0:
                # SQLite would create them owned by this (reading) user; the writer then
                # refuses them. Root's are handed to the database's owner by SQLite.
                raise AccountError(
                    f"{path}{missing[0]} is missing: the web UI or state_perms.py creates it"
                )
            try:  # fail at start, not at the first login
                self._conn().execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as exc:
                raise AccountError(
                    f"cannot read {path} read-only ({exc}); its -wal and -shm must exist"
                ) from exc
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_side_files(path)
        db = self._conn()
        db.executescript(SCHEMA)
        cols = {r[1] for r in db.execute("PRAGMA table_info(app_passwords)")}
        if "public_id" not in cols:  # databases from before app-password ids
            with self._tx() as tx:
                tx.execute("ALTER TABLE app_passwords ADD COLUMN public_id TEXT")
        db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS app_passwords_public_id"
            " ON app_passwords(email, public_id)"
        )

    # ------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise ReadOnly(
                f"{self.path} is read-only here; change accounts in the web UI or as root"
            )
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def backup_to(self, target: Path) -> None:
        """Consistent online copy through SQLite's backup API (for backups)."""
        dest = sqlite3.connect(target)
        try:
            self._conn().backup(dest)
        finally:
            dest.close()

    # ------------------------------------------------------------ domains

    def add_domain(self, name: str) -> str:
        d = normalize_domain(name)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM domains WHERE name=?", (d,)).fetchone():
                raise AlreadyExists(f"domain {d} already exists")
            db.execute("INSERT INTO domains(name, created) VALUES (?, ?)", (d, time.time()))
        return d

    def remove_domain(self, name: str) -> None:
        d = normalize_domain(name)
        with self._tx() as db:
            (n,) = db.execute("SELECT count(*) FROM users WHERE domain=?", (d,)).fetchone()
            if n:
                raise AccountError(f"domain {d} still has {n} user(s); remove them first")
            if not db.execute("DELETE FROM domains WHERE name=?", (d,)).rowcount:
                raise NotFound(f"no domain {d}")
            db.execute("DELETE FROM aliases WHERE source LIKE ? ESCAPE '\\'", ("%@" + _like(d),))

    def list_domains(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT name FROM domains ORDER BY name")]

    def is_local_domain(self, name: str) -> bool:
        try:
            d = normalize_domain(name)
        except AccountError:
            return False
        return bool(self._conn().execute("SELECT 1 FROM domains WHERE name=?", (d,)).fetchone())

    # ------------------------------------------------------------ users

    def add_user(
        self, email: str, password: str, *, quota_bytes: int = 0, is_admin: bool = False
    ) -> User:
        addr = normalize_address(email)
        hashing.check_strength(password)
        if quota_bytes < 0:
            raise AccountError("quota must be >= 0 bytes (0 = unlimited)")
        digest = hashing.hash_password(password)
        domain = split(addr)[1]
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM domains WHERE name=?", (domain,)).fetchone():
                raise NotFound(f"domain {domain} is not served here; add it first")
            if db.execute("SELECT 1 FROM users WHERE email=?", (addr,)).fetchone():
                raise AlreadyExists(f"user {addr} already exists")
            if db.execute("SELECT 1 FROM aliases WHERE source=?", (addr,)).fetchone():
                raise AlreadyExists(f"{addr} is already an alias")
            now = time.time()
            db.execute(
                "INSERT INTO users(email, domain, password_hash, quota_bytes, is_admin, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (addr, domain, digest, quota_bytes, int(is_admin), now),
            )
        return User(addr, quota_bytes, is_admin, False, now)

    def remove_user(self, email: str) -> None:
        addr = _stored_key(email)
        with self._tx() as db:
            if not db.execute("DELETE FROM users WHERE email=?", (addr,)).rowcount:
                raise NotFound(f"no user {addr}")
            db.execute("DELETE FROM aliases WHERE target=?", (addr,))

    def set_password(self, email: str, password: str) -> None:
        addr = normalize_address(email)
        hashing.check_strength(password)
        digest = hashing.hash_password(password)
        with self._tx() as db:
            if not db.execute(
                "UPDATE users SET password_hash=? WHERE email=?", (digest, addr)
            ).rowcount:
                raise NotFound(f"no user {addr}")

    def set_quota(self, email: str, quota_bytes: int) -> None:
        addr = normalize_address(email)
        if quota_bytes < 0:
            raise AccountError("quota must be >= 0 bytes (0 = unlimited)")
        with self._tx() as db:
            if not db.execute(
                "UPDATE users SET quota_bytes=? WHERE email=?", (quota_bytes, addr)
            ).rowcount:
                raise NotFound(f"no user {addr}")

    def set_admin(self, email: str, is_admin: bool) -> None:
        addr = normalize_address(email)
        with self._tx() as db:
            if not db.execute(
                "UPDATE users SET is_admin=? WHERE email=?", (int(is_admin), addr)
            ).rowcount:
                raise NotFound(f"no user {addr}")

    def set_disabled(self, email: str, disabled: bool) -> None:
        addr = normalize_address(email)
        with self._tx() as db:
            if not db.execute(
                "UPDATE users SET disabled=? WHERE email=?", (int(disabled), addr)
            ).rowcount:
                raise NotFound(f"no user {addr}")

    _USER_COLS = "email, quota_bytes, is_admin, disabled, created"

    @staticmethod
    def _user(row: tuple[str, int, int, int, float]) -> User:
        return User(row[0], row[1], bool(row[2]), bool(row[3]), row[4])

    def password_stamp(self, email: str) -> str | None:
        """A short fingerprint of the stored password hash, None for an unknown user: it
        changes whenever the password is set (by the CLI, the web or a re-hash), so a web
        session made under an older password can tell it is stale."""
        try:
            addr = normalize_address(email)
        except AccountError:
            return None
        row = (
            self._conn()
            .execute("SELECT password_hash FROM users WHERE email=?", (addr,))
            .fetchone()
        )
        return hashlib.sha256(row[0].encode()).hexdigest()[:32] if row else None

    def get_user(self, email: str) -> User | None:
        try:
            addr = normalize_address(email)
        except AccountError:
            return None
        row = (
            self._conn()
            .execute(f"SELECT {self._USER_COLS} FROM users WHERE email=?", (addr,))  # noqa: S608
            .fetchone()
        )
        return self._user(row) if row else None

    def list_users(self, domain: str | None = None) -> list[User]:
        sql = f"SELECT {self._USER_COLS} FROM users"  # noqa: S608
        args: tuple[str, ...] = ()
        if domain:
            sql += " WHERE domain=?"
            args = (normalize_domain(domain),)
        return [self._user(r) for r in self._conn().execute(sql + " ORDER BY email", args)]

    # ------------------------------------------------------------ aliases

    def add_alias(self, source: str, target: str) -> Alias:
        src = source.strip().lower()
        if src.startswith("@"):
            src = "@" + normalize_domain(src[1:])
            domain = src[1:]
        else:
            src = normalize_address(src)
            domain = split(src)[1]
        tgt = normalize_address(target)
        if tgt == src:
            raise AccountError("an alias cannot point to itself")
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM domains WHERE name=?", (domain,)).fetchone():
                raise NotFound(f"domain {domain} is not served here; add it first")
            if db.execute("SELECT 1 FROM users WHERE email=?", (src,)).fetchone():
                raise AlreadyExists(f"{src} is a user; an alias cannot shadow it")
            if db.execute(
                "SELECT 1 FROM aliases WHERE source=? AND target=?", (src, tgt)
            ).fetchone():
                raise AlreadyExists(f"alias {src} -> {tgt} already exists")
            db.execute(
                "INSERT INTO aliases(source, target, created) VALUES (?, ?, ?)",
                (src, tgt, time.time()),
            )
        return Alias(src, tgt)

    def remove_alias(self, source: str, target: str | None = None) -> int:
        src = source.strip().lower()
        with self._tx() as db:
            if target is None:
                n = db.execute("DELETE FROM aliases WHERE source=?", (src,)).rowcount
            else:
                n = db.execute(
                    "DELETE FROM aliases WHERE source=? AND target=?",
                    (src, _stored_key(target)),
                ).rowcount
        if not n:
            raise NotFound(f"no alias {src}" + (f" -> {target}" if target else ""))
        return int(n)

    def list_aliases(self, domain: str | None = None) -> list[Alias]:
        rows = self._conn().execute("SELECT source, target FROM aliases ORDER BY source, target")
        aliases = [Alias(s, t) for s, t in rows]
        if domain:
            d = normalize_domain(domain)
            aliases = [a for a in aliases if a.source.rpartition("@")[2] == d]
        return aliases

    # ------------------------------------------------------------ resolution

    def resolve(self, address: str) -> Resolution:
        """Expand ``address`` through users, aliases, subaddressing and catch-alls.

        Returns empty Resolution when nothing here accepts the address.
        """
        try:
            addr = normalize_address(address)
        except AccountError:
            return Resolution()
        db = self._conn()
        local: list[str] = []
        remote: list[str] = []
        seen: set[str] = set()

        def expand(a: str, depth: int) -> bool:
            if a in seen:
                return True
            seen.add(a)
            lp, domain = split(a)
            if not db.execute("SELECT 1 FROM domains WHERE name=?", (domain,)).fetchone():
                if depth > 0:
                    remote.append(a)
                    return True
                return False
            if db.execute("SELECT 1 FROM users WHERE email=? AND disabled=0", (a,)).fetchone():
                local.append(a)
                return True
            targets = [r[0] for r in db.execute("SELECT target FROM aliases WHERE source=?", (a,))]
            if not targets and "+" in lp:
                base = lp.split("+", 1)[0] + "@" + domain
                if base != a and base not in seen:
                    return expand(base, depth)
            if not targets:
                catch_all = ("@" + domain,)
                targets = [
                    r[0] for r in db.execute("SELECT target FROM aliases WHERE source=?", catch_all)
                ]
            if not targets or depth >= MAX_ALIAS_DEPTH:
                return False
            found = False
            for t in targets:
                found = expand(t, depth + 1) or found
            return found

        expand(addr, 0)
        return Resolution(tuple(dict.fromkeys(local)), tuple(dict.fromkeys(remote)))

    def addresses_of(self, email: str) -> set[str]:
        """Every address that leads to ``email``: itself and aliases pointing to it."""
        addr = normalize_address(email)
        out = {addr}
        frontier = [addr]
        db = self._conn()
        while frontier:
            t = frontier.pop()
            for (src,) in db.execute("SELECT source FROM aliases WHERE target=?", (t,)):
                if src not in out and not src.startswith("@"):
                    out.add(src)
                    frontier.append(src)
        return out

    # ------------------------------------------------------------ authentication

    def canonical_login(self, login: str) -> str:
        """The account id a login names, for throttling: every spelling of one account
        (`` Bob@D.``, ``<bob@d>``) maps to one id, the one ``authenticate`` looks up.

        Logins that are not addresses get the same cleaning (white space, ``<>``, the
        trailing dot, case), so unknown spellings of one name also share a key.
        No database access: safe to call from the event loop.
        """
        try:
            return normalize_address(login)
        except AccountError:
            text = login.strip()
            while len(text) >= 2 and text[0] == "<" and text[-1] == ">":
                text = text[1:-1].strip()
            return text.rstrip(".").lower()

    def authenticate(self, login: str, password: str, *, app_passwords: bool = True) -> User | None:
        """Check the account password, or (``app_passwords``) one app password.

        At most two argon2 checks per attempt: the account password, then the one app
        password whose public id starts the attempt (see ``add_app_password``).
        App passwords are for the mail protocols; the web UI passes ``app_passwords=False``.
        Blocking (argon2): run in a thread.
        """
        user = self.get_user(login)
        if user is None or user.disabled:
            hashing.verify_password(_dummy_hash(), password)  # same cost whether or not it exists
            return None
        db = self._conn()
        (stored,) = db.execute(
            "SELECT password_hash FROM users WHERE email=?", (user.email,)
        ).fetchone()
        if hashing.verify_password(stored, password):
            if hashing.needs_rehash(stored) and not self.readonly:
                with self._tx() as tx:
                    tx.execute(
                        "UPDATE users SET password_hash=? WHERE email=?",
                        (hashing.hash_password(password), user.email),
                    )
            return user
        if app_passwords:
            app_id = self._check_app_password(user.email, password)
            if app_id is not None:
                self._app_password_used(app_id)
                return user
        return None

    def check_app_password(self, email: str, password: str) -> int | None:
        """The id of ``email``'s app password ``password``, None if it is none of them;
        not recorded as a use (the web UI checks one before putting it in a profile).
        Blocking (argon2)."""
        user = self.get_user(email)
        return None if user is None else self._check_app_password(user.email, password)

    def _check_app_password(self, email: str, password: str) -> int | None:
        """The id of the app password ``password`` is, checking at most one hash
        (app passwords from before public ids excepted, see below)."""
        db = self._conn()
        # A reader may meet a database its writer has not migrated yet: no public_id.
        has_ids = any(r[1] == "public_id" for r in db.execute("PRAGMA table_info(app_passwords)"))
        m = _APP_NEW.fullmatch(password)
        if m and has_ids:
            row = db.execute(
                "SELECT id, password_hash FROM app_passwords WHERE email=? AND public_id=?",
                (email, m.group(1)),
            ).fetchone()
            if row and hashing.verify_password(row[1], password):
                return int(row[0])
            return None
        if _APP_OLD.fullmatch(password):
            # Made before public ids; only the hash is kept, so they cannot get one.
            # Checked only for an attempt shaped like one, so a guess at the account
            # password never pays for them.
            old_rows = "public_id IS NULL" if has_ids else "1"
            sql = f"SELECT id, password_hash FROM app_passwords WHERE email=? AND {old_rows}"  # noqa: S608
            for app_id, app_hash in db.execute(sql, (email,)).fetchall():
                if hashing.verify_password(app_hash, password):
                    return int(app_id)
        return None

    # ------------------------------------------------------------ app passwords

    def add_app_password(self, email: str, label: str) -> tuple[AppPassword, str]:
        """Create an app password; the secret is returned once and only its hash is kept.

        The secret starts with a public id (``_APP_NEW``); at most ``MAX_APP_PASSWORDS``
        per user.
        """
        user = self.get_user(email)
        if user is None:
            raise NotFound(f"no user {email}")
        label = label.strip() or "app"
        body = "-".join(secrets.token_hex(3) for _ in range(4))  # 96 bits
        now = time.time()
        with self._tx() as db:
            (n,) = db.execute(
                "SELECT count(*) FROM app_passwords WHERE email=?", (user.email,)
            ).fetchone()
            if n >= MAX_APP_PASSWORDS:
                raise AccountError(
                    f"{user.email} already has {n} app passwords (at most"
                    f" {MAX_APP_PASSWORDS}); remove one first"
                )
            while True:
                public_id = secrets.token_hex(4)
                if not db.execute(
                    "SELECT 1 FROM app_passwords WHERE email=? AND public_id=?",
                    (user.email, public_id),
                ).fetchone():
                    break
            secret = f"{public_id}-{body}"
            digest = hashing.hash_password(secret)  # inside the tx: no race past the cap
            cur = db.execute(
                "INSERT INTO app_passwords(email, label, password_hash, created, public_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (user.email, label[:100], digest, now, public_id),
            )
            app_id = int(cur.lastrowid or 0)
        return AppPassword(app_id, user.email, label[:100], now, None), secret

    def list_app_passwords(self, email: str) -> list[AppPassword]:
        addr = normalize_address(email)
        rows = self._conn().execute(
            "SELECT id, email, label, created, last_used FROM app_passwords WHERE email=?"
            " ORDER BY id",
            (addr,),
        )
        usage = _read_usage(self.usage_file)
        out = []
        for app_id, em, label, created, last_used in rows:
            seen = usage.get(app_id)
            if seen is not None and (last_used is None or seen > last_used):
                last_used = seen
            out.append(AppPassword(app_id, em, label, created, last_used))
        return out

    def _app_password_used(self, app_id: int) -> None:
        now = time.time()
        if not self.readonly:
            with self._tx() as tx:
                tx.execute("UPDATE app_passwords SET last_used=? WHERE id=?", (now, app_id))
            return
        try:
            with _USAGE_LOCK:
                usage = _read_usage(self.usage_file)
                usage[app_id] = now
                if len(usage) > MAX_USAGE_ENTRIES:
                    for old in sorted(usage, key=usage.__getitem__)[: len(usage) // 2]:
                        del usage[old]
                text = json.dumps({str(k): v for k, v in usage.items()})
                atomicfile.write_text(self.usage_file, text)
        except OSError as exc:  # a login must not fail over a last-used stamp
            log.warning("app_password_usage=unwritable path=%s error=%s", self.usage_file, exc)

    def remove_app_password(self, email: str, app_id: int) -> None:
        addr = normalize_address(email)
        with self._tx() as db:
            if not db.execute(
                "DELETE FROM app_passwords WHERE email=? AND id=?", (addr, app_id)
            ).rowcount:
                raise NotFound(f"no app password {app_id} for {addr}")


_USAGE_LOCK = threading.Lock()


def _read_usage(path: Path) -> dict[int, float]:
    """The side file's {id: time}; anything malformed is ignored, never trusted."""
    try:
        raw = json.loads(path.read_bytes()[: 1 << 20])
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out: dict[int, float] = {}
    for k, v in raw.items():
        if isinstance(k, str) and k.isdigit() and isinstance(v, (int, float)):
            out[int(k)] = float(v)
    return out


def _check_side_files(path: Path) -> None:
    """Refuse a ``-wal``/``-shm`` owned by another non-root user (a writer would replay
    frames planted there). Root (the CLI) is exempt: SQLite hands its files to the
    database's owner."""
    uid = os.geteuid()
    if uid == 0:
        return
    for suffix in ("-wal", "-shm"):
        try:
            owner = os.stat(f"{path}{suffix}").st_uid
        except FileNotFoundError:
            continue
        if owner not in (uid, 0):
            raise AccountError(
                f"{path}{suffix} belongs to uid {owner}, not to this user; refusing to open"
            )


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@functools.cache
def _dummy_hash() -> str:
    return hashing.hash_password(secrets.token_hex(16))
