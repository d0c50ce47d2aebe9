"""Issue 16 on real sockets against the real daemon: per-state command limits (before
login: 8 KiB, literals only for LOGIN/AUTHENTICATE/ID, a refused non-synchronizing
literal closes the connection), spooled literals under the data dir (removed when the
connection dies, swept at start), a bounded COMPRESS inflater, and the daemon's resident
memory (VmRSS, sampled while the attack runs) staying small throughout."""

from __future__ import annotations

import contextlib
import imaplib
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.tls import client_context
from tests.harness import Daemon, rss, write_config
from tests.protocol.imap.conftest import ImapServer
from tests.protocol.imap.rawclient import RawClient

USER = "bob@example.org"
PASSWORD = "limits-Password-1234"
MAX_MESSAGE = 2 * 1024 * 1024
MiB = 1024 * 1024
BYE_LITERAL = b"* BYE Literal refused before login, closing connection\r\n"


class PeakRss:
    """Samples a process's VmRSS every 10 ms while the block runs; ``growth`` is the
    highest sample minus the first."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.start

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss(self.pid))


@dataclass
class Box:
    daemon: Daemon
    data_dir: Path

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    @property
    def spool(self) -> Path:
        return self.data_dir / "tmp" / "imap"

    def spooled(self) -> list[Path]:
        return sorted(self.spool.glob("imap-literal-*")) if self.spool.exists() else []

    def spool_emptied(self, timeout: float = 10) -> bool:
        """The spool is emptied right after the answer is sent: wait for it briefly."""
        deadline = time.monotonic() + timeout
        while self.spooled() and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.spooled()

    def plain(self) -> socket.socket:
        sock = socket.create_connection(self.daemon.addr("imap"), timeout=15)
        assert recv_line(sock).startswith(b"* OK")
        return sock

    def tls(self, login: bool = True) -> RawClient:
        host, port = self.daemon.addr("imaps")
        client = RawClient(host, port, client_context(verify=False))
        if login:
            client.ok(f'LOGIN {USER} "{PASSWORD}"')
        return client


def make_box(directory: Path) -> Box:
    cfg_path = write_config(directory, limits={"max_message_size": MAX_MESSAGE})
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("example.org")
    accounts.add_user(USER, PASSWORD)
    accounts.close()
    return Box(Daemon(cfg_path, wait_for=("imap", "imaps")), cfg.data_dir)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    b = make_box(tmp_path_factory.mktemp("imap-limits"))
    with b.daemon:
        warm = b.tls()  # warm the TLS and login paths before any baseline
        warm.ok("LOGOUT")
        warm.close()
        yield b


def recv_line(sock: socket.socket) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        out += byte
    return out


def blast(sock: socket.socket, chunks: Iterable[bytes]) -> threading.Thread:
    """Send ``chunks`` from a thread, as an attacker would, whatever the server says."""

    def run() -> None:
        with contextlib.suppress(OSError):
            for chunk in chunks:
                sock.sendall(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def read_until_closed(sock: socket.socket, timeout: float = 15) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or ``timeout`` passes (False)."""
    out = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return out, True
        if not data:
            return out, True
        out += data
    return out, False


def login_flood() -> Iterator[bytes]:
    """The review's attack: 1,000 x 64 KiB literals in one unfinished LOGIN."""
    yield b"a LOGIN {65536+}\r\n"
    for _ in range(1000):
        yield b"x" * 65536 + b" {65536+}\r\n"


def append_flood() -> Iterator[bytes]:
    """The review's disk attack: APPEND before login with 25 x 2 MB literals."""
    yield b"a APPEND INBOX {2000000+}\r\n"
    for i in range(25):
        yield b"y" * 2000000
        yield b" {2000000+}\r\n" if i < 24 else b"\r\n"


# ---------------------------------------------------------------- before login


def test_login_literal_flood_is_refused_at_the_first_literal(box: Box) -> None:
    sock = box.plain()
    with PeakRss(box.pid) as mem:
        sender = blast(sock, login_flood())
        data, closed = read_until_closed(sock)
        sender.join(30)
    sock.close()
    assert mem.growth < 8 * MiB, f"daemon grew {mem.growth >> 20} MiB"
    assert data == b"a BAD [TOOBIG] Command too large before login\r\n" + BYE_LITERAL
    assert closed  # RFC 7888 4: a LITERAL+ the server refuses cannot be skipped safely


def test_append_before_login_spools_nothing(box: Box) -> None:
    seen: set[str] = set()
    tmp = Path("/tmp")
    before = {p.name for p in tmp.glob("imap-literal-*")}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.01):
            seen.update(p.name for p in box.spooled())
            seen.update(p.name for p in tmp.glob("imap-literal-*") if p.name not in before)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    sock = box.plain()
    with PeakRss(box.pid) as mem:
        sender = blast(sock, append_flood())
        data, closed = read_until_closed(sock)
        sender.join(30)
    sock.close()
    stop.set()
    watcher.join(5)
    assert not seen, f"temporary files created before login: {sorted(seen)}"
    assert mem.growth < 8 * MiB, f"daemon grew {mem.growth >> 20} MiB"
    assert data == b"a BAD Not authenticated\r\n" + BYE_LITERAL
    assert closed


def test_synchronizing_literals_refused_before_login_keep_the_session(box: Box) -> None:
    sock = box.plain()
    fh = sock.makefile("rwb")

    def say(data: bytes) -> bytes:
        fh.write(data)
        fh.flush()
        return fh.readline()

    # No "+": the client never sends the literal, so the session goes on.
    assert say(b"a APPEND INBOX {2000000}\r\n") == b"a BAD Not authenticated\r\n"
    assert say(b"b FROB {5}\r\n") == b"b BAD Unknown command\r\n"
    assert say(b"c NOOP {5}\r\n") == b"c BAD Unexpected literal\r\n"
    assert say(b"d LOGIN {4097}\r\n") == b"d BAD [TOOBIG] Command too large before login\r\n"
    assert say(b"e LOGIN {4000}\r\n") == b"+ Ready for literal data\r\n"
    assert say(b"x" * 4000 + b" {4000}\r\n") == b"+ Ready for literal data\r\n"
    # 2 x 4000 bytes of literals and the text: over the 8 KiB a command may have here
    assert say(b"y" * 4000 + b" {200}\r\n") == (
        b"e BAD [TOOBIG] Command too large before login\r\n"
    )
    assert say(b"f " + b"n" * 9000 + b"\r\n") == b"* BAD Command line too long\r\n"
    assert say(b"g NOOP\r\n") == b"g OK NOOP completed\r\n"
    sock.close()


def test_nonsync_login_literal_within_the_bound_still_logs_in(box: Box) -> None:
    client = box.tls(login=False)
    # RFC 7888 4: LITERAL- before login (non-synchronizing literals up to 4096 bytes)
    assert b" LITERAL- " in client.greeting and b"LITERAL+" not in client.greeting
    user, password = USER.encode(), PASSWORD.encode()
    client.write(
        b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(password), password)
    )
    ok = client.until(b"a")[-1]
    assert ok.startswith(b"a OK [CAPABILITY ") and b" LITERAL+ " in ok
    client.ok("LOGOUT")
    client.close()


def test_oversize_nonsync_id_closes(box: Box) -> None:
    client = box.tls(login=False)
    client.write(b'a ID ("name" {5000+}\r\n' + b"z" * 5000 + b")\r\n")
    assert client.line() == b"a BAD [TOOBIG] Command too large before login\r\n"
    assert client.line() == BYE_LITERAL
    with pytest.raises((ConnectionError, OSError)):
        client.line()
    client.close()


# ---------------------------------------------------------------- after login


def test_append_and_multiappend_within_the_limits(box: Box) -> None:
    client = box.tls()
    message = b"Subject: big\r\n\r\n" + (b"z" * 78 + b"\r\n") * 18000  # ~1.4 MB: spooled
    client.write(b"a APPEND INBOX {%d}\r\n" % len(message))
    assert client.line() == b"+ Ready for literal data\r\n"
    client.write(message + b" {%d}\r\n" % len(message))  # MULTIAPPEND (RFC 3502)
    assert client.line() == b"+ Ready for literal data\r\n"
    client.write(message + b"\r\n")
    assert b"[APPENDUID " in client.until(b"a")[-1]
    assert box.spool_emptied()  # the spool files lived as long as the command
    # A third such message is past the limit of one command after login: the size of
    # one maximum message plus 1 MiB. Refused before "+", the session goes on.
    client.write(b"b APPEND INBOX {%d}\r\n" % len(message))
    assert client.line() == b"+ Ready for literal data\r\n"
    client.write(message + b" {%d}\r\n" % len(message))
    assert client.line() == b"+ Ready for literal data\r\n"
    client.write(message + b" {%d}\r\n" % len(message))
    assert client.line() == b"b NO [TOOBIG] Command too large\r\n"
    assert box.spool_emptied()  # the two accepted literals went with the refused command
    client.ok("NOOP")
    client.write(b"d APPEND INBOX {%d}\r\n" % (MAX_MESSAGE + 1))
    assert client.line() == b"d NO [TOOBIG] Literal too large\r\n"
    assert box.spool_emptied()
    client.close()


def test_small_append_message_is_spooled_under_the_data_dir(box: Box) -> None:
    client = box.tls()
    client.write(b"a APPEND INBOX {1000}\r\n")
    assert client.line() == b"+ Ready for literal data\r\n"
    client.write(b"Subject: small\r\n\r\n" + b"s" * 400)
    deadline = time.monotonic() + 10
    while not box.spooled() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(box.spooled()) == 1  # not in /tmp, not in memory
    client.write(b"s" * (1000 - 418) + b"\r\n")
    assert b"[APPENDUID " in client.until(b"a")[-1]
    assert box.spool_emptied()
    client.close()


def test_imaplib_append_still_works(box: Box) -> None:
    conn = imaplib.IMAP4_SSL(
        *box.daemon.addr("imaps"), ssl_context=client_context(verify=False), timeout=15
    )
    conn.login(USER, PASSWORD)
    typ, data = conn.append("INBOX", "", None, b"Subject: s\r\n\r\n" + b"q" * 1_500_000)
    assert typ == "OK" and b"APPENDUID" in data[0]
    conn.logout()


def test_literal_count_per_command_is_bounded(box: Box) -> None:
    client = box.tls()
    lines = b"a SEARCH TEXT {1+}\r\n" + b"x TEXT {1+}\r\n" * 1000 + b"x\r\n"
    client.write(lines)
    assert client.until(b"a")[-1] == b"a NO [LIMIT] Too many literals in one command\r\n"
    client.ok("NOOP")
    client.close()


def _partial_append(box: Box) -> socket.socket:
    """A logged-in connection in the middle of a 1.9 MB APPEND literal (spooled)."""
    client = box.tls()
    client.write(b"a APPEND INBOX {1900000}\r\n")
    assert client.line() == b"+ Ready for literal data\r\n"
    client.write(b"p" * 1_500_000)
    deadline = time.monotonic() + 10
    while not box.spooled() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(box.spooled()) == 1 and box.spooled()[0].parent == box.spool
    return client.sock


def test_spooled_literal_removed_when_the_connection_dies(box: Box) -> None:
    sock = _partial_append(box)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST: the connection dies in the middle of the literal
    assert box.spool_emptied()


def test_spool_left_by_a_killed_daemon_is_swept_at_start(tmp_path: Path) -> None:
    b = make_box(tmp_path)
    with b.daemon:
        sock = _partial_append(b)
        b.daemon.kill()
        sock.close()
        assert len(b.spooled()) == 1  # SIGKILL: nobody cleaned up
        b.daemon.start()
        assert b.spooled() == []
        assert "imap=spool-cleaned orphans=1" in b.daemon.log()


# ---------------------------------------------------------------- COMPRESS=DEFLATE


def test_deflate_bomb_is_inflated_in_bounded_steps(box: Box) -> None:
    client = box.tls()
    client.ok("COMPRESS DEFLATE")
    client.inflate = zlib.decompressobj(-15)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    client.deflate = deflate
    block = b"a" * MiB
    bomb = b"".join(deflate.compress(block) for _ in range(200))  # 200 MiB, no newline
    bomb += deflate.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 300_000
    other = box.tls()  # logged in first: a login's argon2 block is not the bomb's cost
    with PeakRss(box.pid) as mem:
        client.sock.sendall(bomb)
        started = time.monotonic()  # another client is served meanwhile
        other.ok("NOOP")
        assert time.monotonic() - started < 5
        other.close()
        client.write(b"\r\n")
        assert client.line() == b"* BAD Command line too long\r\n"
        client.ok("NOOP")
    assert mem.growth < 10 * MiB, f"daemon grew {mem.growth >> 20} MiB"
    client.ok("LOGOUT")
    client.close()


# ---------------------------------------------------------------- failed logins


def test_three_failed_logins_end_the_connection(imap_server: ImapServer) -> None:
    conn = imap_server.imaps(login=False)
    for _ in range(2):
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            conn.login(imap_server.user, "wrong")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.login(imap_server.user, "wrong")
    with pytest.raises(imaplib.IMAP4.abort):
        conn.noop()  # the server said BYE and closed
    assert any(b"Too many failed logins" in r for r in conn.untagged_responses.get("BYE", []))
    with contextlib.suppress(Exception):
        conn.shutdown()
    # A client that gets it right within the allowance logs in.
    conn = imap_server.imaps(login=False)
    for _ in range(2):
        with pytest.raises(imaplib.IMAP4.error):
            conn.login(imap_server.user, "wrong")
    assert conn.login(imap_server.user, "correct horse battery staple 7")[0] == "OK"
    conn.logout()


def test_failed_logins_wire(imap_server: ImapServer) -> None:
    client = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    assert client.command("LOGIN nobody@example.org x")[-1].startswith(b"c1 NO [AUTH")
    client.write(b"c2 AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLm9yZwB3cm9uZw==\r\n")
    assert client.line() == b"c2 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    client.write(b"c3 LOGIN bob@example.org wrong\r\n")
    assert client.line() == b"c3 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    assert client.line() == b"* BYE Too many failed logins\r\n"
    with pytest.raises((ConnectionError, OSError)):
        client.line()
    client.close()
