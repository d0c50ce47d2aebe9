"""A full disk does not lock users out (issue 17.4), against `pillarbox run`.

The daemon's mail_dir is a real 8 MiB tmpfs. Below the free-space reserve new mail is
refused (SMTP 452 4.3.1 at MAIL FROM, APPEND NO [OVERQUOTA]) and nothing is written;
with the disk then filled to the last byte by another program, IMAP login, SELECT,
EXAMINE, STATUS, LIST, SEARCH and FETCH and POP3 login, STAT, LIST, UIDL and RETR all
work without a byte of room, and EXPUNGE and POP3 DELE/QUIT still delete (the store
gives a delete the blocks of its spare file).

Needs root (mount); CI runs as root.
"""

from __future__ import annotations

import contextlib
import errno
import imaplib
import os
import poplib
import re
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.store import reserve
from appliance.store.base import INBOX
from appliance.store.maildir import MaildirStore
from appliance.tls import client_context
from tests.harness import Daemon, write_config

DOMAIN = "full.test"
USER = f"alice@{DOMAIN}"
PASSWORD = "full-disk-password-1"
TMPFS = 8 << 20
RESERVE = 2 << 20  # limits.disk_reserve for this daemon
MESSAGES = 6

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tmpfs as the mail disk needs root (CI runs as root)"
)


def _message(n: int) -> bytes:
    body = (b"line %d of a message that takes some room on the disk\r\n" % n) * 300
    return (
        f"From: sender@remote.test\r\nTo: {USER}\r\nSubject: full disk {n}\r\n"
        f"Message-ID: <full-{n}@remote.test>\r\n\r\n"
    ).encode() + body


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(path: Path, leave: int) -> Path:
    """Write a filler file until only ``leave`` bytes are free (0: to the last byte)."""
    filler = path / f"filler-{leave}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for step in (1 << 16, 4096, 1):
            while _free(path) - step >= leave:
                try:
                    os.write(fd, b"x" * step)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
        if leave == 0:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"x")
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def mail_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mail"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS},mode=0700", "tmpfs", str(mnt)],
        check=True,
        capture_output=True,
    )
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def _imap(daemon: Daemon) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL(*daemon.addr("imaps"), ssl_context=client_context(verify=False))
    c.sock.settimeout(20)
    c.login(USER, PASSWORD)
    return c


def _pop3(daemon: Daemon) -> poplib.POP3_SSL:
    p = poplib.POP3_SSL(*daemon.addr("pop3s"), context=client_context(verify=False), timeout=20)
    p.user(USER)
    p.pass_(PASSWORD)
    return p


def _ok(result: tuple[str, Any]) -> list[bytes]:
    typ, data = result
    assert typ == "OK", data
    out: list[bytes] = []
    for d in data:
        if isinstance(d, tuple):
            out.extend(d)
        elif d is not None:
            out.append(d)
    return out


@pytest.mark.timeout(120)
def test_full_disk_reads_and_deletes_work_new_mail_is_refused(
    tmp_path: Path, mail_disk: Path
) -> None:
    cfg_path = write_config(tmp_path, mail_dir=str(mail_disk), limits={"disk_reserve": RESERVE})
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain(DOMAIN)
    accounts.add_user(USER, PASSWORD)
    accounts.close()

    with Daemon(cfg_path, wait_for=("smtp", "imaps", "pop3s")) as daemon:
        with smtplib.SMTP(*daemon.addr("smtp"), timeout=20) as smtp:
            for n in range(MESSAGES):
                smtp.sendmail("sender@remote.test", [USER], _message(n))
        # The first delivery created the spare file a delete can use later.
        assert (mail_disk / reserve.SPARE_NAME).stat().st_blocks * 512 >= RESERVE // 4

        # ---- a message that does not fit above the reserve: 452 at the end of DATA
        _fill(mail_disk, RESERVE + 100 * 1024)
        time.sleep(reserve.CACHE_SECONDS + 0.1)  # the daemon's statvfs cache
        big = _message(50) * 20  # ~330 KB
        with smtplib.SMTP(*daemon.addr("smtp"), timeout=20) as smtp:
            smtp.ehlo("remote.test")
            # RFC 1870 6.2: a declared SIZE that does not fit is refused at MAIL ...
            code, _ = smtp.mail("sender@remote.test", [f"SIZE={len(big)}"])
            assert code == 452
            # ... an undeclared one at the end of DATA, with nothing stored
            assert smtp.mail("sender@remote.test")[0] == 250
            assert smtp.rcpt(USER)[0] == 250
            code, text = smtp.data(big)
            assert (code, text[:5]) == (452, b"4.3.1"), (code, text)

        # ---- below the reserve: new mail is refused, nothing is written
        _fill(mail_disk, RESERVE // 2)
        time.sleep(reserve.CACHE_SECONDS + 0.1)  # the daemon's statvfs cache
        before = _free(mail_disk)
        with smtplib.SMTP(*daemon.addr("smtp"), timeout=20) as smtp:
            smtp.ehlo("remote.test")
            code, text = smtp.mail("sender@remote.test")
            # RFC 5321 4.2.2 / RFC 3463 3.4: insufficient system storage
            assert (code, text[:5]) == (452, b"4.3.1"), (code, text)
            code, text = smtp.mail("sender@remote.test", ["SIZE=1000"])
            assert code == 452, (code, text)
        c = _imap(daemon)
        typ, data = c.append("INBOX", "", None, _message(99))
        assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
        c.logout()
        assert _free(mail_disk) >= before - 64 * 1024  # nothing stored (a log line at most)

        # ---- another program takes the last byte
        _fill(mail_disk, 0)
        assert _free(mail_disk) == 0

        c = _imap(daemon)
        _ok(c.list())
        _ok(c.status("INBOX", "(MESSAGES UNSEEN RECENT)"))
        _ok(c.select("INBOX", readonly=True))  # EXAMINE
        _ok(c.close())
        assert _ok(c.select("INBOX")) == [str(MESSAGES).encode()]
        [hits] = _ok(c.search(None, "ALL"))
        assert hits.split() == [str(n).encode() for n in range(1, MESSAGES + 1)]
        [hits] = _ok(c.search(None, "SUBJECT", '"full disk 3"'))
        assert hits == b"4"
        fetched = _ok(c.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)"))
        assert len([f for f in fetched if b"ENVELOPE" in f]) == MESSAGES
        data = _ok(c.fetch("2", "(BODY.PEEK[])"))
        assert data[1].endswith(_message(1))  # after the trace header fields
        assert _free(mail_disk) == 0  # every read above worked without a byte

        p = _pop3(daemon)
        count, size = p.stat()
        assert count == MESSAGES
        _, listing, _ = p.list()
        assert size == sum(int(line.split()[1]) for line in listing)
        _, lines, _ = p.retr(1)
        sent = b"\r\n".join(lines) + b"\r\n"
        assert sent.endswith(_message(0))
        assert int(listing[0].split()[1]) == len(sent)
        _, uidl, _ = p.uidl()
        assert len(uidl) == MESSAGES
        assert _free(mail_disk) == 0

        # ---- a restart on the full disk (the box rebooted): reads still work
        c.logout()
        daemon.stop()
        daemon.start()
        assert _free(mail_disk) == 0
        c = _imap(daemon)
        assert _ok(c.select("INBOX")) == [str(MESSAGES).encode()]
        assert _ok(c.fetch("2", "(BODY.PEEK[])"))[1].endswith(_message(1))
        p = _pop3(daemon)
        assert p.stat()[0] == MESSAGES
        assert _free(mail_disk) == 0

        # ---- deletes make room, on the full disk: a client's "delete" is often a MOVE
        # to Trash (RFC 6851), the first write here
        typ, data = c._simple_command("MOVE", str(MESSAGES), "Trash")
        assert typ == "OK", data
        assert c.response("EXPUNGE") == ("EXPUNGE", [str(MESSAGES).encode()])
        p.dele(1)
        assert p.quit().startswith(b"+OK")
        _ok(c.noop())
        assert c.response("EXPUNGE") == ("EXPUNGE", [b"1"])  # POP3's delete, seen here
        _ok(c.store("1", "+FLAGS", "\\Deleted"))
        expunged = _ok(c.expunge())
        assert expunged == [b"1"], expunged
        [hits] = _ok(c.search(None, "ALL"))
        assert len(hits.split()) == MESSAGES - 3

        # ---- full again, the spare used up: FETCH BODY[] still answers (without \Seen)
        assert not (mail_disk / reserve.SPARE_NAME).exists()
        _fill(mail_disk, 0)
        data = _ok(c.fetch("1", "(BODY[])"))
        assert data[1].endswith(_message(2)), data[:1]
        c.logout()

        log = daemon.log()
        assert "index=corrupt" not in log
        assert "store=spare-released" in log

    store = MaildirStore(cfg.mail_dir, lambda e: None, lambda p: b"")
    subjects = sorted(
        re.search(rb"Subject: full disk (\d+)", store.open_message(USER, INBOX, m.uid).read())[1]  # type: ignore[index]
        for m in store.snapshot(USER, INBOX).messages
    )
    assert subjects == [str(n).encode() for n in range(2, MESSAGES - 1)]
    [moved] = store.snapshot(USER, "Trash").messages
    assert store.open_message(USER, "Trash", moved.uid).read().endswith(_message(MESSAGES - 1))
