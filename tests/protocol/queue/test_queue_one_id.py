"""A message keeps one id: the SMTP 250 "queued as X", `pillarbox queue list` and the
daemon's log lines all name the same X (real daemon, real submission, a held delivery)."""

from __future__ import annotations

import json
import re
import smtplib
import ssl
import time
from pathlib import Path

from appliance import config as config_mod
from appliance.accounts import Accounts
from tests.harness import Daemon, pillarbox, write_config

PASSWORD = "correct horse battery staple 42"


def test_queued_as_id_is_the_queue_id(tmp_path: Path, sinks) -> None:
    handler, ctl = sinks()
    handler.rcpt_replies["bob@example.net"] = "451 4.3.0 not now"  # delivery held
    path = write_config(
        tmp_path / "box", smarthost={"host": "127.0.0.1", "port": ctl.port, "tls": "none"}
    )
    cfg = config_mod.load(path)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain("pillarbox.test")
    accounts.add_user("alice@pillarbox.test", PASSWORD)
    accounts.close()
    with Daemon(path, wait_for=("submission",)) as d:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP(*d.addr("submission"), timeout=30) as client:
            client.starttls(context=context)
            client.login("alice@pillarbox.test", PASSWORD)
            assert client.mail("alice@pillarbox.test")[0] == 250
            assert client.rcpt("bob@example.net")[0] == 250
            code, reply = client.data(
                b"From: Alice <alice@pillarbox.test>\r\nTo: bob@example.net\r\n"
                b"Subject: one id\r\n\r\nHello Bob\r\n"
            )
        assert code == 250
        match = re.fullmatch(rb"2\.0\.0 Ok: queued as ([0-9A-F]+)", reply)
        assert match, reply
        qid = match.group(1).decode()
        deadline = time.monotonic() + 20
        while "attempts=1" not in pillarbox("queue", "list", "-c", str(path)).stdout:
            assert time.monotonic() < deadline, "no delivery attempt"
            time.sleep(0.1)
        listing = pillarbox("queue", "list", "-c", str(path)).stdout
        assert listing.splitlines()[0].split()[0] == qid
        entries = json.loads(pillarbox("queue", "list", "--json", "-c", str(path)).stdout)
        assert [e["id"] for e in entries] == [qid]
        log = d.log()
    assert f"smtp=accepted id={qid} " in log
    assert f"queue_id={qid} event=enqueued" in log
    ids_in_log = set(re.findall(r"\b(?:id|queue_id)=([0-9A-F]{16,})\b", log))
    assert ids_in_log == {qid}


def test_spool_keeps_a_given_id_unless_taken(tmp_path: Path) -> None:
    from appliance.queue.spool import Spool, message_id

    spool = Spool(tmp_path / "queue")
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: x\r\n\r\nx\r\n")
    given = message_id(time.time())
    assert spool.enqueue("a@example.org", ["b@example.net"], msg, queue_id=given) == given
    again = spool.enqueue("a@example.org", ["c@example.net"], msg, queue_id=given)
    assert again != given and spool.ids() == sorted([given, again])
    assert spool.load(given).recipients[0].address == "b@example.net"
