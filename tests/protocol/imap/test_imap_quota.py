"""IMAP and quota (RFC 9208): APPEND, MULTIAPPEND and COPY that do not fit answer
NO [OVERQUOTA] and store nothing; MOVE is never refused; GETQUOTA shows the same usage
the store decides with, after EXPUNGE and after files another program dropped in."""

from __future__ import annotations

import imaplib
import os
import re
from pathlib import Path

from appliance import config
from appliance.accounts import Accounts
from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore
from appliance.tls import client_context
from tests.harness import Daemon, write_config
from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message
from tests.protocol.imap.rawclient import RawClient

QUOTA = 100 * 1024  # 100 KiB: STORAGE limit 100
USER = "quota@example.org"


def big(size: int, subject: str = "big") -> bytes:
    return make_message(subject, ("z" * 998 + "\r\n") * (size // 1000))


def quota_user(server: ImapServer, quota: int = QUOTA) -> str:
    server.ctx.accounts.add_user(USER, PASSWORD, quota_bytes=quota)
    server.ctx.store.ensure_user(USER)
    return USER


def login(server: ImapServer) -> imaplib.IMAP4_SSL:
    return server.imaps(user=quota_user(server))


def storage(c: imaplib.IMAP4) -> tuple[int, int]:
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK"
    line = b" ".join(d for group in data for d in group if isinstance(d, bytes))
    m = re.search(rb"\(STORAGE (\d+) (\d+)\)", line)
    assert m, data
    return int(m.group(1)), int(m.group(2))


def count(c: imaplib.IMAP4, mailbox: str = "INBOX") -> int:
    typ, data = c.status(mailbox, "(MESSAGES)")
    assert typ == "OK"
    m = re.search(rb"MESSAGES (\d+)", data[0] or b"")
    assert m
    return int(m.group(1))


def files(server: ImapServer, user: str = USER) -> int:
    store = server.ctx.store
    assert isinstance(store, MaildirStore)
    total = 0
    for info in store.list_mailboxes(user):
        if info.selectable:
            folder = store.folder(user, info.name)
            total += sum(len(os.listdir(folder / sub)) for sub in ("cur", "new", "tmp"))
    return total


def test_append_over_quota_is_refused_and_stores_nothing(imap_server: ImapServer) -> None:
    c = login(imap_server)
    assert storage(c) == (0, 100)
    typ, data = c.append("INBOX", "", None, big(200_000))
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    assert count(c) == 0 and files(imap_server) == 0
    assert storage(c) == (0, 100)
    fits = big(60_000, "fits")
    typ, data = c.append("INBOX", "(\\Seen)", None, fits)
    assert typ == "OK" and b"APPENDUID" in data[0]
    assert count(c) == 1
    assert storage(c) == ((len(fits) + 1023) // 1024, 100)
    typ, data = c.append("INBOX", "", None, big(60_000, "second"))  # 120 KB > 100 KiB
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]")
    assert count(c) == 1 and files(imap_server) == 1
    c.logout()


def test_multiappend_over_quota_stores_none(imap_server: ImapServer) -> None:
    quota_user(imap_server)
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    c.ok(f'LOGIN {USER} "{PASSWORD}"')
    parts = [big(40_000, f"part {n}") for n in range(3)]  # 120 KB together
    body = b"APPEND INBOX"
    for p in parts:
        body += b" (\\Seen) {%d+}\r\n" % len(p) + p
    lines = c.command(body)
    assert re.match(rb"c\d+ NO \[OVERQUOTA\]", lines[-1]), lines
    assert b"MESSAGES 0" in c.ok("STATUS INBOX (MESSAGES)")[0]
    assert files(imap_server) == 0
    body = b"APPEND INBOX"
    for p in parts[:2]:  # 80 KB: fits, both stored
        body += b" {%d+}\r\n" % len(p) + p
    lines = c.ok(body)
    assert re.search(rb"\[APPENDUID \d+ 1:2\]", lines[-1]), lines
    assert b"MESSAGES 2" in c.ok("STATUS INBOX (MESSAGES)")[0]
    c.close()


def test_copy_over_quota_copies_nothing_and_move_still_works(imap_server: ImapServer) -> None:
    quota_user(imap_server)
    for n in range(3):
        imap_server.deliver(big(25_000, f"m{n}"), user=USER)  # 75 KB of 100 KiB
    c = imap_server.imaps(user=USER)
    used = storage(c)
    c.select("INBOX")
    typ, data = c.copy("1:*", "INBOX")
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    typ, data = c.uid("COPY", "1:*", "Archive")
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    assert count(c) == 3 and count(c, "Archive") == 0
    assert files(imap_server) == 3 and storage(c) == used
    typ, data = c.copy("1", "Archive")  # one more fits (100 KB < 100 KiB)
    assert typ == "OK", data
    # MOVE keeps usage as it is: never refused, even at the limit.
    typ, data = c._simple_command("MOVE", "1:3", "Trash")
    assert typ == "OK", data
    assert count(c, "Trash") == 3 and count(c) == 0
    c.select("Trash")
    c.store("1:3", "+FLAGS", "(\\Deleted)")
    c.expunge()
    assert storage(c)[0] == (len(big(25_000, "m0")) + 1023) // 1024  # the Archive copy
    c.logout()


def test_usage_follows_expunge_and_foreign_files(imap_server: ImapServer) -> None:
    c = login(imap_server)
    msg = big(30_000)
    for _ in range(3):
        assert c.append("INBOX", "", None, msg)[0] == "OK"
    three = storage(c)[0]
    assert three == (3 * len(msg) + 1023) // 1024
    c.select("INBOX")
    c.store("1:2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    assert storage(c)[0] == (len(msg) + 1023) // 1024
    assert c.append("INBOX", "", None, big(60_000))[0] == "OK"  # fits again after EXPUNGE
    store = imap_server.ctx.store
    assert isinstance(store, MaildirStore)
    # Another program (procmail, a restore by hand) drops 30 KB into Junk: it counts.
    drop = store.folder(USER, "Junk") / "cur" / "1700000000.M1P1.elsewhere:2,S"
    drop.write_bytes(b"Subject: dropped\r\n\r\n" + b"d" * 30_000 + b"\r\n")
    used = store.usage(USER).bytes
    assert storage(c)[0] == (used + 1023) // 1024
    typ, data = c.append("INBOX", "", None, big(10_000))  # would have fit without it
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    for adopted in drop.parent.iterdir():  # renamed to carry its UID when adopted
        adopted.unlink()
    typ, data = c.append("INBOX", "", None, big(10_000))
    assert typ == "OK", data
    assert storage(c)[0] == (store.usage(USER).bytes + 1023) // 1024
    c.logout()


def test_quota_in_the_real_daemon(tmp_path: Path) -> None:
    """The headline case against `pillarbox run`: a 200 KB APPEND and a COPY of
    everything with a 100 KiB quota are refused; GETQUOTA reports what is stored."""
    cfg_path = write_config(tmp_path)
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("example.org")
    accounts.add_user(USER, PASSWORD, quota_bytes=QUOTA)
    accounts.close()
    store = MaildirStore(cfg.mail_dir, lambda e: None, lambda p: b"")
    src = tmp_path / "m.eml"
    src.write_bytes(big(40_000))
    store.deliver([DeliveryTarget(USER)], src)
    with Daemon(cfg_path, wait_for=("imaps",)) as daemon:
        c = imaplib.IMAP4_SSL(
            *daemon.addr("imaps"), ssl_context=client_context(verify=False), timeout=20
        )
        c.login(USER, PASSWORD)
        before = storage(c)
        assert before == ((len(src.read_bytes()) + 1023) // 1024, 100)
        typ, data = c.append("INBOX", "", None, big(200_000))
        assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
        c.select("INBOX")
        store.deliver([DeliveryTarget(USER)], src)  # 80 KB now, from another process
        c.noop()
        typ, data = c.copy("1:*", "INBOX")
        assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
        assert storage(c) == ((2 * len(src.read_bytes()) + 1023) // 1024, 100)
        c.logout()
    assert store.usage(USER).messages == 2
    assert len(store.snapshot(USER, INBOX).messages) == 2
