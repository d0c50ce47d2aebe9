"""The loads, each run the same way against Pillarbox and the reference server.

Every load is bounded in count and in time and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import socket
import ssl
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.corpus import NEEDLE
from bench.procstat import Sampler, cpu_seconds, wait_until

LOAD_TIMEOUT = 600.0  # no single load may run longer than this


@dataclass(frozen=True)
class Target:
    """One server under test: where to connect and how to watch it."""

    name: str
    smtp_port: int
    imaps_port: int
    pop3s_port: int
    user: str
    password: str
    inbox: Path  # the Maildir INBOX deliveries land in
    pids: Callable[[], list[int]]


def count_delivered(maildir: Path) -> int:
    n = 0
    for sub in ("new", "cur"):
        try:
            n += sum(1 for e in os.scandir(maildir / sub) if not e.name.startswith("."))
        except FileNotFoundError:
            continue
    return n


@dataclass(frozen=True)
class SmtpResult:
    rate: float  # messages/s, from the first connection to the last file in Maildir
    cpu_per_msg_ms: float
    peak_rss: int


def smtp_load(t: Target, count: int, size: int, sessions: int) -> SmtpResult:
    """Postfix's smtp-source sends ``count`` messages of ``size`` bytes over
    ``sessions`` parallel connections; done when all are in the Maildir."""
    before = count_delivered(t.inbox)
    cpu0 = cpu_seconds(t.pids())
    start = time.monotonic()
    with Sampler(t.pids) as sampler:
        subprocess.run(
            [
                "smtp-source",
                "-d",
                "-s",
                str(sessions),
                "-m",
                str(count),
                "-l",
                str(size),
                "-f",
                "load@sender.example",
                "-t",
                t.user,
                f"127.0.0.1:{t.smtp_port}",
            ],
            check=True,
            timeout=LOAD_TIMEOUT,
            stdout=subprocess.DEVNULL,
        )
        done = wait_until(lambda: count_delivered(t.inbox) - before >= count, LOAD_TIMEOUT)
        elapsed = time.monotonic() - start
    if not done:
        raise RuntimeError(f"{t.name}: only {count_delivered(t.inbox) - before}/{count} delivered")
    cpu = cpu_seconds(t.pids()) - cpu0
    return SmtpResult(count / elapsed, 1000 * cpu / count, sampler.peak)


# ------------------------------------------------------------------ IMAP


def _ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # both servers use throw-away self-signed certs
    return ctx


def imap_connect(t: Target) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL("127.0.0.1", t.imaps_port, ssl_context=_ctx(), timeout=120)
    conn.login(t.user, t.password)
    return conn


def imap_login_rate(t: Target, n: int) -> float:
    start = time.monotonic()
    for _ in range(n):
        imap_connect(t).logout()
    return n / (time.monotonic() - start)


def timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def _ok(typ_data: tuple[str, Any]) -> list[Any]:
    typ, data = typ_data
    if typ != "OK":
        raise RuntimeError(f"IMAP command failed: {typ} {data!r}")
    return list(data)


@dataclass(frozen=True)
class ImapMailboxResult:
    select_cold: float
    select_warm: float
    fetch_flags: float
    fetch_envelope: float
    fetch_body_mbps: float
    search_text: float


def imap_mailbox(t: Target, mailbox: str, expected: int, body_limit: int) -> ImapMailboxResult:
    """Timings on one mailbox of ``expected`` messages (seconds; MB/s for bodies)."""
    conn = imap_connect(t)
    try:
        cold = timed(lambda: _ok(conn.select(mailbox, readonly=True)))
        _ok(conn.unselect()) if hasattr(conn, "unselect") else conn.close()
        warm = timed(lambda: _ok(conn.select(mailbox, readonly=True)))
        exists = int(_ok(conn.select(mailbox, readonly=True))[0])
        if exists != expected:
            raise RuntimeError(f"{t.name}: {mailbox} has {exists} messages, want {expected}")
        flags = timed(lambda: _ok(conn.fetch("1:*", "(FLAGS)")))
        env = timed(lambda: _ok(conn.fetch("1:*", "(ENVELOPE)")))
        last = min(expected, body_limit)
        nbytes = 0

        def bodies() -> None:
            nonlocal nbytes
            for part in _ok(conn.fetch(f"1:{last}", "(BODY.PEEK[])")):
                if isinstance(part, tuple):
                    nbytes += len(part[1])

        body_time = timed(bodies)
        hits: list[object] = []
        search = timed(lambda: hits.extend(_ok(conn.search(None, "TEXT", NEEDLE))))
        found = len(hits[0].split()) if hits and isinstance(hits[0], bytes) else 0
        if found != (expected + 99) // 100:
            raise RuntimeError(f"{t.name}: SEARCH TEXT found {found}")
        return ImapMailboxResult(cold, warm, flags, env, nbytes / 1e6 / body_time, search)
    finally:
        conn.logout()


def imap_mixed(t: Target, mailbox: str, clients: int, seconds: float) -> float:
    """``clients`` threads loop SELECT/FETCH/SEARCH/STORE/NOOP for ``seconds``; ops/s."""
    ops = [0] * clients
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def worker(k: int) -> None:
        try:
            conn = imap_connect(t)
            _ok(conn.select(mailbox))
            i = 0
            while time.monotonic() < deadline and i < 100_000:
                n = 1 + (k * 37 + i) % 50
                step = i % 5
                if step == 0:
                    _ok(conn.fetch(f"{n}:{n + 20}", "(FLAGS ENVELOPE)"))
                elif step == 1:
                    _ok(conn.fetch(str(n), "(BODY.PEEK[])"))
                elif step == 2:
                    _ok(conn.search(None, "FROM", "sender1"))
                elif step == 3:
                    _ok(conn.store(str(n), "+FLAGS", "(\\Flagged)"))
                else:
                    _ok(conn.noop())
                ops[k] += 1
                i += 1
            conn.logout()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 120)
    if errors:
        raise RuntimeError(f"{t.name}: mixed load failed: {errors[0]!r}")
    return sum(ops) / (time.monotonic() - start)


def imap_idle_rss(t: Target, connections: int) -> int:
    """Open ``connections`` IMAPS sessions in IDLE; the server tree's RSS while they wait."""
    socks: list[ssl.SSLSocket] = []
    ctx = _ctx()
    try:
        for i in range(connections):
            # A server that runs out of login processes resets handshakes in this burst
            # (Dovecot's default mode did): retry a few times, bounded, then give up.
            for attempt in range(5):
                raw = socket.create_connection(("127.0.0.1", t.imaps_port), timeout=60)
                try:
                    s = ctx.wrap_socket(raw)
                    break
                except (ConnectionResetError, ssl.SSLError):
                    raw.close()
                    if attempt == 4:
                        raise
                    time.sleep(0.2 * (attempt + 1))
            socks.append(s)
            f = s.makefile("rwb")
            f.readline()
            f.write(f"a LOGIN {t.user} {t.password}\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
            f.flush()
            while not f.readline().startswith(b"+"):
                pass
            if i % 100 == 99:
                time.sleep(0.05)
        time.sleep(2)
        return int(statistics.median(_rss_samples(t, 5)))
    finally:
        for s in socks:
            try:
                s.sendall(b"DONE\r\nd LOGOUT\r\n")
                s.close()
            except OSError:
                pass


def _rss_samples(t: Target, n: int) -> list[int]:
    from bench.procstat import rss

    out = []
    for _ in range(n):
        out.append(rss(t.pids()))
        time.sleep(0.2)
    return out


# ------------------------------------------------------------------ POP3


def pop3_download(t: Target, expected: int) -> tuple[float, float]:
    """RETR every message (no DELE); returns (messages/s, MB/s)."""
    conn = poplib.POP3_SSL("127.0.0.1", t.pop3s_port, context=_ctx(), timeout=120)
    try:
        conn.user(t.user)
        conn.pass_(t.password)
        count, _ = conn.stat()
        if count != expected:
            raise RuntimeError(f"{t.name}: POP3 sees {count} messages, want {expected}")
        nbytes = 0
        start = time.monotonic()
        for i in range(1, count + 1):
            _, _lines, octets = conn.retr(i)
            nbytes += octets
        elapsed = time.monotonic() - start
        conn.rset()
    finally:
        conn.quit()
    return count / elapsed, nbytes / 1e6 / elapsed
