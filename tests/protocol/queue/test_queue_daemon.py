"""The queue inside the real daemon (`pillarbox run`): delivery through a smarthost sink,
the queue.* ctl commands, and entries surviving a kill -9 of the daemon."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from appliance import config as config_mod
from appliance.ctl.client import CtlClient
from appliance.queue.spool import Spool
from tests.harness import Daemon, write_config


def _wait(predicate: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _message(tmp_path: Path) -> Path:
    p = tmp_path / "m.eml"
    p.write_bytes(b"From: a@example.org\r\nTo: b@example.net\r\nSubject: q\r\n\r\nhello\r\n")
    return p


def test_daemon_delivers_queued_mail_via_smarthost(tmp_path: Path, sinks) -> None:
    handler, ctl = sinks()
    path = write_config(
        tmp_path / "box", smarthost={"host": "127.0.0.1", "port": ctl.port, "tls": "none"}
    )
    cfg = config_mod.load(path)
    spool = Spool(cfg.queue_dir)
    spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    with Daemon(path):
        # Present at start: delivered without any nudge.
        _wait(lambda: len(handler.messages) == 1)
        _wait(lambda: spool.ids() == [])
        client = CtlClient(cfg.ctl_socket, timeout=10)
        # Written behind the daemon's back: a flush makes it look now.
        qid = spool.enqueue("a@example.org", ["c@example.net"], _message(tmp_path))
        listed = client.call("queue.list")
        assert [e["id"] for e in listed] == [qid]
        client.call("queue.flush")
        _wait(lambda: len(handler.messages) == 2)
        assert handler.messages[1].rcpt_tos == ["c@example.net"]
        status = client.call("status")["services"]["queue"]
        assert status["delivered"] >= 1


def test_daemon_kill_9_keeps_entries(tmp_path: Path, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["b@example.net"] = "451 4.3.0 not now"
    path = write_config(
        tmp_path / "box", smarthost={"host": "127.0.0.1", "port": ctl.port, "tls": "none"}
    )
    cfg = config_mod.load(path)
    spool = Spool(cfg.queue_dir)
    qid = spool.enqueue("a@example.org", ["b@example.net"], _message(tmp_path))
    d = Daemon(path)
    d.start()
    try:
        _wait(lambda: spool.load(qid).recipients[0].attempts == 1)
        d.kill()
        handler.rcpt_replies.clear()
        assert spool.ids() == [qid]  # deferred entry is still there after SIGKILL
        # Daemon.start() waits for a ready line and the socket: clear the old run's.
        cfg.ctl_socket.unlink(missing_ok=True)
        d.log_path.rename(d.log_path.with_suffix(".log.1"))
        d.start()
        CtlClient(cfg.ctl_socket, timeout=10).call("queue.retry", id=qid)
        _wait(lambda: len(handler.messages) == 1)
        _wait(lambda: spool.ids() == [])
    finally:
        d.stop()


def test_submission_to_remote_goes_out_dkim_signed(tmp_path: Path, sinks) -> None:
    """End to end: authenticated submission -> queue -> DKIM -> smarthost sink."""
    import smtplib
    import ssl

    import dkim as dkimpy

    from appliance.accounts import Accounts
    from appliance.queue import dkim

    handler, ctl = sinks()
    path = write_config(
        tmp_path / "box", smarthost={"host": "127.0.0.1", "port": ctl.port, "tls": "none"}
    )
    cfg = config_mod.load(path)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("pillarbox.test")
    accounts.add_user("alice@pillarbox.test", "correct horse battery staple 42")
    accounts.close()
    with Daemon(path, wait_for=("submission",)) as d:
        host, port = d.addr("submission")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP(host, port, timeout=30) as client:
            client.starttls(context=context)
            client.login("alice@pillarbox.test", "correct horse battery staple 42")
            client.sendmail(
                "alice@pillarbox.test",
                ["bob@example.net"],
                b"From: Alice <alice@pillarbox.test>\r\nTo: bob@example.net\r\n"
                b"Subject: e2e\r\nMessage-ID: <e2e@pillarbox.test>\r\n\r\nHello Bob\r\n",
            )
        _wait(lambda: len(handler.messages) == 1, 30)
    [got] = handler.messages
    assert got.mail_from == "alice@pillarbox.test" and got.rcpt_tos == ["bob@example.net"]
    records = {n + ".": v.encode() for n, v in dkim.dns_records(cfg, "pillarbox.test")}
    signed = dkimpy.DKIM(got.content)
    assert signed.verify(idx=0, dnsfunc=lambda name, timeout=5: records.get(name.decode()))
