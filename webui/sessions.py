"""Server-side web sessions: the cookie holds a random id, the data lives in web.sqlite.

A session ends when its row is gone: logout deletes it, a password change made in the
web UI deletes the user's other sessions, and a session idle for ``idle_timeout``
(30 min) or older than ``lifetime`` (12 h; never shorter than the idle timeout) is
deleted on its next use and by the pruning that every new session triggers. At most
``MAX_SESSIONS`` rows are kept; past that the least recently used anonymous ones (a
login form's CSRF token) go first.
A fresh id is issued at sign-in (:meth:`ServerSession.rotate`): no session fixation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict
from werkzeug.wrappers import Response

from webui.webdb import WebDb

log = logging.getLogger(__name__)

MAX_SESSIONS = 10_000
TOUCH_EVERY = 60.0  # seconds: the last-seen time is written at most this often
ID_BYTES = 32


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """One signed-in session as its user sees it in their list of devices."""

    key: str  # the row's id hash: names the row, is no cookie
    created: float
    seen: float
    ip: str
    user_agent: str


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(
        self, initial: dict[str, Any] | None = None, sid: str | None = None, seen: float = 0.0
    ) -> None:
        def changed(_self: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial or {}, changed)
        self.sid = sid
        self.seen = seen
        self.modified = False
        self.expired = False  # this request's cookie named a session that had expired
        self.expired_user: str | None = None
        self.rotated_from: str | None = None

    def rotate(self) -> None:
        """Drop the current row and continue under a new id (sign-in, sign-out)."""
        if self.sid is not None:
            self.rotated_from = self.sid
        self.sid = None
        self.modified = True


class SessionStore:
    def __init__(
        self,
        db: WebDb,
        clock: Callable[[], float],
        idle_timeout: Callable[[], float],
        lifetime: float,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.db = db
        self.clock = clock
        self.idle = idle_timeout  # read on each use: the context's value may change
        self.lifetime = lifetime
        self.max_sessions = max_sessions

    def load(self, sid: str) -> ServerSession | None:
        """The live session ``sid``; None if unknown. An expired one is deleted and an
        empty session marked ``expired`` (with ``expired_user``) comes back instead."""
        row = (
            self.db.conn()
            .execute(
                "SELECT data, created, seen, user FROM sessions WHERE id_hash=?", (_hash(sid),)
            )
            .fetchone()
        )
        if row is None:
            return None
        data, created, seen, user = row
        now = self.clock()
        idle = self.idle()
        if now - seen > idle or now - created > max(self.lifetime, idle):
            self.delete(sid)
            gone = ServerSession()
            gone.expired = True
            gone.expired_user = user
            return gone
        try:
            values = json.loads(data)
        except ValueError:
            values = {}
        return ServerSession(values if isinstance(values, dict) else {}, sid, seen)

    def save(self, session: ServerSession) -> str:
        """Write the session; a new one gets an id (returned)."""
        now = self.clock()
        data = json.dumps(dict(session), separators=(",", ":"))
        user = session.get("user") if isinstance(session.get("user"), str) else None
        with self.db.tx() as db:
            if session.rotated_from is not None:
                db.execute("DELETE FROM sessions WHERE id_hash=?", (_hash(session.rotated_from),))
                session.rotated_from = None
            if session.sid is None:
                session.sid = secrets.token_urlsafe(ID_BYTES)
                db.execute(
                    "INSERT INTO sessions(id_hash, user, data, created, seen) VALUES (?,?,?,?,?)",
                    (_hash(session.sid), user, data, now, now),
                )
                self._prune(db, now)
            else:
                db.execute(
                    "UPDATE sessions SET user=?, data=?, seen=? WHERE id_hash=?",
                    (user, data, now, _hash(session.sid)),
                )
        session.seen = now
        return session.sid

    def _prune(self, db: Any, now: float) -> None:
        db.execute(
            "DELETE FROM sessions WHERE seen < ? OR created < ?",
            (now - self.idle(), now - max(self.lifetime, self.idle())),
        )
        (count,) = db.execute("SELECT COUNT(*) FROM sessions").fetchone()
        if count > self.max_sessions:
            db.execute(
                "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions"
                " ORDER BY user IS NOT NULL, seen LIMIT ?)",
                (count - self.max_sessions,),
            )

    def touch(self, session: ServerSession) -> None:
        now = self.clock()
        if session.sid is None or now - session.seen < TOUCH_EVERY:
            return
        with self.db.tx() as db:
            db.execute("UPDATE sessions SET seen=? WHERE id_hash=?", (now, _hash(session.sid)))
        session.seen = now

    def delete(self, sid: str) -> None:
        with self.db.tx() as db:
            db.execute("DELETE FROM sessions WHERE id_hash=?", (_hash(sid),))

    def revoke_user(self, email: str, keep: str | None = None) -> int:
        """End every session of ``email`` except ``keep``; the number ended."""
        with self.db.tx() as db:
            cur = db.execute(
                "DELETE FROM sessions WHERE lower(user)=lower(?) AND id_hash!=?",
                (email, _hash(keep) if keep else ""),
            )
            ended = cur.rowcount
        if ended:
            log.info("web=sessions-revoked user=%s count=%d", email, ended)
        return ended

    def list_user(self, email: str) -> list[SessionInfo]:
        """The live sessions of ``email``, most recently used first."""
        now = self.clock()
        rows = (
            self.db.conn()
            .execute(
                "SELECT id_hash, data, created, seen FROM sessions WHERE lower(user)=lower(?)"
                " AND seen >= ? AND created >= ? ORDER BY seen DESC",
                (email, now - self.idle(), now - max(self.lifetime, self.idle())),
            )
            .fetchall()
        )
        out = []
        for key, data, created, seen in rows:
            try:
                values = json.loads(data)
            except ValueError:
                values = {}
            if not isinstance(values, dict):
                values = {}
            ip, ua = values.get("ip"), values.get("ua")
            out.append(
                SessionInfo(
                    key,
                    created,
                    seen,
                    ip if isinstance(ip, str) else "",
                    ua if isinstance(ua, str) else "",
                )
            )
        return out

    def end_one(self, email: str, key: str) -> bool:
        """End the session whose id hash is ``key`` if it belongs to ``email``."""
        with self.db.tx() as db:
            cur = db.execute(
                "DELETE FROM sessions WHERE id_hash=? AND lower(user)=lower(?)", (key, email)
            )
            ended = cur.rowcount == 1
        if ended:
            log.info("web=session-ended user=%s", email)
        return ended

    @staticmethod
    def key_of(sid: str | None) -> str:
        """The id hash (row key) of a session id."""
        return _hash(sid) if sid else ""

    def count(self) -> int:
        (n,) = self.db.conn().execute("SELECT COUNT(*) FROM sessions").fetchone()
        return int(n)


class ServerSessionInterface(SessionInterface):
    """Flask's session over :class:`SessionStore`; the cookie is Secure whenever the page
    itself came over HTTPS (browsers drop Secure cookies on http://pillarbox.local)."""

    def __init__(self, store: Callable[[], SessionStore]) -> None:
        self.store = store

    def get_cookie_secure(self, app: Flask) -> bool:
        from flask import request

        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app), "")
        if sid and len(sid) < 100:
            found = self.store().load(sid)
            if found is not None:
                return found
        return ServerSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        store = self.store()
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if not session:
            if session.sid is not None or session.rotated_from is not None:
                for sid in (session.sid, session.rotated_from):
                    if sid is not None:
                        store.delete(sid)
                response.delete_cookie(name, domain=domain, path=path)
            return
        if session.modified or session.sid is None:
            sid = store.save(session)
            response.set_cookie(
                name,
                sid,
                expires=self.get_expiration_time(app, session),
                httponly=self.get_cookie_httponly(app),
                domain=domain,
                path=path,
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
                partitioned=self.get_cookie_partitioned(app),
            )
        else:
            store.touch(session)
        response.vary.add("Cookie")
