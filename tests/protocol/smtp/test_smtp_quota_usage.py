"""SMTP and quota, on the usage IMAP and the store share: mail appended over IMAP and
files other programs drop in count, EXPUNGE frees room, and two deliveries racing for
the last bytes cannot both get in."""

from __future__ import annotations

import smtplib
import threading

from appliance.store.base import INBOX
from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv, message

BOB = f"bob@{DOMAIN}"
FULL = (452, b"4.2.2 Mailbox full, try again later")


def sized(n: int, subject: str = "sized") -> bytes:
    return message(subject, ("q" * 98 + "\r\n") * (n // 100))


def rcpt(env: SmtpEnv, size: int) -> tuple[int, bytes]:
    with env.smtp() as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL", f"FROM:<x@remote.test> SIZE={size}")[0] == 250
        return s.docmd("RCPT", f"TO:<{BOB}>")


def send(env: SmtpEnv, msg: bytes) -> tuple[int, bytes]:
    with env.smtp() as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL", "FROM:<x@remote.test>")[0] == 250
        assert s.docmd("RCPT", f"TO:<{BOB}>")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(msg + b".\r\n")
        return s.getreply()


def test_imap_appended_mail_counts_and_expunge_frees_it(env: SmtpEnv) -> None:
    env.accounts.set_quota(BOB, 10_000)
    src = env.tmp / "appended.eml"
    src.write_bytes(sized(9_000))
    env.store.append(BOB, "Sent", src)  # as an IMAP APPEND would
    assert rcpt(env, 2_000) == FULL
    assert send(env, sized(2_000)) == FULL
    (sent,) = env.store.snapshot(BOB, "Sent").messages
    env.store.store_flags(BOB, "Sent", [sent.uid], "add", ["\\Deleted"])
    env.store.expunge(BOB, "Sent")
    assert rcpt(env, 2_000)[0] == 250
    assert send(env, sized(2_000))[0] == 250
    assert len(env.messages(BOB)) == 1


def test_files_dropped_in_by_another_program_count(env: SmtpEnv) -> None:
    env.accounts.set_quota(BOB, 10_000)
    env.store.ensure_user(BOB)
    assert send(env, sized(3_000))[0] == 250
    dropped = env.store.folder(BOB, "Archive") / "cur" / "1700000000.M9P9.elsewhere:2,S"
    dropped.write_bytes(b"Subject: imported\n\n" + b"i" * 6_000 + b"\n")
    assert send(env, sized(3_000)) == FULL
    assert len(env.messages(BOB)) == 1
    for f in dropped.parent.iterdir():
        f.unlink()
    assert send(env, sized(3_000))[0] == 250


def test_racing_deliveries_cannot_both_take_the_last_bytes(env: SmtpEnv) -> None:
    env.accounts.set_quota(BOB, 12_000)  # one 8 KB message fits, two do not
    clients = [env.smtp() for _ in range(4)]
    for n, s in enumerate(clients):
        s.ehlo("client.test")
        assert s.docmd("MAIL", "FROM:<x@remote.test>")[0] == 250
        assert s.docmd("RCPT", f"TO:<{BOB}>")[0] == 250  # nothing stored yet: all pass
        assert s.docmd("DATA")[0] == 354
        s.send(sized(8_000, f"race {n}"))
    barrier = threading.Barrier(len(clients))
    replies: list[int] = []

    def finish(s: smtplib.SMTP) -> None:
        barrier.wait()
        s.send(b".\r\n")
        replies.append(s.getreply()[0])
        s.close()

    threads = [threading.Thread(target=finish, args=(s,)) for s in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(replies) == [250, 452, 452, 452]
    assert len(env.messages(BOB, INBOX)) == 1
    assert env.store.usage(BOB).bytes <= 12_000
