"""Hypothesis feeds generated IMAP commands to the real daemon (`pillarbox run`): random
tags, names, atoms, brackets, binary, and literals of every kind (synchronizing,
LITERAL+, literal8, announced sizes far past every limit), before login on the plain
port and after login (TLS, INBOX selected).

Every command must end in exactly one well-formed tagged answer (RFC 9051 7.1: "tag
OK|NO|BAD ..."), or in "* BAD Command line too long" for an over-long line, or in a BYE
after which the server closes; a synchronizing literal announced past the limits must
never get a "+" (issue 16). After each session a fresh connection must be answered
within seconds, and the daemon's VmRSS (sampled every 10 ms through the whole run) must
stay under its warmed-up size + 30 MB. Bounded: 200 sessions (140 before login, 60
after, where each login costs an argon2 hash), about 30 s on two idle cores.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from appliance import config
from appliance.accounts import Accounts
from appliance.store.base import DeliveryTarget
from appliance.store.maildir import MaildirStore
from appliance.tls import client_context
from tests.harness import Daemon, rss, write_config
from tests.protocol.imap.test_imap_limits import PeakRss

USER = "fuzz@example.org"
PASSWORD = "fuzz-Password-1234"
MAX_MESSAGE = 1024 * 1024
RSS_HEADROOM = 30 * 1024 * 1024
TIMEOUT = 10.0
_RESPONSE_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")
_LINE_LITERAL = re.compile(rb"~?\{\d+\+?\}$")
_TOO_LONG = b"* BAD Command line too long\r\n"
_TAG = re.compile(rb"[!#$&'\x2c-\x5b\x5d-\x7a|}~-]+")  # RFC 9051 9: tag


class Closed(Exception):
    """The server closed the connection."""


class Client:
    """Response lines with their literals folded in, over a plain or TLS socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self.buf = b""
        self.bye = False

    def _recv(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError) as exc:
            raise Closed(repr(exc)) from None
        if not data:
            raise Closed("eof")
        self.buf += data

    def line(self) -> bytes:
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._recv()
            head, _, self.buf = self.buf.partition(b"\r\n")
            out += head + b"\r\n"
            match = _RESPONSE_LITERAL.search(out)
            if not match:
                return out
            size = int(match.group(1))
            while len(self.buf) < size:
                self._recv()
            out += self.buf[:size]
            self.buf = self.buf[size:]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, tag: bytes, continuation: bool = False) -> bytes:
        """Read to the command's end (tagged, over-long line, BYE) or, with
        ``continuation``, to a "+"; returns that line; b"" once the server has closed."""
        tagged = re.compile(re.escape(tag) + rb" (OK|NO|BAD)( [^\r\n]*)?\r\n")
        valid = _TAG.fullmatch(tag) is not None
        while True:
            if self.bye:
                return b""
            try:
                line = self.line()
            except Closed:
                raise AssertionError("connection closed without BYE") from None
            if valid and line.startswith(tag + b" "):
                assert tagged.fullmatch(line), f"malformed tagged answer {line!r}"
                return line
            if line == _TOO_LONG or (not valid and line.startswith(b"* BAD ")):
                return line  # no tag to answer with (RFC 9051 7.1.3: untagged BAD)
            if line.startswith(b"* BYE"):
                self.bye = True  # the server is closing: this session is over
                return b""
            if line.startswith(b"+"):
                if continuation:
                    return line
                self.send(b"DONE\r\n")  # IDLE (or an AUTHENTICATE challenge: refused)
                continue
            assert line.startswith(b"* "), f"malformed response line {line!r}"


# ---------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Lit:
    """A literal of ``size`` bytes (``seed`` repeated), or one announced with a size
    it does not have (``announced``: never sent). Kept short so failures print well."""

    seed: bytes
    size: int
    nonsync: bool
    binary: bool
    announced: int | None = None

    @property
    def data(self) -> bytes:
        return (self.seed * (self.size // max(len(self.seed), 1) + 1))[: self.size]

    def marker(self) -> bytes:
        size = self.size if self.announced is None else self.announced
        return b"%s{%d%s}" % (b"~" if self.binary else b"", size, b"+" if self.nonsync else b"")


@dataclass(frozen=True)
class Long:
    """A text run of ``size`` bytes: past the line limit before login (8 KiB) or after
    (64 KiB)."""

    size: int


Arg = bytes | Lit | Long
Command = tuple[bytes, list[Arg]]  # tag, then " NAME", arguments and spaces, verbatim

NAMES = [
    b"CAPABILITY", b"NOOP", b"LOGOUT", b"ID", b"LOGIN", b"AUTHENTICATE", b"ENABLE",
    b"IDLE", b"SELECT", b"EXAMINE", b"CREATE", b"DELETE", b"RENAME", b"SUBSCRIBE",
    b"UNSUBSCRIBE", b"LIST", b"LSUB", b"NAMESPACE", b"STATUS", b"APPEND", b"GETQUOTA",
    b"GETQUOTAROOT", b"CHECK", b"CLOSE", b"UNSELECT", b"EXPUNGE", b"FETCH", b"STORE",
    b"COPY", b"MOVE", b"SEARCH", b"SORT", b"THREAD", b"UID FETCH", b"UID SEARCH",
    b"UID STORE", b"UID EXPUNGE", b"UID COPY", b"FROB", b"login", b"Append", b"uid",
]  # fmt: skip
TOKENS = [
    b"INBOX", b"inbox", b"Sent", b'""', b'"a b"', b'"q\\"x"', b'"\\\\"', b"NIL", b"1",
    b"1:*", b"*", b"$", b"2,4:7", b"0", b"4294967296", b"99999999999999999999", b"(",
    b")", b"()", b"((((((((", b"[", b"]", b"(\\Seen)", b"+FLAGS", b"-FLAGS.SILENT",
    b"(\\Deleted \\Flagged $Junk)", b"BODY[]", b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
    b"BINARY[1]<0.10>", b"BODY[1.2.MIME]", b"(FLAGS UID RFC822.SIZE ENVELOPE)", b"ALL",
    b"FULL", b"BODYSTRUCTURE", b"TEXT", b"OR", b"NOT", b"HEADER", b"SINCE", b"1-Jan-2020",
    b'"01-Jan-2020 10:00:00 +0000"', b"CHARSET", b"UTF-8", b"(MESSAGES UIDNEXT SIZE)",
    b"PLAIN", b"AGZ1enoAeA==", b"=", b"CONDSTORE", b"UTF8=ACCEPT", b"(CHANGEDSINCE 1)",
    b"UTF8", b"(REVERSE DATE)", b"REFERENCES", b"RETURN", b"(MIN MAX COUNT)", b"%",
    b"&AOk-", b"&-", b"&Jjo!", b"\x00", b"\xff\xfe", b"\x7f", b"{", b"}", b"{5}x",
]  # fmt: skip
SIZES = [0, 1, 2, 7, 100, 4096, 4097, 8200, 65536, 65537, 70000]
HUGE = [MAX_MESSAGE + 1, 2**31, 10**12, 10**18]
WARM: Command = (b"w", [b" FETCH 1:* (BODY[] ENVELOPE)"])
tag = st.sampled_from([b"a", b"A1", b"x.y", b"t-9", b"*", b"+", b"a{", b"\xff"])


@st.composite
def literal(draw: st.DrawFn, huge_nonsync: bool) -> Lit:
    nonsync = draw(st.booleans())
    binary = draw(st.integers(0, 5)) == 0
    if draw(st.integers(0, 4)) == 0 and (not nonsync or huge_nonsync):
        return Lit(b"", 0, nonsync, binary, draw(st.sampled_from(HUGE)))
    size = draw(st.sampled_from(SIZES))
    return Lit(draw(st.binary(min_size=1, max_size=16)), size, nonsync, binary)


def _clean(piece: bytes) -> bytes:
    return piece.replace(b"\r", b"").replace(b"\n", b"")


@st.composite
def random_command(draw: st.DrawFn, preauth: bool) -> list[Arg]:
    """A name and tokens, binary and literals, space-separated: mostly syntax errors."""
    name = _clean(draw(st.one_of(st.sampled_from(NAMES), st.binary(max_size=12))))
    arg = st.one_of(st.sampled_from(TOKENS), st.binary(max_size=40), literal(preauth))
    pieces: list[Arg] = [b" " + name]
    for item in draw(st.lists(arg, max_size=6)):
        pieces += [b" ", item if isinstance(item, Lit) else _clean(item)]
    return pieces


@st.composite
def astring(draw: st.DrawFn, preauth: bool) -> list[Arg]:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return [draw(st.from_regex(rb"\A[A-Za-z0-9._@&-]{1,12}\Z"))]
    if kind == 1:
        text = _clean(draw(st.binary(max_size=20)))
        return [b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"']
    if kind == 2:
        return [draw(st.sampled_from([b"INBOX", b"Sent", b"&AOk-", b'"a b"', b'""']))]
    return [draw(literal(preauth))]


def _spaced(items: list[list[Arg]]) -> list[Arg]:
    return [p for i, item in enumerate(items) for p in ([b" "] if i else []) + item]


seqset = st.sampled_from([b"1", b"1:*", b"*", b"2:3", b"1,3", b"$", b"4294967295", b"0"])
fetch_att = st.sampled_from(
    [b"FLAGS", b"UID", b"ENVELOPE", b"BODYSTRUCTURE", b"BODY[]", b"BODY.PEEK[TEXT]<0.5>",
     b"BINARY.PEEK[1]", b"BINARY.SIZE[1]", b"RFC822.SIZE", b"BODY[HEADER.FIELDS (SUBJECT)]",
     b"MODSEQ", b"INTERNALDATE", b"BODY[1.MIME]", b"FAST", b"ALL"]
)  # fmt: skip
flag = st.sampled_from([b"\\Seen", b"\\Deleted", b"\\Flagged", b"$Junk", b"\\Recent"])


@st.composite
def search_key(draw: st.DrawFn, depth: int = 0) -> list[Arg]:
    pick = draw(st.integers(0, 7 if depth < 3 else 3))
    if pick == 0:
        return [draw(st.sampled_from([b"ALL", b"SEEN", b"UNSEEN", b"DELETED", b"NEW"]))]
    if pick == 1:
        return [b"TEXT ", *draw(astring(False))]
    if pick == 2:
        return [b"HEADER ", *draw(astring(False)), b" ", *draw(astring(False))]
    if pick == 3:
        return [draw(st.sampled_from([b"SINCE 1-Jan-2020", b"LARGER 10", b"UID 1:*", b"2"]))]
    if pick == 4:
        return [b"OR ", *draw(search_key(depth + 1)), b" ", *draw(search_key(depth + 1))]
    if pick == 5:
        return [b"NOT ", *draw(search_key(depth + 1))]
    if pick == 6:
        return [b"MODSEQ " + str(draw(st.integers(0, 2**63))).encode()]
    return [b"(", *_spaced(draw(st.lists(search_key(depth + 1), min_size=1, max_size=3))), b")"]


@st.composite
def valid_command(draw: st.DrawFn, preauth: bool) -> list[Arg]:
    """Mostly well-formed commands, so the handlers behind the parser run too."""
    box = draw(astring(preauth))
    seq = draw(seqset)
    pick = draw(st.integers(0, 13))
    if pick == 0:
        return [b" LOGIN ", *draw(astring(preauth)), b" ", *draw(astring(preauth))]
    if pick == 1:
        return [b" ID (", *_spaced(draw(st.lists(astring(preauth), max_size=4))), b")"]
    if pick == 2:
        return [b" AUTHENTICATE PLAIN ", draw(st.sampled_from([b"=", b"AGEAYg==", b"*"]))]
    if pick == 3:
        return [b" SELECT ", *box, draw(st.sampled_from([b"", b" (CONDSTORE)"]))]
    if pick == 4:
        atts = b" ".join(draw(st.lists(fetch_att, min_size=1, max_size=4)))
        return [draw(st.sampled_from([b" FETCH ", b" UID FETCH "])) + seq + b" (" + atts + b")"]
    if pick == 5:
        op = draw(st.sampled_from([b"+FLAGS", b"-FLAGS.SILENT", b"FLAGS"]))
        return [b" STORE " + seq + b" " + op + b" (" + b" ".join(draw(st.lists(flag))) + b")"]
    if pick == 6:
        head = draw(st.sampled_from([b" SEARCH ", b" UID SEARCH RETURN (MIN COUNT) "]))
        return [head, *draw(search_key())]
    if pick == 7:
        return [b" SORT (REVERSE DATE) UTF-8 ", *draw(search_key())]
    if pick == 8:
        flags = b" (" + b" ".join(draw(st.lists(flag, max_size=2))) + b")"
        message = draw(literal(preauth))
        return [b" APPEND ", *box, draw(st.sampled_from([b"", flags])), b" ", message]
    if pick == 9:
        return [draw(st.sampled_from([b" CREATE ", b" DELETE ", b" SUBSCRIBE "])), *box]
    if pick == 10:
        return [b" RENAME ", *box, b" ", *draw(astring(preauth))]
    if pick == 11:
        return [draw(st.sampled_from([b" COPY ", b" UID MOVE "])) + seq + b" ", *box]
    if pick == 12:
        return [b" STATUS ", *box, b" (MESSAGES UIDNEXT SIZE HIGHESTMODSEQ)"]
    return [
        draw(st.sampled_from([b" NOOP", b" CHECK", b" EXPUNGE", b" IDLE", b" NAMESPACE",
                              b' LIST "" "*"', b" GETQUOTAROOT INBOX", b" ENABLE CONDSTORE"]))
    ]  # fmt: skip


@st.composite
def command(draw: st.DrawFn, preauth: bool) -> Command:
    if draw(st.integers(0, 3)) == 0:
        pieces = draw(random_command(preauth))
    else:
        pieces = draw(valid_command(preauth))
        if draw(st.integers(0, 4)) == 0:  # one mutation: a stray token where it hurts
            at = draw(st.integers(1, len(pieces)))  # after the name: the tag stays first
            pieces.insert(at, draw(st.one_of(st.sampled_from(TOKENS), literal(preauth))))
    if draw(st.integers(0, 15)) == 0:  # an over-long line ends the command
        pieces.append(Long(draw(st.sampled_from([9000, 70000]))))
    return draw(tag), pieces


def sessions(preauth: bool) -> st.SearchStrategy[list[Command]]:
    return st.lists(command(preauth), min_size=1, max_size=6)


# ---------------------------------------------------------------- the run


@dataclass
class Box:
    daemon: Daemon
    baseline: int
    mem: PeakRss

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def check(self) -> None:
        assert self.daemon.proc is not None and self.daemon.proc.poll() is None
        used = rss(self.pid)
        assert used < self.baseline + RSS_HEADROOM, (
            f"daemon RSS {used >> 20} MiB, warmed up at {self.baseline >> 20} MiB"
        )
        started = time.monotonic()  # a fresh client is still served promptly
        probe = Client(socket.create_connection(self.daemon.addr("imap"), timeout=TIMEOUT))
        try:
            assert probe.line().startswith(b"* OK")
            probe.send(b"p NOOP\r\n")
            assert probe.answer(b"p") == b"p OK NOOP completed\r\n"
        finally:
            probe.sock.close()
        assert time.monotonic() - started < 5


def connect(box: Box, preauth: bool) -> Client:
    if preauth:
        client = Client(socket.create_connection(box.daemon.addr("imap"), timeout=TIMEOUT))
        assert client.line().startswith(b"* OK")
        return client
    raw = socket.create_connection(box.daemon.addr("imaps"), timeout=TIMEOUT)
    client = Client(client_context(verify=False).wrap_socket(raw))
    assert client.line().startswith(b"* OK")
    client.send(f'l LOGIN {USER} "{PASSWORD}"\r\n'.encode())
    assert client.answer(b"l").startswith(b"l OK")
    client.send(b"s SELECT INBOX\r\n")
    assert client.answer(b"s").startswith(b"s OK")
    return client


def run_command(client: Client, cmd: Command) -> bool:
    """Send one command, literal by literal; False once the server has closed."""
    tag, pieces = cmd
    line = tag
    for arg in pieces:
        if isinstance(arg, Long):
            line += b" " + b"L" * arg.size
            continue
        if not isinstance(arg, Lit):
            line += arg
            continue
        client.send(line + arg.marker() + b"\r\n")
        line = b""
        if arg.nonsync:
            client.send(arg.data)
            continue
        got = client.answer(tag, continuation=True)
        if not got.startswith(b"+"):
            _event("literal refused before '+'")
            return got != b""  # refused before "+" (or closed): the command is over
        assert arg.announced is None, f"'+' for a literal of {arg.announced} bytes"
        client.send(arg.data)
    if _LINE_LITERAL.search(line):
        line += b" x"  # a generated token must not announce a literal we never send
    client.send(line + b"\r\n")
    got = client.answer(tag)
    _event("closed with BYE" if got == b"" else got.split(b" ", 2)[1].decode("ascii", "replace"))
    return got != b""


def _event(text: str) -> None:
    with contextlib.suppress(InvalidArgument):  # the fixture's warm-up is not a test
        event(text)


def run_session(box: Box, preauth: bool, commands: list[Command]) -> None:
    client = connect(box, preauth)
    try:
        for cmd in commands:
            try:
                if not run_command(client, cmd):
                    return
            except (BrokenPipeError, ConnectionResetError):
                # the server may close while a refused LITERAL+ is still being sent
                assert client.bye or _reads_bye(client), f"reset without BYE after {cmd!r}"
                return
    finally:
        client.sock.close()


def _reads_bye(client: Client) -> bool:
    try:
        while True:
            if client.line().startswith(b"* BYE"):
                return True
    except (Closed, OSError):
        return False


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    cfg_path = write_config(
        tmp_path_factory.mktemp("imap-fuzz"), limits={"max_message_size": MAX_MESSAGE}
    )
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("example.org")
    accounts.add_user(USER, PASSWORD)
    accounts.close()
    store = MaildirStore(cfg.mail_dir, lambda e: None, lambda p: b"")
    message = Path(cfg.data_dir) / "seed.eml"
    for n in range(3):
        message.write_bytes(b"Subject: seed %d\r\nFrom: a@example.org\r\n\r\nbody\r\n" % n)
        store.deliver([DeliveryTarget(USER)], message)
    with Daemon(cfg_path, wait_for=("imap", "imaps")) as daemon:
        warm = Box(daemon, 0, PeakRss(0 if daemon.proc is None else daemon.proc.pid))
        run_session(warm, True, [WARM])
        # Each login hashes with argon2 (19 MiB) in a worker thread, and glibc keeps that
        # block in the thread's arena: log in from every worker at once before the
        # baseline, so the ceiling measures what the fuzzed input costs.
        for _ in range(2):
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: run_session(warm, False, [WARM]), range(8)))
        warm.baseline = rss(warm.pid)
        with warm.mem:
            yield warm
        assert warm.mem.peak < warm.baseline + RSS_HEADROOM, (
            f"daemon RSS peaked at {warm.mem.peak >> 20} MiB, "
            f"warmed up at {warm.baseline >> 20} MiB"
        )
        assert not list((cfg.data_dir / "tmp" / "imap").glob("imap-literal-*"))


FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(FUZZ, max_examples=140)
@given(commands=sessions(preauth=True))
def test_fuzz_before_login(box: Box, commands: list[Command]) -> None:
    run_session(box, True, commands)
    box.check()


@pytest.mark.slow
@settings(FUZZ, max_examples=60)
@given(commands=sessions(preauth=False))
def test_fuzz_after_login(box: Box, commands: list[Command]) -> None:
    run_session(box, False, commands)
    box.check()
