"""Submission refuses a header From (or Sender) the authenticated user does not own
(issue 16 item 3): smtplib over STARTTLS with AUTH, BDAT, and swaks, on real sockets."""

from __future__ import annotations

import dataclasses
import smtplib
import subprocess
from pathlib import Path

import pytest

from appliance import config
from appliance.config import Smtp
from tests.protocol.smtp.smtpenv import DOMAIN, PASSWORD, SmtpEnv

ALICE = f"alice@{DOMAIN}"


def submit(env: SmtpEnv, head: str, user: str = ALICE, rcpt: str = f"carol@{DOMAIN}") -> str:
    """Send a message with header section ``head`` as ``user``; the final reply line."""
    data = (head.replace("\n", "\r\n") + "\r\n\r\nHello.\r\n").encode()
    with env.submit_client(user) as s:
        code, _ = s.mail(user)
        assert code == 250
        assert s.rcpt(rcpt)[0] == 250
        code, text = s.data(data)
        return f"{code} {text.decode()}"


def stored(env: SmtpEnv) -> list[bytes]:
    return env.messages(f"carol@{DOMAIN}")


@pytest.mark.parametrize(
    "head",
    [
        f"From: Alice <{ALICE}>",
        f"From: {ALICE}",
        f'From: "Alice A." <ALICE@{DOMAIN.upper()}>',  # case does not matter
        f"From: alice+lists@{DOMAIN}",  # RFC 5233 subaddress
        f"From: Al <al@{DOMAIN}>",  # alias delivering to alice alone
        f"From: {ALICE} (Alice)",
        f"From: Team: {ALICE}, al@{DOMAIN};\nSender: {ALICE}",
        f"From:\n\t{ALICE}",  # folded
    ],
)
def test_own_identities_accepted(env: SmtpEnv, head: str) -> None:
    assert submit(env, head + "\nSubject: ok").startswith("250 ")
    assert len(stored(env)) == 1


@pytest.mark.parametrize(
    ("head", "reply"),
    [
        (f"From: Bob <bob@{DOMAIN}>", "550 5.7.1 From header address not owned by you"),
        (f"From: sales@{DOMAIN}", "550 5.7.1 From"),  # shared with bob: nobody's alone
        (f"From: fwd@{DOMAIN}", "550 5.7.1 From"),  # forwards outside
        (f"From: {ALICE}, bob@{DOMAIN}", "550 5.7.1 From"),  # every address counts
        (f"From: bob+alice@{DOMAIN}", "550 5.7.1 From"),
        (f"From: {ALICE}\nSender: bob@{DOMAIN}", "550 5.7.1 Sender header address"),
        (f"From: {ALICE}\nFrom: bob@{DOMAIN}", "550 5.6.0 Message must have exactly one"),
        (f"From: {ALICE}\nX-No-Colon-Line\nfrom : bob@{DOMAIN}", "550 5.6.0 Message must"),
        ("Subject: no author", "550 5.6.0 Message has no From header field"),
        (f"From: {ALICE} <bob@{DOMAIN}>", "550 5.6.0 From header field cannot be parsed"),
        (f"From: {ALICE})<bob@{DOMAIN}>", "550 5.6.0 From header field cannot be parsed"),
        (f"From: alice+=?utf-8?q?=00?=@{DOMAIN}", "550 5.6.0 From header field cannot"),
        ("From: undisclosed:;", "550 5.6.0 From header field cannot be parsed"),
        (f"From: {ALICE}\nSender: {ALICE}, al@{DOMAIN}", "550 5.6.0 Sender header field"),
    ],
)
def test_foreign_or_ambiguous_author_refused(env: SmtpEnv, head: str, reply: str) -> None:
    assert submit(env, head + "\nSubject: spoof", rcpt="friend@remote.test").startswith(reply)
    assert env.queue.items == []  # nothing relayed (and so nothing signed)
    assert env.spool_files() == []


def test_catch_all_is_not_an_identity(env: SmtpEnv) -> None:
    carol = f"carol@{DOMAIN}"
    head = "From: anything@catch.test"  # reaches carol, but only through "@catch.test"
    assert submit(env, head, user=carol, rcpt=ALICE).startswith("550 5.7.1 From")
    assert submit(env, f"From: {carol}", user=carol, rcpt=ALICE).startswith("250 ")


def test_refusal_leaves_the_session_usable(env: SmtpEnv) -> None:
    with env.submit_client() as s:
        s.mail(ALICE)
        s.rcpt(f"carol@{DOMAIN}")
        code, text = s.data(f"From: Bob <bob@{DOMAIN}>\r\n\r\nhi\r\n".encode())
        assert (code, text) == (550, b"5.7.1 From header address not owned by you")
        s.mail(ALICE)
        s.rcpt(f"carol@{DOMAIN}")
        assert s.data(f"From: {ALICE}\r\n\r\nhi\r\n".encode())[0] == 250
    assert len(stored(env)) == 1


def test_bdat_checks_the_header_too(env: SmtpEnv) -> None:
    with env.submit_client() as s:
        s.mail(ALICE)
        s.rcpt(f"carol@{DOMAIN}")
        first = f"From: Bob <bob@{DOMAIN}>\r\nSubj".encode()
        second = b"ect: chunked\r\n\r\nbody\r\n"
        s.putcmd("BDAT", str(len(first)))
        s.send(first)
        assert s.getreply()[0] == 250
        s.putcmd("BDAT", f"{len(second)} LAST")
        s.send(second)
        assert s.getreply() == (550, b"5.7.1 From header address not owned by you")
    assert stored(env) == []


def test_header_section_too_large_to_check(env: SmtpEnv) -> None:
    pad = "".join(f"X-Pad-{i}: {'p' * 900}\n" for i in range(300))  # about 280 KiB
    assert submit(env, pad + f"From: {ALICE}").startswith("552 5.6.0 Header section too large")
    assert stored(env) == []


def test_admin_granted_extra_identities(env: SmtpEnv) -> None:
    grants = ((ALICE, (f"boss@{DOMAIN}", "*@other.test")),)
    cfg = env.ctx.config
    env.ctx.config = dataclasses.replace(cfg, smtp=Smtp(extra_identities=grants))
    assert submit(env, f"From: The Boss <boss@{DOMAIN}>").startswith("250 ")
    assert submit(env, "From: anyone@other.test").startswith("250 ")
    assert submit(env, "From: anyone@sub.other.test").startswith("550 5.7.1")
    assert submit(env, f"From: bob@{DOMAIN}").startswith("550 5.7.1")
    # granted to alice only
    assert submit(env, f"From: boss@{DOMAIN}", user=f"bob@{DOMAIN}").startswith("550 5.7.1")
    assert len(stored(env)) == 2
    # the grant covers the envelope too, so a mail client sending as the boss works
    with env.submit_client() as s:
        msg = f"From: The Boss <boss@{DOMAIN}>\r\nSubject: as boss\r\n\r\nhi\r\n".encode()
        assert s.sendmail(f"boss@{DOMAIN}", [f"carol@{DOMAIN}"], msg) == {}
        assert s.mail("someone@other.test")[0] == 250
        s.rset()
        assert s.mail(f"bob@{DOMAIN}")[0] == 553
    assert len(stored(env)) == 3


def test_mx_port_does_not_check_the_author(env: SmtpEnv) -> None:
    """Inbound mail from elsewhere carries other people's From, of course."""
    with env.smtp("smtp") as s:
        s.ehlo("remote.test")
        assert s.sendmail("x@remote.test", [ALICE], b"From: x@remote.test\r\n\r\nhi\r\n") == {}


def swaks(env: SmtpEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(env.ports["submission"]),
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            ALICE,
            "--auth-password",
            PASSWORD,
            "--from",
            ALICE,
            "--to",
            f"carol@{DOMAIN}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_swaks_spoofed_header_from_refused(env: SmtpEnv) -> None:
    out = swaks(env, "--header", f"From: Bob <bob@{DOMAIN}>")
    assert out.returncode != 0, out.stdout
    assert "550 5.7.1 From header address not owned by you" in out.stdout
    assert stored(env) == []
    out = swaks(env, "--header", f"From: Alice <{ALICE}>")
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(stored(env)) == 1


def test_smtplib_send_message_with_foreign_from(env: SmtpEnv) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = f"Bob <bob@{DOMAIN}>"
    msg["To"] = f"carol@{DOMAIN}"
    msg["Subject"] = "hi"
    msg.set_content("spoof")
    with env.submit_client() as s, pytest.raises(smtplib.SMTPDataError) as info:
        s.send_message(msg, from_addr=ALICE)
    assert info.value.smtp_code == 550
    assert stored(env) == []


def test_extra_identities_config_is_validated(tmp_path: Path) -> None:
    text = '[smtp.extra_identities]\n"Alice@Example.ORG" = ["boss@example.org", "*@Other.TEST"]'
    cfg = config.loads(text, tmp_path)
    assert cfg.smtp.identities_for(ALICE) == ("boss@example.org", "*@other.test")
    assert cfg.smtp.identities_for(f"bob@{DOMAIN}") == ()
    for bad in (
        '"*@example.org" = ["x@example.org"]',  # a grant is for one user
        '"alice@example.org" = "boss@example.org"',  # a list
        '"alice@example.org" = ["boss"]',
        '"alice@example.org" = ["a b@example.org"]',
        '"alice@example.org" = ["*@*"]',
        '"alice@example.org" = []\n"ALICE@example.org" = []',
    ):
        with pytest.raises(config.ConfigError, match=r"^smtp\.extra_identities\."):
            config.loads("[smtp.extra_identities]\n" + bad, tmp_path)
