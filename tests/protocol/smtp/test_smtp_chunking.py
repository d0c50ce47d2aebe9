"""CHUNKING / BDAT (RFC 3030) on real sockets."""

from __future__ import annotations

import time

import pytest

from appliance.smtp.body import ChunkLines
from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv
from tests.protocol.smtp.test_smtp_data import Raw


def begin(env: SmtpEnv) -> Raw:
    c = Raw(env.ports["smtp"])
    text = c.cmd(b"EHLO c")[1]
    assert b"CHUNKING" in text
    assert c.cmd(b"MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<bob@{DOMAIN}>".encode())[0] == 250
    return c


def bdat(c: Raw, data: bytes, last: bool = False) -> tuple[int, bytes]:
    c.sock.sendall(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    return c.reply()


def test_bdat_chunks_split_anywhere(env: SmtpEnv) -> None:
    msg = b"Subject: chunks\r\n\r\n.not stuffed\r\nline two\r\n" + b"x" * 70 + b"\r\n"
    c = begin(env)
    pieces = [msg[:7], msg[7:19], msg[19:20], msg[20:]]  # splits inside lines and CRLFs
    for p in pieces[:-1]:
        assert bdat(c, p) == (250, b"250 2.0.0 %d octets received\r\n" % len(p))
    code, _ = bdat(c, pieces[-1], last=True)
    assert code == 250
    assert c.cmd(b"DATA")[0] == 503  # the transaction is over
    c.close()
    stored = env.messages(f"bob@{DOMAIN}")
    assert len(stored) == 1 and stored[0].endswith(msg)  # no dot-unstuffing in BDAT


def test_bdat_zero_last_and_missing_final_crlf(env: SmtpEnv) -> None:
    c = begin(env)
    assert bdat(c, b"Subject: t\r\n\r\nno final newline")[0] == 250
    assert bdat(c, b"", last=True)[0] == 250
    c.close()
    assert env.messages(f"bob@{DOMAIN}")[0].endswith(b"no final newline\r\n")


def test_bdat_without_transaction_consumes_chunk(env: SmtpEnv) -> None:
    c = Raw(env.ports["smtp"])
    c.cmd(b"EHLO c")
    code, _ = bdat(c, b"MAIL FROM:<evil@x>\r\n", last=True)
    assert code == 503
    assert c.cmd(b"NOOP")[0] == 250  # the chunk was not read as commands
    c.close()


def test_bdat_then_data_refused(env: SmtpEnv) -> None:
    c = begin(env)
    assert bdat(c, b"Subject: t\r\n")[0] == 250
    assert c.cmd(b"DATA")[0] == 503
    assert c.cmd(b"RSET")[0] == 250  # drops the half-received message
    c.close()
    deadline = time.monotonic() + 5
    while env.spool_files() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert env.spool_files() == []


def test_bdat_bare_lf_and_size(env: SmtpEnv) -> None:
    c = begin(env)
    code, text = bdat(c, b"Subject: t\r\n\r\nbad\n.\nline\r\n", last=True)
    assert (code, text[:10]) == (550, b"550 5.5.2 ")
    assert c.cmd(b"MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<bob@{DOMAIN}>".encode())[0] == 250
    big = (b"y" * 998 + b"\r\n") * 1100
    code, text = bdat(c, big)
    assert (code, text[:10]) == (552, b"552 5.3.4 ")
    assert bdat(c, b"more\r\n", last=True)[0] == 503  # transaction already failed
    c.close()
    assert env.messages(f"bob@{DOMAIN}") == []


def test_bdat_pipelined_with_smtplib_style_client(env: SmtpEnv) -> None:
    c = Raw(env.ports["smtp"])
    c.cmd(b"EHLO c")
    body = b"Subject: pipelined\r\n\r\nhello\r\n"
    c.sock.sendall(
        b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.org>\r\n"
        + b"BDAT %d LAST\r\n" % len(body)
        + body
        + b"QUIT\r\n"
    )
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 221]
    c.close()
    assert len(env.messages(f"bob@{DOMAIN}")) == 1


@pytest.mark.parametrize(
    ("chunks", "lines", "too_long"),
    [
        ([b"a\r", b"\nb\r\n"], [b"a\r\n", b"b\r\n"], False),
        ([b"a\r\nb"], [b"a\r\n"], False),
        ([b"x" * 2000, b"\r\n"], [], True),
    ],
)
def test_chunk_lines(chunks: list[bytes], lines: list[bytes], too_long: bool) -> None:
    cl = ChunkLines()
    out: list[bytes] = []
    for ch in chunks:
        out += cl.feed(ch)
    assert (out[: len(lines)], cl.too_long) == (lines, too_long)
