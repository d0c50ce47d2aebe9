"""ManageSieve inside the real daemon (`pillarbox run`): a real client (Debian's
sieve-connect) over STARTTLS, and scripts put with ManageSieve acting on mail delivered
over SMTP, including the scripts Roundcube's managesieve plugin writes (rules marked
``# rule:[name]``, CRLF line ends, its vacation form with date/relational and a
``text:`` body)."""

from __future__ import annotations

import datetime as dt
import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.ctl.client import CtlClient
from appliance.tls import client_context
from tests.harness import Daemon, write_config
from tests.protocol.managesieve.conftest import Client, plain
from tests.protocol.queue.conftest import LoopbackController, SinkHandler

DOMAIN = "pillarbox.test"
PASSWORD = "managesieve daemon password"
ANN, BEN, CAT, DAN = (f"{n}@{DOMAIN}" for n in ("ann", "ben", "cat", "dan"))


@dataclass
class Box:
    daemon: Daemon
    ctl: CtlClient
    sink: SinkHandler
    root: Path

    def send(self, sender: str, rcpt: str, subject: str) -> None:
        msg = (
            f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n\r\nhello\r\n"
        )
        with smtplib.SMTP(*self.daemon.addr("smtp"), timeout=30) as client:
            client.sendmail(sender, [rcpt], msg.encode())

    def imap(self, user: str) -> imaplib.IMAP4_SSL:
        conn = imaplib.IMAP4_SSL(
            *self.daemon.addr("imaps"), ssl_context=client_context(verify=False), timeout=20
        )
        conn.login(user, PASSWORD)
        return conn

    def create(self, user: str, mailbox: str) -> None:
        """fileinto delivers to folders that exist (else INBOX), as a client makes them."""
        conn = self.imap(user)
        try:
            assert conn.create(mailbox)[0] == "OK"
        finally:
            conn.logout()

    def count(self, user: str, mailbox: str) -> int:
        conn = self.imap(user)
        try:
            typ, data = conn.status(mailbox, "(MESSAGES)")
            if typ != "OK":
                return 0
            m = re.search(rb"MESSAGES (\d+)", data[0] or b"")
            assert m
            return int(m.group(1))
        finally:
            conn.logout()

    def managesieve(self, user: str) -> Client:
        client = Client(self.daemon.addr("managesieve")[1])
        client.starttls()
        assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain(user, PASSWORD)}"').startswith(b"OK")
        return client

    def sieve_connect(
        self, user: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        host, port = self.daemon.addr("managesieve")
        read, write = os.pipe()
        os.write(write, PASSWORD.encode() + b"\n")
        os.close(write)
        try:
            return subprocess.run(
                [
                    *("sieve-connect", "-s", host, "-p", str(port), "-u", user),
                    *("--passwordfd", str(read), "--notlsverify", "--authmech", "PLAIN"),
                    *args,
                ],
                pass_fds=(read,),
                capture_output=True,
                text=True,
                timeout=60,
                cwd=self.root,
                check=check,
            )
        finally:
            os.close(read)


def wait_for(predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def literal(text: str) -> bytes:
    data = text.encode()
    return b"{%d+}\r\n" % len(data) + data


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    sink = SinkHandler()
    controller = LoopbackController(sink, ident="sink")
    controller.start()
    root = tmp_path_factory.mktemp("box")
    path = write_config(
        root,
        smarthost={"host": "127.0.0.1", "port": controller.port, "tls": "none"},
        filters={"mailauth": False},  # no DNS here
    )
    cfg = config.load(path)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain(DOMAIN)
    for user in (ANN, BEN, CAT, DAN):
        accounts.add_user(user, PASSWORD)
    accounts.close()
    daemon = Daemon(path, wait_for=("smtp", "imaps", "managesieve"))
    daemon.start()
    try:
        yield Box(daemon, CtlClient(cfg.ctl_socket, timeout=20), sink, root)
    finally:
        daemon.stop()
        controller.stop()


@pytest.mark.skipif(shutil.which("sieve-connect") is None, reason="sieve-connect not installed")
def test_sieve_connect_uploads_lists_activates_downloads(box: Box) -> None:
    script = 'require "fileinto";\nif header :contains "subject" "report" { fileinto "Reports"; }\n'
    (box.root / "up.sieve").write_text(script)
    box.create(ANN, "Reports")
    box.sieve_connect(ANN, "--upload", "--localsieve", "up.sieve", "--remotesieve", "reports")
    assert box.sieve_connect(ANN, "--list").stdout == '"reports"\n'
    box.sieve_connect(ANN, "--activate", "--remotesieve", "reports")
    assert box.sieve_connect(ANN, "--list").stdout == '"reports" ACTIVE\n'
    box.sieve_connect(ANN, "--download", "--remotesieve", "reports", "--localsieve", "down.sieve")
    assert (box.root / "down.sieve").read_text() == script
    # The web page edits the same active script (through the daemon's ctl socket).
    assert box.ctl.call("sieve.get", user=ANN)["script"] == script
    box.send("boss@example.org", ANN, "weekly report")
    wait_for(lambda: box.count(ANN, "Reports") == 1)
    bad = box.root / "bad.sieve"
    bad.write_text('keep;\nfileinto "x";\n')
    failed = box.sieve_connect(ANN, "--checkscript", "--localsieve", "bad.sieve", check=False)
    assert failed.returncode != 0
    assert "line 2" in failed.stdout + failed.stderr, failed
    client = box.managesieve(ANN)
    assert client.cmd(b"CHECKSCRIPT " + literal(bad.read_text())).startswith(b'NO "line 2: ')


def test_putscript_setactive_then_smtp_delivery_files_into_the_folder(box: Box) -> None:
    box.create(BEN, "Bills")
    client = box.managesieve(BEN)
    script = (
        'require "fileinto";\r\nif header :contains "subject" "invoice" { fileinto "Bills"; }\r\n'
    )
    assert client.cmd(b'PUTSCRIPT "bills" ' + literal(script)).startswith(b"OK")
    box.send("shop@example.org", BEN, "your invoice 42")  # not active yet: INBOX
    wait_for(lambda: box.count(BEN, "INBOX") == 1)
    assert client.cmd('SETACTIVE "bills"').startswith(b"OK")
    box.send("shop@example.org", BEN, "your invoice 43")
    wait_for(lambda: box.count(BEN, "Bills") == 1)
    assert client.cmd('SETACTIVE ""').startswith(b"OK")
    box.send("shop@example.org", BEN, "your invoice 44")
    wait_for(lambda: box.count(BEN, "INBOX") == 2)
    assert box.count(BEN, "Bills") == 1


def test_roundcube_scripts_act_at_delivery(box: Box) -> None:
    today = dt.date.today()
    rules = (
        'require ["fileinto"];\r\n'
        "# rule:[subject X]\r\n"
        'if header :contains "subject" "X"\r\n{\r\n\tfileinto "Y";\r\n}\r\n'
    )
    vacation = (
        'require ["vacation","date","relational"];\r\n'
        "# rule:[vac]\r\n"
        f'if allof (currentdate :value "ge" "date" "{today - dt.timedelta(days=1)}", '
        f'currentdate :value "le" "date" "{today + dt.timedelta(days=7)}")\r\n'
        "{\r\n"
        f'\tvacation :days 1 :subject "Out of office" :from "{CAT}" text:\r\n'
        "I am away.\r\n..a line with a dot\r\n.\r\n;\r\n"
        "}\r\n"
    )
    box.create(CAT, "Y")
    client = box.managesieve(CAT)
    assert client.cmd(b'PUTSCRIPT "roundcube" ' + literal(rules)).startswith(b"OK")
    assert client.cmd('SETACTIVE "roundcube"').startswith(b"OK")
    box.send("dan@example.org", CAT, "about X")
    box.send("dan@example.org", CAT, "about something else")
    wait_for(lambda: box.count(CAT, "Y") == 1 and box.count(CAT, "INBOX") == 1)
    assert client.cmd(b'PUTSCRIPT "roundcube" ' + literal(vacation)).startswith(b"OK")
    before = len(box.sink.messages)
    box.send("dan@example.org", CAT, "first")
    box.send("dan@example.org", CAT, "second")  # within :days 1 of the first: no reply
    box.send("eve@example.org", CAT, "third")
    wait_for(lambda: box.count(CAT, "INBOX") == 4)
    wait_for(lambda: len(box.sink.messages) >= before + 2)
    time.sleep(1.0)
    replies = box.sink.messages[before:]
    assert sorted(r.rcpt_tos[0] for r in replies) == ["dan@example.org", "eve@example.org"]
    for reply in replies:
        assert b"Subject: Out of office" in reply.content
        assert b"I am away.\r\n.a line with a dot" in reply.content


def test_failed_imap_logins_throttle_managesieve_too(box: Box) -> None:
    """One throttle for every protocol: [limits] login_free_failures (3) failures over IMAP
    and the right password over ManageSieve is refused as temporary (TRYLATER)."""
    for _ in range(3):
        conn = imaplib.IMAP4_SSL(
            *box.daemon.addr("imaps"), ssl_context=client_context(verify=False), timeout=20
        )
        with pytest.raises(imaplib.IMAP4.error):
            conn.login(DAN, "not the password")
        conn.shutdown()
    client = Client(box.daemon.addr("managesieve")[1])
    client.starttls()
    reply = client.cmd(f'AUTHENTICATE "PLAIN" "{plain(DAN, PASSWORD)}"')
    assert reply.startswith(b"NO (TRYLATER)"), reply
    client.close()
