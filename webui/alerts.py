"""Alert mail and the dashboard banner: webui.alertchecks' conditions, deduplicated.

Where the checks run: :func:`start` runs :meth:`Monitor.run_once` in a thread of the web
process, FIRST_DELAY seconds after start and then every CHECK_SECONDS, beside ACME
renewal and disk-usage sampling. The web process already holds every input (the root
helper for SMART, the ctl socket for queue and backups, the DNS resolver, the
certificate) and the state (web.sqlite); `make run` starts it as on the appliance, so
dev mode needs nothing more, and one process means no two runs race for the state.

Mail: each condition is mailed once per fingerprint (when it starts and when it changes,
e.g. the mail disk going from 85 % to 95 %); once it is over, one "Resolved" mail;
while anything is still wrong, a summary every DIGEST_SECONDS counted from the first
alert of the episode. Alerts go to ``[alerts] email`` or, when that is empty, to the first
admin account, through the daemon (ctl ``alert_send``: local INBOX or the outbound
queue). A failed send is retried on the next run; nothing is marked sent before the
daemon accepted it.

State: tables ``alert_state`` (one row per condition) and ``alert_memo`` (SMART
baselines, DNS records once seen right, the digest clock) in ``<data_dir>/web.sqlite``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.ctl.protocol import CtlError
from webui import alertchecks
from webui.alertchecks import Condition, Memory, Run, read_memory
from webui.context import WebContext

log = logging.getLogger(__name__)

CHECK_SECONDS = 600.0
FIRST_DELAY = 60.0  # let the daemon finish starting
DIGEST_SECONDS = 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    key TEXT PRIMARY KEY,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    link TEXT NOT NULL,
    fingerprint TEXT NOT NULL,  -- the condition as last seen
    mailed TEXT,                -- the fingerprint last mailed (NULL: not yet)
    since REAL NOT NULL,        -- first seen in this episode
    cleared REAL                -- gone since then; its "Resolved" mail is still to send
);
CREATE TABLE IF NOT EXISTS alert_memo (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class AlertError(Exception):
    """An alert could not be sent; the text is safe to show."""


@dataclass(frozen=True)
class Alert:
    """One row of alert_state."""

    key: str
    severity: str
    title: str
    text: str
    link: str
    fingerprint: str
    mailed: str | None
    since: float
    cleared: float | None


def _ensure(ctx: WebContext) -> None:
    ctx.webdb.conn().executescript(SCHEMA)  # idempotent


def alerts(ctx: WebContext, *, include_cleared: bool = False) -> list[Alert]:
    """The conditions now active (critical first, then oldest first)."""
    _ensure(ctx)
    rows = ctx.webdb.conn().execute(
        "SELECT key, severity, title, text, link, fingerprint, mailed, since, cleared"
        " FROM alert_state ORDER BY severity = 'critical' DESC, since, key"
    )
    found = [Alert(*row) for row in rows]
    return found if include_cleared else [a for a in found if a.cleared is None]


class DbMemo:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def get(self, key: str) -> Any:
        row = (
            self.ctx.webdb.conn()
            .execute("SELECT value FROM alert_memo WHERE key = ?", (key,))
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self.ctx.webdb.tx() as db:
            if value is None:
                db.execute("DELETE FROM alert_memo WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO alert_memo (key, value) VALUES (?, ?)",
                    (key, json.dumps(value)),
                )


def last_checked(ctx: WebContext) -> float | None:
    """When the checks last ran (None: not yet)."""
    _ensure(ctx)
    value = DbMemo(ctx).get("checked-at")
    return float(value) if isinstance(value, int | float) else None


def recipient(ctx: WebContext) -> str | None:
    """``[alerts] email``, else the first admin account (oldest, not disabled)."""
    configured = ctx.config().alerts.email
    if configured:
        return configured
    admins = [u for u in ctx.accounts.list_users() if u.is_admin and not u.disabled]
    return min(admins, key=lambda u: (u.created, u.email)).email if admins else None


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _url(ctx: WebContext, link: str) -> str:
    cfg = ctx.config()
    scheme = "https" if cfg.listeners.webs else "http"
    return f"{scheme}://{cfg.hostname}{link or '/'}"


def send(ctx: WebContext, to: str, subject: str, text: str) -> None:
    """One message from the box to ``to``; raises AlertError."""
    try:
        ctx.ctl().call(
            "alert_send", to=to, subject=f"[{ctx.config().hostname}] {subject}", text=text
        )
    except CtlError as exc:
        raise AlertError(f"the mail service did not take the message: {exc}") from None
    log.info("alerts=mailed to=%s subject=%s", to, subject)


FOOTER = (
    "\n\n--\nThis box mails once when a problem starts or changes, once when it is over,"
    " and a daily summary while anything is still wrong. Alerts go to {to}; change that"
    " on the dashboard: {url}\n"
)


def send_test(ctx: WebContext) -> str:
    """The dashboard's "Send test alert"; returns the address. Raises AlertError."""
    to = recipient(ctx)
    if to is None:
        raise AlertError("there is no admin account and no alert address to send to")
    text = (
        "This is a test alert from your Pillarbox. If you read this, alert mail reaches you."
        + FOOTER.format(to=to, url=_url(ctx, "/"))
    )
    send(ctx, to, "Test alert", text)
    return to


class Monitor:
    """Runs the checks, keeps their state, and mails what is news."""

    def __init__(
        self,
        ctx: WebContext,
        *,
        system_path: Path = Path("/"),
        memory: Callable[[], Memory] = read_memory,
    ) -> None:
        self.ctx = ctx
        self.system_path = system_path
        self.memory = memory
        self._lock = threading.Lock()
        _ensure(ctx)

    def run_once(self) -> list[str]:
        """One round: check, record, mail. Returns the subjects of the mails sent."""
        with self._lock:
            now = self.ctx.clock()
            self._record(now, *self._check(now))
            DbMemo(self.ctx).put("checked-at", now)
            return self._mail(now)

    def _check(self, now: float) -> tuple[dict[str, Condition], list[str]]:
        active = {a.key: a.fingerprint for a in alerts(self.ctx)}
        run = Run(self.ctx, now, active, DbMemo(self.ctx), self.system_path, self.memory)
        found: dict[str, Condition] = {}
        unknown: list[str] = []
        for name, check in alertchecks.CHECKS:
            try:
                outcome = check(run)
            except Exception:  # one broken check must not silence the others
                log.exception("alerts=check-failed check=%s", name)
                unknown.append(name)
                continue
            unknown += outcome.unknown
            found.update((c.key, c) for c in outcome.conditions)
        return found, unknown

    def _record(self, now: float, found: dict[str, Condition], unknown: list[str]) -> None:
        known = {a.key: a for a in alerts(self.ctx, include_cleared=True)}
        with self.ctx.webdb.tx() as db:
            for key, c in found.items():
                old = known.get(key)
                values = (c.severity, c.title, c.text, c.link, c.fingerprint)
                if old is None:
                    db.execute(
                        "INSERT INTO alert_state (severity, title, text, link, fingerprint,"
                        " key, since) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*values, key, now),
                    )
                else:  # still on, changed, or back before its "Resolved" mail went out
                    db.execute(
                        "UPDATE alert_state SET severity=?, title=?, text=?, link=?,"
                        " fingerprint=?, cleared=NULL WHERE key=?",
                        (*values, key),
                    )
            for key, old in known.items():
                if key in found or old.cleared is not None:
                    continue
                if any(key.startswith(prefix) for prefix in unknown):
                    continue  # not judged this time: stays as it was
                if old.mailed is None:  # never announced: nothing to take back
                    db.execute("DELETE FROM alert_state WHERE key=?", (key,))
                else:
                    db.execute("UPDATE alert_state SET cleared=? WHERE key=?", (now, key))

    def _mail(self, now: float) -> list[str]:
        ctx = self.ctx
        to = recipient(ctx)
        if to is None:
            log.warning("alerts=no-recipient (no admin account and no [alerts] email)")
            return []
        memo = DbMemo(ctx)
        sent: list[str] = []
        footer = FOOTER.format(to=to, url=_url(ctx, "/"))
        try:
            for a in alerts(ctx, include_cleared=True):
                if a.cleared is not None:
                    subject = f"Resolved: {a.title}"
                    text = (
                        f"This is over: {a.title}.\nIt started {_when(a.since)} and was last "
                        f"seen before {_when(a.cleared)}." + footer
                    )
                    send(ctx, to, subject, text)
                    with ctx.webdb.tx() as db:
                        db.execute(
                            "DELETE FROM alert_state WHERE key=? AND cleared IS NOT NULL", (a.key,)
                        )
                elif a.mailed != a.fingerprint:
                    subject = a.title
                    text = (
                        f"{a.text}\n\nSince: {_when(a.since)}\nDetails: {_url(ctx, a.link)}"
                        + footer
                    )
                    send(ctx, to, subject, text)
                    with ctx.webdb.tx() as db:
                        db.execute(
                            "UPDATE alert_state SET mailed=? WHERE key=?", (a.fingerprint, a.key)
                        )
                else:
                    continue
                sent.append(subject)
            still = alerts(ctx)
            if not still:
                memo.put("digest-at", None)
                return sent
            last = memo.get("digest-at")
            if not isinstance(last, int | float):
                memo.put("digest-at", now)  # the first summary a day after this episode began
            elif now - float(last) >= DIGEST_SECONDS:
                subject = (
                    f"Daily summary: {len(still)} problem{'s' if len(still) != 1 else ''}"
                    " still open"
                )
                text = "\n\n".join(f"* {a.title} (since {_when(a.since)})\n{a.text}" for a in still)
                send(ctx, to, subject, text + footer)
                memo.put("digest-at", now)
                sent.append(subject)
        except AlertError as exc:  # the daemon is down or refused: the next run retries
            log.warning("alerts=mail-deferred to=%s error=%s", to, exc)
        return sent


def start(
    ctx: WebContext, stop: threading.Event, monitor: Monitor | None = None
) -> threading.Thread:
    """Check every CHECK_SECONDS until ``stop`` is set (a daemon thread beside the server)."""
    mon = monitor or Monitor(ctx)

    def loop() -> None:
        wait = FIRST_DELAY
        while not stop.wait(wait):
            wait = CHECK_SECONDS
            try:
                mon.run_once()
            except Exception:  # a broken config or database must not end the alerts for good
                log.exception("alerts=run-failed")

    thread = threading.Thread(target=loop, name="alerts", daemon=True)
    thread.start()
    return thread
