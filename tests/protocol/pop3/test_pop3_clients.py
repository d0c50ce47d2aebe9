"""Real clients download a mailbox of 1,000 varied messages intact: curl and fetchmail."""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.pop3.service import Pop3Service
from appliance.store.base import INBOX, DeliveryTarget
from tests.protocol.pop3.conftest import OTHER, PASSWORD, USER, Loop, Pop3Server, make_context

COUNT = 1000

pytestmark = pytest.mark.slow

WORDS = [
    "mail",
    "box",
    "appliance",
    "queue",
    "relay",
    "header",
    "body",
    "line",
    "dot",
    "stuff",
    "test",
    "über",
    "naïve",
    "日本",
]


def make_message(rng: random.Random, n: int) -> bytes:
    """A varied, real-looking RFC 5322 message (CRLF)."""
    subject = " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))
    headers = [
        f"Return-Path: <sender{n}@example.net>",
        f"Received: from mx{n % 7}.example.net (mx.example.net [192.0.2.{n % 250}])",
        f"\tby mail.pillarbox.test with ESMTPS id {n:08x}; Mon, 1 Jan 2024 00:00:00 +0000",
        f"From: Sender {n} <sender{n}@example.net>",
        f"To: {USER}",
        f"Subject: =?utf-8?b?{base64.b64encode(subject.encode()).decode()}?=",
        f"Message-ID: <{n}.{rng.getrandbits(32)}@example.net>",
        "MIME-Version: 1.0",
    ]
    kind = n % 5
    lines: list[str] = []
    if kind == 0:
        headers.append('Content-Type: text/plain; charset="utf-8"')
        headers.append("Content-Transfer-Encoding: 8bit")
        for _ in range(rng.randint(0, 40)):
            line = " ".join(rng.choices(WORDS, k=rng.randint(0, 15)))
            lines.append(rng.choice(["", ".", "..", ". leading dot "]) + line)
    elif kind == 1:
        headers.append('Content-Type: multipart/mixed; boundary="b1"')
        blob = base64.b64encode(rng.randbytes(rng.randint(100, 20000))).decode()
        lines += ["--b1", "Content-Type: text/plain", "", "see attachment", ".", "--b1"]
        lines += ["Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64"]
        lines += [""] + [blob[i : i + 76] for i in range(0, len(blob), 76)] + ["--b1--"]
    elif kind == 2:
        headers.append("Content-Type: text/plain")
        lines = ["x" * rng.randint(900, 990)] * rng.randint(1, 5)  # long lines
    elif kind == 3:
        headers.append("Content-Type: text/html")
        lines = ["<html>", "<p>.hidden dot</p>", "", "</html>"]
    # kind 4: an empty body
    return ("\r\n".join(headers) + "\r\n\r\n" + "".join(f"{ln}\r\n" for ln in lines)).encode()


@pytest.fixture(scope="module")
def mailboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pop3Server, list[bytes]]]:
    """One server for the module; USER (read by curl) and OTHER (fetchmail deletes)
    both hold the same 1,000 messages."""
    root = tmp_path_factory.mktemp("pop3clients")
    ctx = make_context(root)
    loop = Loop()
    service = Pop3Service(ctx.config, ctx.deps)
    ctx.service = service
    service.loopback_plaintext = True  # as in conftest: the "pop3" cases test the client
    loop.run(service.start())
    server = Pop3Server(ctx, service, loop, root)
    rng = random.Random(2024)
    messages = [make_message(rng, n) for n in range(COUNT)]
    src = root / "fill.eml"
    for data in messages:
        src.write_bytes(data)
        ctx.store.deliver([DeliveryTarget(USER), DeliveryTarget(OTHER)], src)
    yield server, messages
    loop.run(service.stop())
    loop.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("scheme", ["pop3", "pop3s", "pop3+stls"])
def test_curl_downloads_every_message(
    mailboxes: tuple[Pop3Server, list[bytes]], tmp_path: Path, scheme: str
) -> None:
    server, filled = mailboxes
    port = server.port("pop3s" if scheme == "pop3s" else "pop3")
    url_scheme = "pop3s" if scheme == "pop3s" else "pop3"
    out = tmp_path / "curl"
    out.mkdir()
    conf = tmp_path / "curl.conf"
    lines = [f'user = "{USER}:{PASSWORD}"', "insecure", "silent", "show-error"]
    if scheme == "pop3+stls":
        lines.append("ssl-reqd")
    for n in range(1, len(filled) + 1):
        lines.append(f'url = "{url_scheme}://127.0.0.1:{port}/{n}"')
        lines.append(f'output = "{out}/{n}"')
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        ["curl", "-K", str(conf)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    for n, data in enumerate(filled, start=1):
        assert (out / str(n)).read_bytes() == data, f"message {n} differs"
    assert server.ctx.store.status(USER, INBOX).messages == COUNT  # RETR deletes nothing


def _strip_fetchmail_header(data: bytes) -> bytes:
    """fetchmail adds its own Received: header (with continuation lines) near the top."""
    lines = data.split(b"\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith(b"Received: from 127.0.0.1"))
    end = start + 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return b"\n".join(lines[:start] + lines[end:])


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
def test_fetchmail_downloads_and_deletes(
    mailboxes: tuple[Pop3Server, list[bytes]], tmp_path: Path
) -> None:
    server, filled = mailboxes
    out = tmp_path / "fetched"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 with proto POP3 port {server.port('pop3')} timeout 60\n"
        f'  user "{OTHER}" there with password "{PASSWORD}" is "tester" here\n'
        "  sslproto 'tls1.2+' no sslcertck fetchall\n"
        f"  mda \"/bin/sh -c 'cat > $(mktemp {out}/m.XXXXXXXX)'\"\n"
    )
    os.chmod(rc, 0o600)
    env = {**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)}
    proc = subprocess.run(
        ["fetchmail", "-f", str(rc), "--nodetach", "-v"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "STLS" in proc.stdout  # the session was upgraded to TLS
    got = sorted(_strip_fetchmail_header(p.read_bytes()) for p in out.iterdir())
    want = sorted(data.replace(b"\r\n", b"\n") for data in filled)
    assert len(got) == COUNT
    assert got == want
    assert server.ctx.store.status(OTHER, INBOX).messages == 0  # DELE + QUIT removed them
    assert server.ctx.store.status(USER, INBOX).messages == COUNT
