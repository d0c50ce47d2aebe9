"""`pillarbox status` for a person: the ctl ``status`` answer as short labelled lines.

The JSON (``pillarbox status --json``) stays the interface for scripts; this text may
change. Services this module does not know are still shown, their fields in words.
"""

from __future__ import annotations

from typing import Any

LISTENER_NAMES = {
    "smtp": "incoming mail (SMTP)",
    "submission": "mail apps sending (submission, STARTTLS)",
    "submissions": "mail apps sending (submissions, TLS)",
}


def duration(seconds: float) -> str:
    """``3 seconds``, ``5 minutes``, ``2 hours 5 minutes``, ``3 days 4 hours``."""
    s = int(seconds)
    parts = [(s // 86400, "day"), (s % 86400 // 3600, "hour"), (s % 3600 // 60, "minute")]
    if s < 60:
        return _count(s, "second")
    shown = [(n, unit) for n, unit in parts if n][:2]
    return " ".join(_count(n, unit) for n, unit in shown)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _words(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_words(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')} {_words(v)}" for k, v in value.items())
    return str(value)


def _queue(st: dict[str, Any]) -> str:
    waiting = int(st.get("size", 0))
    head = "empty" if waiting == 0 else f"{_count(waiting, 'message')} waiting"
    if not st.get("running", True):
        head += " (stopped)"
    counts = ", ".join(
        f"{st[k]} {k}" for k in ("in_flight", "delivered", "deferred", "failed") if k in st
    ).replace("in_flight", "sending now")
    return f"{head}; since start: {counts}" if counts else head


def _backup(st: dict[str, Any]) -> str:
    target = st.get("target") or "none"
    if target == "none":
        return "no target set up"
    text = f"to {target}, last run: {st.get('state', 'never')}"
    return text + (f", next: {st['next_run']}" if st.get("next_run") else "")


def render(status: dict[str, Any]) -> str:
    services: dict[str, dict[str, Any]] = status.get("services", {})
    lines = [
        f"Pillarbox {status.get('version', '?')} on {status.get('hostname', '?')},"
        f" running for {duration(float(status.get('uptime', 0)))}",
        "",
        "Listening:",
    ]
    for name, st in services.items():
        named: dict[str, list[str]] = st.get("listeners") or {}
        if named:
            for key, addrs in named.items():
                lines.append(f"  {LISTENER_NAMES.get(key, key):<42} {', '.join(addrs)}")
        elif st.get("listening"):
            label = "control socket" if name == "ctl" else name.upper()
            lines.append(f"  {label:<42} {', '.join(st['listening'])}")
    lines.append("")
    connections = []
    for name in ("smtp", "imap", "pop3"):
        st = services.get(name, {})
        if "connections" in st or "sessions" in st:
            n = st.get("sessions", st.get("connections", 0))
            connections.append(f"{name.upper()} {n}")
    shown = {"ctl", "smtp", "imap", "pop3"}
    if connections:
        lines.append(f"Open connections:  {', '.join(connections)}")
    if "queue" in services:
        lines.append(f"Outgoing queue:    {_queue(services['queue'])}")
    if "backup" in services:
        lines.append(f"Backup:            {_backup(services['backup'])}")
    if "filters" in services:
        f = services["filters"]
        lines.append(
            f"Filters:           {_words(f.get('filters', []))};"
            f" at RCPT: {_words(f.get('recipient_filters', []))}"
        )
    shown |= {"queue", "backup", "filters"}
    for name, st in services.items():
        if name not in shown:
            rest = {k: v for k, v in st.items() if k != "listening"}
            lines.append(f"{name.capitalize() + ':':<18} {_words(rest) or 'running'}")
    return "\n".join(lines)
