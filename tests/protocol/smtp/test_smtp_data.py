"""DATA on real sockets: size limits, SMTP smuggling sequences, long lines, spooling."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv


class Raw:
    """A byte-exact SMTP client (smtplib normalises line ends, which would hide bugs)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")
        assert self.reply()[0] == 220

    def reply(self) -> tuple[int, bytes]:
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                return 0, b"(connection closed)"
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines)

    def cmd(self, text: bytes) -> tuple[int, bytes]:
        self.sock.sendall(text + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def start_data(env: SmtpEnv, rcpt: str = f"bob@{DOMAIN}") -> Raw:
    c = Raw(env.ports["smtp"])
    assert c.cmd(b"EHLO client.test")[0] == 250
    assert c.cmd(b"MAIL FROM:<attacker@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>".encode())[0] == 250
    assert c.cmd(b"DATA")[0] == 354
    return c


def test_size_declared_too_big_552(env: SmtpEnv) -> None:
    c = Raw(env.ports["smtp"])
    c.cmd(b"EHLO c")
    code, text = c.cmd(f"MAIL FROM:<a@remote.test> SIZE={1024 * 1024 + 1}".encode())
    assert (code, text[:10]) == (552, b"552 5.3.4 ")
    assert c.cmd(b"MAIL FROM:<a@remote.test> SIZE=1000 BODY=8BITMIME")[0] == 250
    c.close()


def test_size_exceeded_in_data_552_and_nothing_stored(env: SmtpEnv) -> None:
    c = start_data(env)
    chunk = b"x" * 998 + b"\r\n"
    for _ in range(1100):  # ~1.1 MB against a 1 MiB limit
        c.sock.sendall(chunk)
    code, text = c.cmd(b".")
    assert (code, text[:10]) == (552, b"552 5.3.4 ")
    assert c.cmd(b"NOOP")[0] == 250  # the session goes on
    c.close()
    assert env.messages(f"bob@{DOMAIN}") == []
    assert env.spool_files() == []


def test_message_exactly_at_limit_accepted(env: SmtpEnv) -> None:
    limit = env.ctx.config.limits.max_message_size
    head = b"Subject: big\r\n\r\n"
    line = b"y" * 998 + b"\r\n"
    n, rest = divmod(limit - len(head), len(line))
    body = head + line * n + b"z" * (rest - 2) + b"\r\n"
    assert len(body) == limit
    c = start_data(env)
    c.sock.sendall(body)
    assert c.cmd(b".")[0] == 250
    c.close()
    assert env.messages(f"bob@{DOMAIN}")[0].endswith(body)


# Published SMTP smuggling end-of-data variants (SEC Consult, 2023) and relatives.
SMUGGLING = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\n.\r",
    b"\r\n\x00.\r\n",
]


@pytest.mark.parametrize("eod", SMUGGLING, ids=[repr(s) for s in SMUGGLING])
def test_smuggling_sequences_rejected(env: SmtpEnv, eod: bytes) -> None:
    c = start_data(env)
    smuggled = (
        b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
        b"From: admin@example.org\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
    )
    c.sock.sendall(b"Subject: outer\r\n\r\nouter body" + eod + smuggled)
    # If the server took eod for the end of data, it would now answer the smuggled
    # commands; it must instead still be in DATA and answer once, at the real end.
    code, text = c.cmd(b".")
    if eod == b"\r\n\x00.\r\n":
        # a NUL is not a line end: one message, refused whole for its NUL (never stored)
        assert text.startswith(b"554 5.6.0 "), text
    else:
        assert code == 550, text
        assert text.startswith(b"550 5.5.2 ")
    assert c.cmd(b"NOOP")[0] == 250  # exactly one reply was pending: nothing smuggled
    c.close()
    assert env.messages(f"alice@{DOMAIN}") == []
    assert env.messages(f"bob@{DOMAIN}") == []


def test_bare_lf_inside_body_rejected(env: SmtpEnv) -> None:
    c = start_data(env)
    c.sock.sendall(b"Subject: x\r\n\r\nline one\nline two\r\n")
    assert c.cmd(b".")[0] == 550
    c.close()


def test_line_too_long_rejected_and_session_continues(env: SmtpEnv) -> None:
    c = start_data(env)
    c.sock.sendall(b"Subject: x\r\n\r\n" + b"a" * 5000 + b".\r\nnext\r\n")
    code, _ = c.cmd(b".")
    assert code == 550
    assert c.cmd(b"RSET")[0] == 250
    c.close()
    assert env.messages(f"bob@{DOMAIN}") == []


def test_overlong_line_ending_in_dot_is_not_end_of_data(env: SmtpEnv) -> None:
    c = start_data(env)
    # the tail of a cut overlong line must not be taken for the lone "." line
    c.sock.sendall(b"Subject: x\r\n\r\n" + b"a" * 3000 + b".\r\n")
    c.sock.sendall(b"MAIL FROM:<evil@remote.test>\r\n")
    assert c.cmd(b".")[0] == 550
    c.close()


def test_empty_message_and_dot_stuffing(env: SmtpEnv) -> None:
    c = start_data(env)
    assert c.cmd(b".")[0] == 250  # RFC 5321: an empty message is legal
    assert c.cmd(b"MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<bob@{DOMAIN}>".encode())[0] == 250
    assert c.cmd(b"DATA")[0] == 354
    c.sock.sendall(b"..\r\n...x\r\n. \r\n")
    assert c.cmd(b".")[0] == 250
    c.close()
    msgs = env.messages(f"bob@{DOMAIN}")
    assert len(msgs) == 2
    assert msgs[1].endswith(b"\r\n.\r\n..x\r\n \r\n")


@pytest.mark.parametrize(
    "pieces",
    [
        [b"Subject: x\r\n\r\nbody\r", b"\n.\r", b"\n"],
        [b"Subject: x\r\n\r\nbody\r\n", b".", b"\r\n"],
        [b"Subject: x\r\n\r\n", b"..dot\r\n", b".", b".\r\n.\r\n"],
        [b"Subject: x\r\n\r\n" + b"b" * 900, b"c" * 99 + b"\r\n.\r\n"],
    ],
    ids=["crlf-split", "dot-alone", "stuffed-dots-split", "long-line-split"],
)
def test_end_of_data_split_across_packets(env: SmtpEnv, pieces: list[bytes]) -> None:
    """The server reads DATA in blocks: lines, dots and the end marker cut anywhere by
    the network must read exactly as if they came whole."""
    c = start_data(env)
    for piece in pieces:
        c.sock.sendall(piece)
        time.sleep(0.05)  # separate reads on the server side
    code, text = c.reply()
    assert code == 250, text
    assert c.cmd(b"NOOP")[0] == 250  # exactly one reply: the end was seen once
    c.close()
    (stored,) = env.messages(f"bob@{DOMAIN}")
    sent = b"".join(pieces)[: -len(b".\r\n")]
    expected = sent.replace(b"\r\n.", b"\r\n")
    assert stored.endswith(expected.split(b"\r\n\r\n", 1)[1]), stored[-200:]


def test_8bit_body_kept_byte_exact(env: SmtpEnv) -> None:
    body = "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nGrüße, 日本語\r\n".encode()
    c = start_data(env)
    c.sock.sendall(body)
    assert c.cmd(b".")[0] == 250
    c.close()
    assert env.messages(f"bob@{DOMAIN}")[0].endswith(body)


def test_client_disconnect_mid_data_leaves_nothing(env: SmtpEnv) -> None:
    c = start_data(env)
    c.sock.sendall(b"Subject: x\r\n\r\n" + b"partial\r\n" * 1000)
    c.close()
    deadline = time.monotonic() + 5
    while env.spool_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.spool_files() == []
    assert env.messages(f"bob@{DOMAIN}") == []


@pytest.mark.parametrize(
    "megabytes", [pytest.param(4, id="4MB"), pytest.param(20, id="20MB", marks=pytest.mark.slow)]
)
def test_big_message_spooled_not_buffered(env: SmtpEnv, megabytes: int) -> None:
    """Peak Python heap of the server while receiving the message stays far below its
    size (tracemalloc; the client runs in a subprocess so only server allocations count).
    tracemalloc slows the server about 6x, so the 20 MB case is marked slow."""
    import dataclasses
    import tracemalloc

    cfg = env.ctx.config
    limits = dataclasses.replace(cfg.limits, max_message_size=30 * 1024 * 1024)
    env.ctx.config = dataclasses.replace(cfg, limits=limits)
    script = textwrap.dedent(
        f"""
        import smtplib
        line = b"z" * 76 + b"\\r\\n"
        body = b"Subject: big\\r\\n\\r\\n" + line * ({megabytes} * 1024 * 1024 // len(line))
        with smtplib.SMTP("127.0.0.1", {env.ports["smtp"]}, timeout=60) as s:
            s.sendmail("a@remote.test", ["bob@{DOMAIN}"], body)
        print(len(body))
        """
    )
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        elapsed = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.returncode == 0, out.stderr
    size = int(out.stdout)
    print(f"{megabytes} MB message: {elapsed:.2f} s traced, server peak heap {peak / 1e6:.2f} MB")
    assert peak < 3 * 1024 * 1024, peak
    stored = env.messages(f"bob@{DOMAIN}")
    assert len(stored) == 1 and len(stored[0]) > size


def test_swaks_inbound_with_starttls(env: SmtpEnv) -> None:
    out = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(env.ports["smtp"]),
            "--tls",
            "--from",
            "someone@remote.test",
            "--to",
            f"sales@{DOMAIN}",
            "--header",
            "Subject: via swaks",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for user in ("alice", "bob"):
        stored = env.messages(f"{user}@{DOMAIN}")
        assert len(stored) == 1 and b"Subject: via swaks" in stored[0]


def test_swaks_relay_attempt_denied(env: SmtpEnv) -> None:
    out = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(env.ports["smtp"]),
            "--from",
            f"alice@{DOMAIN}",
            "--to",
            "victim@remote.test",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "550 5.7.1 Relay access denied" in out.stdout
    assert env.queue.items == []
