"""Concurrent sessions on one mailbox, every untagged response checked against a model
(issue 17 "Done means": the concurrency test).

Four imaplib sessions over TLS work on the same mailbox in parallel threads: STORE of
system flags and keywords (sequence and UID forms), EXPUNGE and UID EXPUNGE, APPEND,
SEARCH, FETCH, NOOP and IDLE; two of them with CONDSTORE on. A fifth session watches
through EXAMINE (FETCH, SEARCH, NOOP, IDLE). Each session keeps a model of its view of
the mailbox, built only from what the server told it, and checks every untagged line as
it arrives:

- EXISTS never decreases (only EXPUNGE responses shrink the view; RFC 9051 7.4.1);
- EXPUNGE and FETCH name a sequence number the session knows, and sequence numbers shift
  down after each EXPUNGE; a FETCH UID agrees with the model's UID at that number;
- no EXPUNGE while a FETCH, STORE or SEARCH (non-UID forms) is answered (RFC 9051 7.5.1);
- FLAGS only grows while selected and lists every keyword before a FETCH shows it
  (RFC 9051 7.3.5);
- a message's MODSEQ never goes back (RFC 7162 3.1.1).

At the end every session's model equals the mailbox as a fresh session sees it, and the
mailbox equals the union of the operations: the initial messages plus every APPENDUID,
minus every message some session was told was expunged; each session's own keywords
(only that session changes them) are as it last set them. The same run against a private
Dovecot 2.3 finds no violation, so the model asks nothing a reference server does not do.
"""

from __future__ import annotations

import imaplib
import random
import re
import ssl
import threading
import time
from dataclasses import dataclass, field

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.dovecot_ref import private_dovecot

SESSIONS = 4  # writers; one read-only watcher besides
OPS_PER_SESSION = 300  # bounded: the loop also stops at TIME_BUDGET
TIME_BUDGET = 45.0  # seconds for the parallel phase
INITIAL_MESSAGES = 30
MAILBOX = "Shared"
SHARED_KEYWORDS = ("$Shared1", "$Shared2")
WATCHER = SESSIONS  # the number of the read-only session
SYSTEM = ("\\Seen", "\\Flagged", "\\Answered")

_FETCH = re.compile(rb"\* (\d+) FETCH \((.*)\)")
_NUMBERED = re.compile(rb"\* (\d+) (EXISTS|EXPUNGE|RECENT)")
_FLAGS = re.compile(rb"\* FLAGS \(([^)]*)\)")
_SEARCH = re.compile(rb"\* SEARCH((?: \d+)*)")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_NO_EXPUNGE_DURING = frozenset({"FETCH", "STORE", "SEARCH"})  # RFC 9051 7.5.1


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: ssl.SSLContext
    user: str
    password: str


@dataclass
class Shared:
    """What all sessions did, for the final union check (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    appended: set[int] = field(default_factory=set)
    expunged: set[int] = field(default_factory=set)


class ModelSession(imaplib.IMAP4_SSL):
    """imaplib with every response line checked, in order, against the session's model."""

    def __init__(self, target: Target, name: str) -> None:
        self.setup_model(name)  # before the greeting is read
        super().__init__(target.host, target.port, ssl_context=target.tls, timeout=30)
        self.login(target.user, target.password)

    def setup_model(self, name: str) -> None:
        self.name = name
        self.view: list[int | None] = []  # UID at each sequence number (None: not told yet)
        self.flags_of: dict[int, set[str]] = {}
        self.known_flags: set[str] | None = None  # from the last * FLAGS
        self.current = ""  # command whose answer is being read ("UID FETCH", "IDLE" ...)
        self.violations: list[str] = []
        self.expunged_seen: set[int] = set()
        self.modseq_of: dict[int, int] = {}
        self.lines = 0

    def _violation(self, text: str, line: bytes) -> None:
        self.violations.append(f"{self.name} during {self.current or '-'}: {text}: {line!r}")

    def _get_line(self) -> bytes:
        line: bytes = super()._get_line()  # type: ignore[misc]  # imaplib's reader
        if line.startswith(b"* "):
            self.lines += 1
            self._check(line)
        return line

    # ---- the model
    def _check(self, line: bytes) -> None:
        numbered = _NUMBERED.fullmatch(line)
        if numbered:
            n, kind = int(numbered.group(1)), numbered.group(2)
            if kind == b"EXISTS":
                if n < len(self.view):
                    self._violation(f"EXISTS {n} below {len(self.view)}", line)
                self.view += [None] * (n - len(self.view))
            elif kind == b"EXPUNGE":
                if self.current in _NO_EXPUNGE_DURING:
                    self._violation("EXPUNGE during a non-UID FETCH/STORE/SEARCH", line)
                if not 1 <= n <= len(self.view):
                    self._violation(f"EXPUNGE of unknown number (view {len(self.view)})", line)
                    return
                uid = self.view.pop(n - 1)
                if uid is not None:  # None: arrived and went before this session asked
                    self.flags_of.pop(uid, None)
                    self.modseq_of.pop(uid, None)
                    self.expunged_seen.add(uid)
            return
        flags = _FLAGS.fullmatch(line)
        if flags:
            new = set(flags.group(1).decode().split())
            if self.known_flags is not None and not self.known_flags <= new:
                self._violation(f"FLAGS shrank by {sorted(self.known_flags - new)}", line)
            self.known_flags = new
            return
        fetch = _FETCH.fullmatch(line)
        if fetch:
            self._check_fetch(int(fetch.group(1)), fetch.group(2), line)
            return
        search = _SEARCH.fullmatch(line)
        if search and self.current == "SEARCH":
            for number in search.group(1).split():
                if not 1 <= int(number) <= len(self.view):
                    self._violation("SEARCH returned an unknown number", line)

    def _check_fetch(self, seq: int, items: bytes, line: bytes) -> None:
        if not 1 <= seq <= len(self.view):
            self._violation(f"FETCH of unknown number (view {len(self.view)})", line)
            return
        uid_match = re.search(rb"\bUID (\d+)", items)
        uid = self.view[seq - 1]
        if uid_match:
            told = int(uid_match.group(1))
            if uid is not None and uid != told:
                self._violation(f"FETCH UID {told} at number of UID {uid}", line)
            uid = self.view[seq - 1] = told
        modseq = re.search(rb"\bMODSEQ \((\d+)\)", items)
        if modseq and uid is not None:
            value = int(modseq.group(1))
            if value < self.modseq_of.get(uid, 0):
                self._violation(f"MODSEQ went back from {self.modseq_of[uid]}", line)
            self.modseq_of[uid] = value
        flags_match = re.search(rb"\bFLAGS \(([^)]*)\)", items)
        if flags_match is None:
            return
        flags = set(flags_match.group(1).decode().split()) - {"\\Recent"}
        keywords = {f for f in flags if not f.startswith("\\")}
        if not keywords <= (self.known_flags or set()):
            unknown = sorted(keywords - (self.known_flags or set()))
            self._violation(f"FETCH shows keywords {unknown} before FLAGS listed them", line)
        if uid is not None:
            self.flags_of[uid] = flags

    # ---- commands
    def run(self, what: str, fn: object, *args: object) -> tuple[str, list[bytes]]:
        self.current = what
        try:
            typ, data = fn(*args)  # type: ignore[operator]
        finally:
            self.current = ""
        if typ != "OK":
            self.violations.append(f"{self.name}: {what} {args!r} answered {typ} {data!r}")
        return typ, data

    def resolve(self) -> None:
        """Learn the UIDs of messages known only by number (new arrivals)."""
        unknown = [i + 1 for i, uid in enumerate(self.view) if uid is None]
        if unknown:
            self.run("FETCH", self.fetch, f"{unknown[0]}:*", "(UID FLAGS)")

    def idle(self, seconds: float) -> None:
        """IDLE (RFC 2177) through imaplib's reader, so the checks see every line."""
        self.current = "IDLE"
        tag = self._new_tag()
        self.tagged_commands[tag] = None
        self.send(tag + b" IDLE\r\n")
        while self._get_response() is not None:  # untagged lines until "+ idling"
            pass
        time.sleep(seconds)
        self.send(b"DONE\r\n")
        typ, _ = self._get_tagged_response(tag)
        self.current = ""
        if typ != "OK":
            self.violations.append(f"{self.name}: IDLE answered {typ}")


def _flag_list(flags: list[str]) -> str:
    return "(" + " ".join(flags) + ")"


def _worker(
    target: Target, number: int, shared: Shared, deadline: float
) -> tuple[ModelSession, dict[int, dict[str, bool]], int]:
    rnd = random.Random(1700 + number)
    own = [f"$S{number}a", f"$S{number}b"]
    intents: dict[int, dict[str, bool]] = {}  # uid -> own keyword -> set?
    c = ModelSession(target, f"s{number}")
    if number % 2:
        c.run("ENABLE", c.enable, "CONDSTORE")
    c.run("SELECT", c.select, MAILBOX, number == WATCHER)
    c.resolve()
    done = 0
    while done < OPS_PER_SESSION and time.monotonic() < deadline:
        done += 1
        c.resolve()
        known = [u for u in c.view if u is not None]
        op = rnd.random()
        if number == WATCHER:  # read-only: FETCH, SEARCH, NOOP, IDLE
            op = rnd.uniform(0.58, 1.0)
        if op < 0.40 and known:  # STORE, by number or by UID
            picked = rnd.sample(known, min(len(known), rnd.randint(1, 3)))
            flags = rnd.sample([*own, *SHARED_KEYWORDS, *SYSTEM], rnd.randint(1, 2))
            add = rnd.random() < 0.6
            mode = "+FLAGS" if add else "-FLAGS"
            if rnd.random() < 0.5:
                seqs = ",".join(str(c.view.index(u) + 1) for u in picked)
                c.run("STORE", c.store, seqs, mode, _flag_list(flags))
            else:
                c.run(
                    "UID STORE", c.uid, "STORE", ",".join(map(str, picked)), mode, _flag_list(flags)
                )
            for uid in picked:
                for kw in flags:
                    if kw in own:
                        intents.setdefault(uid, {})[kw] = add
        elif op < 0.50:  # APPEND, sometimes with this session's keywords
            kws = rnd.sample(own, rnd.randint(0, 2))
            msg = make_message(f"{c.name} {done}", f"body {done}\r\n")
            typ, data = c.run("APPEND", c.append, MAILBOX, _flag_list(kws), None, msg)
            found = _APPENDUID.search(data[0] or b"") if typ == "OK" else None
            if found is None:
                c.violations.append(f"{c.name}: APPEND without APPENDUID: {data!r}")
            else:
                uid = int(found.group(1))
                with shared.lock:
                    shared.appended.add(uid)
                intents[uid] = {kw: kw in kws for kw in own}
        elif op < 0.58 and known:  # mark and expunge one or two messages
            picked = rnd.sample(known, min(len(known), rnd.randint(1, 2)))
            uids = ",".join(map(str, picked))
            c.run("UID STORE", c.uid, "STORE", uids, "+FLAGS.SILENT", "(\\Deleted)")
            if rnd.random() < 0.5:
                c.run("UID EXPUNGE", c.uid, "EXPUNGE", uids)
            else:
                c.run("EXPUNGE", c.expunge)
        elif op < 0.68 and known:  # FETCH by number
            first = rnd.randint(1, len(c.view))
            c.run("FETCH", c.fetch, f"{first}:{min(len(c.view), first + 5)}", "(UID FLAGS)")
        elif op < 0.74 and known:
            c.run("UID FETCH", c.uid, "FETCH", f"{rnd.choice(known)}:*", "(FLAGS)")
        elif op < 0.82:
            kw = rnd.choice([*own, *SHARED_KEYWORDS])
            c.run("SEARCH", c.search, None, "KEYWORD", kw)
        elif op < 0.92:
            c.run("NOOP", c.noop)
        else:
            c.idle(rnd.uniform(0.02, 0.15))
    return c, intents, done


def _truth(target: Target) -> dict[int, set[str]]:
    c = ModelSession(target, "truth")
    c.select(MAILBOX, readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK"
    out: dict[int, set[str]] = {}
    for item in data:
        if not item:
            continue
        raw = item if isinstance(item, bytes) else item[0]
        uid = re.search(rb"UID (\d+)", raw)
        flags = re.search(rb"FLAGS \(([^)]*)\)", raw)
        assert uid and flags, raw
        out[int(uid.group(1))] = set(flags.group(1).decode().split()) - {"\\Recent"}
    c.logout()
    return out


def _fill(target: Target) -> set[int]:
    c = ModelSession(target, "fill")
    c.run("CREATE", c.create, MAILBOX)
    uids = set()
    for n in range(INITIAL_MESSAGES):
        _, data = c.run("APPEND", c.append, MAILBOX, "()", None, make_message(f"start {n}"))
        found = _APPENDUID.search(data[0] or b"")
        assert found, data
        uids.add(int(found.group(1)))
    c.logout()
    return uids


def test_concurrent_sessions_match_their_models(imap_server: ImapServer) -> None:
    target = Target(
        imap_server.host,
        imap_server.tls_port,
        imap_server.client_tls(),
        imap_server.user,
        PASSWORD,
    )
    run_concurrently(target)


def test_the_model_holds_for_dovecot() -> None:
    """The same run against a private Dovecot 2.3 finds no violation: the model asks
    nothing of a server that a reference server does not do."""
    with private_dovecot() as ref:
        run_concurrently(Target("127.0.0.1", ref.port, ref.tls(), ref.user, ref.password))


def run_concurrently(target: Target) -> None:
    initial = _fill(target)
    shared = Shared()
    results: list[tuple[ModelSession, dict[int, dict[str, bool]], int] | BaseException] = []
    results_lock = threading.Lock()
    deadline = time.monotonic() + TIME_BUDGET

    def run(number: int) -> None:
        try:
            outcome: tuple[ModelSession, dict[int, dict[str, bool]], int] | BaseException
            outcome = _worker(target, number, shared, deadline)
        except BaseException as exc:  # reported below, with the thread's session
            outcome = exc
        with results_lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(SESSIONS + 1)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIME_BUDGET + 60)
    elapsed = time.monotonic() - started
    assert all(not t.is_alive() for t in threads), "a session hung"
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    sessions = [r for r in results if not isinstance(r, BaseException)]
    assert len(sessions) == SESSIONS + 1

    # Quiet now: every session catches up and checks its model against the mailbox.
    for c, _, _ in sessions:
        c.run("NOOP", c.noop)
        c.resolve()
        c.run("UID FETCH", c.uid, "FETCH", "1:*", "(FLAGS)")
        shared.expunged |= c.expunged_seen
    truth = _truth(target)
    violations = [v for c, _, _ in sessions for v in c.violations]
    assert not violations, "\n".join(violations[:40])

    for c, intents, _ in sessions:
        assert c.view == sorted(truth), (c.name, c.view, sorted(truth))
        assert {u: c.flags_of[u] for u in truth} == truth, c.name
        assert set().union(*truth.values()) <= (c.known_flags or set()), c.name
        for uid, wanted in intents.items():  # only this session changes its keywords
            if uid in truth:
                for kw, present in wanted.items():
                    assert (kw in truth[uid]) == present, (c.name, uid, kw, truth[uid])

    # The union of the operations: nothing lost, nothing resurrected, nothing invented.
    # (A session that expunged or marked a message knew its UID, so it saw it go.)
    assert shared.expunged.isdisjoint(truth)
    assert set(truth) == (initial | shared.appended) - shared.expunged
    ops = sum(done for _, _, done in sessions)
    assert ops >= (SESSIONS + 1) * 50, f"only {ops} operations in {elapsed:.1f}s"
    assert shared.expunged and shared.appended  # the run exercised both
    for c, _, _ in sessions:
        c.logout()
