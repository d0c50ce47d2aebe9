"""Hypothesis feeds generated POP3 sessions to the real daemon (`pillarbox run`): on
POP3S (995, TLS) mostly after a good login, so the TRANSACTION commands are reached,
and on plain POP3 (110) before any login.

Every line must get one well-formed answer (RFC 1939 3: "+OK" or "-ERR", multi-line
answers ended by a line holding only "."; RFC 5034 4: "+ " continuations in AUTH),
within a timeout. The connection may end only after QUIT or right after an -ERR (the
server drops clients after repeated errors or failed logins). The daemon's resident
memory (VmRSS) stays under its warmed-up size + 30 MB. Bounded: about 150 sessions,
well under 60 s.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from appliance import config
from appliance.accounts import Accounts
from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore
from tests.harness import Daemon, rss, write_config
from tests.harness import connect as harness_connect

USER = "alice@example.org"
OTHER = "bob@example.org"
PASSWORD = "fuzz-Password-1234"
RSS_HEADROOM = 30 * 1024 * 1024
REPLY_TIMEOUT = 15.0
STATUS = re.compile(rb"(\+OK|-ERR)( [^\r\n]*)?\r\n")
CONTINUATION = re.compile(rb"\+ [^\r\n]*\r\n")
MESSAGES = [
    b"Subject: one\r\n\r\nhello\r\n",
    b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n",
    b"Subject: long\r\n\r\n" + b"y" * 900 + b"\r\n" * 40,
    b"Subject: empty body\r\n\r\n",
    b"Subject: 8bit \xc3\xa9\r\n\r\n\xff\xfe raw\r\n",
]


def note(text: str) -> None:
    if currently_in_test_context():
        event(text)


@dataclass
class Box:
    daemon: Daemon
    store: MaildirStore
    src: Path
    baseline: int = 0

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def check_memory(self) -> None:
        used = rss(self.pid)
        assert used < self.baseline + RSS_HEADROOM, (
            f"daemon RSS {used >> 20} MiB, started at {self.baseline >> 20} MiB"
        )

    def refill(self) -> None:
        """QUIT after DELE removes mail: keep a few messages to read."""
        if len(self.store.snapshot(USER, INBOX).messages) < 3:
            for data in MESSAGES:
                self.src.write_bytes(data)
                self.store.deliver([DeliveryTarget(USER)], self.src)


class Closed(Exception):
    pass


class Client:
    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(REPLY_TIMEOUT)
        self.sock = sock
        self.buf = b""
        self.last = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def reply(self, multi_if_ok: bool) -> bytes:
        first = self.line()
        self.last = first
        if CONTINUATION.fullmatch(first):
            return first
        assert STATUS.fullmatch(first), f"malformed POP3 reply {first!r}"
        if multi_if_ok and first.startswith(b"+OK"):
            while (line := self.line()) != b".\r\n":
                assert line.endswith(b"\r\n")
        return first

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\r\n")


def multi_line(line: bytes) -> bool:
    """Whether a +OK answer to ``line`` is multi-line, as the server parses commands."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    verb, _, arg = text.partition(" ")
    verb = verb.upper()
    if verb in ("CAPA", "RETR", "TOP"):
        return True
    if verb in ("LIST", "UIDL"):
        return not arg.strip()
    if verb == "AUTH":
        return not arg.strip().partition(" ")[0]
    return False


# ---------------------------------------------------------------- strategies

line_bytes = st.binary(max_size=100).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
line_text = st.text(
    st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=60
).map(lambda s: s.encode("utf-8"))
odd = st.one_of(line_bytes, line_text, st.sampled_from([b"", b" ", b"\x00", b"\xff"]))
number = st.one_of(
    st.integers(-1, 8).map(lambda n: str(n).encode()),
    st.sampled_from([b"99999999999999999999", b"1 2", b"0x1", b"\xd9\xa3", b"+1", b" 1"]),
    odd,
)


def sasl(user: str, secret: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{secret}".encode())


@st.composite
def command(draw: st.DrawFn) -> bytes:
    pick = draw(st.integers(0, 12))
    if pick == 0:
        return draw(odd)
    if pick == 1:
        return b"USER " + draw(st.sampled_from([USER.encode(), OTHER.encode(), b""]) | odd)
    if pick == 2:
        return b"PASS " + draw(st.sampled_from([PASSWORD.encode(), b"wrong"]) | odd)
    if pick == 3:
        blob = draw(st.sampled_from([sasl(OTHER, "wrong"), b"=", b"*", b"!!"]) | odd)
        return draw(st.sampled_from([b"AUTH PLAIN ", b"", b"AUTH X "])) + blob
    if pick == 4:
        return draw(st.sampled_from([b"AUTH", b"AUTH PLAIN", b"CAPA", b"STLS", b"capa"]))
    if pick in (5, 6):
        verb = draw(st.sampled_from([b"LIST", b"UIDL", b"RETR", b"DELE", b"list", b"Retr"]))
        return verb + draw(st.sampled_from([b"", b" "])) + draw(number)
    if pick == 7:
        return b"TOP " + draw(number) + b" " + draw(number)
    if pick == 8:
        return draw(st.sampled_from([b"STAT", b"NOOP", b"RSET", b"QUIT", b"LIST", b"UIDL"]))
    if pick == 9:
        return b"X" * draw(st.sampled_from([1020, 1030, 3000]))  # around MAX_LINE
    verb = draw(st.sampled_from([b"STAT", b"NOOP", b"RSET", b"APOP", b"XTND", b"LAST", b"TOP"]))
    return verb + b" " + draw(odd)


# ---------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    root = tmp_path_factory.mktemp("pop3-fuzz")
    # Failed logins are part of the fuzz; the throttle is not what is under test here.
    relaxed = {
        "login_free_failures": 1000,
        "login_ip_free_failures": 1000,
        "login_account_ceiling": 1000,
    }
    cfg_path = write_config(root, limits=relaxed)
    cfg = config.load(cfg_path)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("example.org")
    accounts.add_user(USER, PASSWORD)
    accounts.add_user(OTHER, PASSWORD)
    accounts.close()
    store = MaildirStore(cfg.mail_dir, lambda e: None, lambda p: b"")
    b = Box(Daemon(cfg_path, wait_for=("pop3", "pop3s")), store, root / "src.eml")
    b.refill()
    with b.daemon:
        for login in (True, False, True):  # warm up both paths, TLS and a login
            run_session(b, login, [b"CAPA", b"STAT", b"LIST", b"RETR 1", b"TOP 2 1", b"UIDL"])
        b.baseline = rss(b.pid)
        yield b
        b.check_memory()


def connect(box: Box, tls: bool) -> Client:
    addr = box.daemon.addr("pop3s" if tls else "pop3")
    return Client(harness_connect(addr, tls=tls, timeout=REPLY_TIMEOUT))


def run_session(box: Box, login: bool, lines: list[bytes]) -> None:
    """``login``: on POP3S, logged in first; else plain POP3, never logged in."""
    box.refill()
    client = connect(box, login)
    try:
        assert client.reply(False).startswith(b"+OK")
        if login:
            client.send(b"USER " + USER.encode())
            client.reply(False)
            client.send(b"PASS " + PASSWORD.encode())
            note(f"login {client.reply(False)[:4].decode().strip()}")
        in_sasl = False
        for line in lines:
            if not login and line.upper().startswith(b"STLS"):
                continue  # a TLS handshake is not a line to answer
            client.send(line)
            try:
                first = client.reply(not in_sasl and multi_line(line))
            except Closed as exc:
                assert client.last.startswith(b"-ERR"), (
                    f"closed without an answer to {line[:60]!r} after {client.last!r}"
                    f" (pending {exc.args[0]!r})"
                )
                note("closed after -ERR")
                return
            verb = line.split(b" ", 1)[0].upper()
            if verb.isalpha() and len(verb) == 4:
                note(f"{verb.decode()} {first[:4].decode().strip()}")
            in_sasl = first.startswith(b"+ ")
            if line.upper() == b"QUIT" and not in_sasl:
                assert client.sock.recv(1) == b""  # closed after the answer
                return
    except (ConnectionResetError, BrokenPipeError):
        assert client.last.startswith(b"-ERR"), f"reset after {client.last!r}"
    finally:
        client.sock.close()


FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@FUZZ
@given(lines=st.lists(command(), min_size=1, max_size=15))
def test_fuzz_pop3s_logged_in(box: Box, lines: list[bytes]) -> None:
    run_session(box, True, lines)
    box.check_memory()


@settings(FUZZ, max_examples=60)
@given(lines=st.lists(command(), min_size=1, max_size=15))
def test_fuzz_pop3_before_login(box: Box, lines: list[bytes]) -> None:
    run_session(box, False, lines)
    box.check_memory()


def test_fuzz_left_the_daemon_serving(box: Box) -> None:
    run_session(box, True, [b"STAT", b"QUIT"])
    assert box.daemon.proc is not None and box.daemon.proc.poll() is None
    log = box.daemon.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
