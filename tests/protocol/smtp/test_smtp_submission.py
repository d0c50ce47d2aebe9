"""Submission (587 STARTTLS, 465 implicit TLS): AUTH, sender ownership, routing."""

from __future__ import annotations

import base64
import smtplib

import pytest

from tests.protocol.smtp.smtpenv import DOMAIN, PASSWORD, SmtpEnv, message


def test_587_requires_starttls_before_auth_and_mail(env: SmtpEnv) -> None:
    with env.smtp("submission") as s:
        s.ehlo("c")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth")  # RFC 4954: no AUTH offered in clear text
        blob = base64.b64encode(b"\0a\0b").decode()
        assert s.docmd("AUTH", "PLAIN " + blob)[0] == 530  # STARTTLS first
        assert s.docmd("MAIL", f"FROM:<alice@{DOMAIN}>")[0] == 530
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert s.docmd("MAIL", f"FROM:<alice@{DOMAIN}>") == (530, b"5.7.0 Authentication required")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_mechanisms(env: SmtpEnv, mechanism: str) -> None:
    with env.smtp("submission") as s:
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        s.user, s.password = f"alice@{DOMAIN}", PASSWORD
        auth = s.auth_plain if mechanism == "PLAIN" else s.auth_login
        code, text = s.auth(mechanism, auth, initial_response_ok=mechanism == "PLAIN")
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        assert s.docmd("AUTH", "PLAIN")[0] == 503


def test_auth_plain_challenge_and_abort(env: SmtpEnv) -> None:
    with env.smtp("submission") as s:
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        assert s.docmd("AUTH", "PLAIN") == (334, b"")
        assert s.docmd("*")[0] == 501
        assert s.docmd("AUTH", "CRAM-MD5")[0] == 504
        blob = base64.b64encode(f"\0alice@{DOMAIN}\0{PASSWORD}".encode()).decode()
        assert s.docmd("AUTH", "PLAIN")[0] == 334
        assert s.docmd(blob)[0] == 235


def test_auth_plain_other_authzid_refused(env: SmtpEnv) -> None:
    with env.smtp("submission") as s:
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        blob = base64.b64encode(f"bob@{DOMAIN}\0alice@{DOMAIN}\0{PASSWORD}".encode()).decode()
        assert s.docmd("AUTH", f"PLAIN {blob}")[0] == 535


def test_wrong_password_535_then_throttled_454(env: SmtpEnv) -> None:
    def attempt(s: smtplib.SMTP, password: str) -> int:
        blob = base64.b64encode(f"\0alice@{DOMAIN}\0{password}".encode()).decode()
        return s.docmd("AUTH", f"PLAIN {blob}")[0]

    with env.smtp("submissions") as s:
        s.ehlo("c")
        assert [attempt(s, "wrong password") for _ in range(2)] == [535, 535]
    with env.smtp("submissions") as s:
        s.ehlo("c")
        assert attempt(s, "wrong password") == 535
        # the throttle now refuses without checking, even the right password
        assert attempt(s, PASSWORD) == 454


def test_three_failures_close_the_connection(env: SmtpEnv) -> None:
    env.ctx.auth.throttle = type(env.ctx.auth.throttle)(free_failures=100)
    with env.smtp("submissions") as s:
        s.ehlo("c")
        for _ in range(3):
            blob = base64.b64encode(f"\0bob@{DOMAIN}\0nope nope".encode()).decode()
            assert s.docmd("AUTH", f"PLAIN {blob}")[0] == 535
        assert s.getreply()[0] == 421


def test_465_implicit_tls_submission_local_and_remote(env: SmtpEnv) -> None:
    with env.smtp("submissions") as s:
        s.ehlo("c")
        assert not s.has_extn("starttls")
        s.login(f"alice@{DOMAIN}", PASSWORD)
        refused = s.sendmail(
            f"alice@{DOMAIN}", [f"bob@{DOMAIN}", "friend@remote.test"], message("mixed")
        )
        assert refused == {}
    bob = env.messages(f"bob@{DOMAIN}")
    assert len(bob) == 1
    assert b"with ESMTPSA id " in bob[0]
    assert len(env.queue.items) == 1
    sender, rcpts, path = env.queue.items[0]
    assert (sender, rcpts) == (f"alice@{DOMAIN}", ("friend@remote.test",))
    queued = path.read_bytes()
    assert queued.endswith(message("mixed"))
    # RFC 6409 8.2/8.3: Date and Message-ID added when missing
    head = queued.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nDate: " in head
    assert b"\r\nMessage-ID: <" in head
    assert head.index(b"Received:") < head.index(b"Date:") < head.index(b"From:")


def test_existing_message_id_and_date_kept(env: SmtpEnv) -> None:
    msg = message("ids", Message_ID="<abc@client>", Date="Mon, 1 Jan 2024 00:00:00 +0000")
    with env.submit_client() as s:
        s.sendmail(f"alice@{DOMAIN}", [f"bob@{DOMAIN}"], msg)
    stored = env.messages(f"bob@{DOMAIN}")[0]
    assert stored.count(b"Message-ID:") == 1
    assert stored.count(b"\r\nDate:") == 1


def test_sender_must_belong_to_user(env: SmtpEnv) -> None:
    with env.submit_client() as s:
        assert s.docmd("MAIL", f"FROM:<bob@{DOMAIN}>") == (
            553,
            b"5.7.1 Sender address not owned by you",
        )
        assert s.docmd("MAIL", "FROM:<>")[0] == 553
        assert s.docmd("MAIL", "FROM:<alice@remote.test>")[0] == 553
        assert s.docmd("MAIL", f"FROM:<AL@{DOMAIN}>")[0] == 250  # an alias of alice
        s.docmd("RSET")
        assert s.docmd("MAIL", f"FROM:<Alice@{DOMAIN}>")[0] == 250
        s.docmd("RSET")
        assert s.docmd("MAIL", f"FROM:<alice+lists@{DOMAIN}>")[0] == 250
        s.docmd("RSET")
        assert s.docmd("MAIL", f"FROM:<bob+alice@{DOMAIN}>")[0] == 553


def test_submission_unknown_local_user_550(env: SmtpEnv) -> None:
    with env.submit_client() as s:
        s.docmd("MAIL", f"FROM:<alice@{DOMAIN}>")
        assert s.docmd("RCPT", f"TO:<nobody@{DOMAIN}>")[0] == 550
        assert s.docmd("RCPT", "TO:<x@[192.0.2.1]>")[0] == 550
        assert s.docmd("RCPT", "TO:<user%other@remote.test>")[0] == 250  # remote's business


def test_queue_failure_is_451_and_nothing_acknowledged(env: SmtpEnv) -> None:
    env.queue.fail = True
    with env.submit_client() as s:
        with pytest.raises(smtplib.SMTPDataError) as info:
            s.sendmail(f"alice@{DOMAIN}", ["x@remote.test"], message())
        assert info.value.smtp_code == 451
    assert env.spool_files() == []


def test_swaks_submission(env: SmtpEnv) -> None:
    import subprocess

    out = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(env.ports["submission"]),
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            f"alice@{DOMAIN}",
            "--auth-password",
            PASSWORD,
            "--from",
            f"alice@{DOMAIN}",
            "--to",
            f"bob@{DOMAIN}",
            "--header",
            "Subject: swaks test",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "235 2.7.0 Authentication successful" in out.stdout
    stored = env.messages(f"bob@{DOMAIN}")
    assert len(stored) == 1 and b"Subject: swaks test" in stored[0]


def test_swaks_465_wrong_password(env: SmtpEnv) -> None:
    import subprocess

    out = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(env.ports["submissions"]),
            "--tlsc",
            "--auth",
            "PLAIN",
            "--auth-user",
            f"alice@{DOMAIN}",
            "--auth-password",
            "not the password",
            "--from",
            f"alice@{DOMAIN}",
            "--to",
            f"bob@{DOMAIN}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "535 5.7.8" in out.stdout
    assert env.messages(f"bob@{DOMAIN}") == []


def test_password_never_logged(env: SmtpEnv, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    with env.smtp("submission") as s:
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        blob = base64.b64encode(f"\0alice@{DOMAIN}\0{PASSWORD}".encode()).decode()
        assert s.docmd("AUTH", f"PLAIN {blob}")[0] == 235
    with env.smtp("submission") as s:
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        s.user, s.password = f"bob@{DOMAIN}", "wrong horse battery"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    text = caplog.text
    assert "auth-ok user=alice@example.org" in text
    for secret in (PASSWORD, blob, "wrong horse battery"):
        assert secret not in text
    assert base64.b64encode(b"wrong horse battery").decode() not in text


def test_plaintext_client_on_465_is_dropped_cleanly(env: SmtpEnv) -> None:
    import contextlib
    import socket
    import time

    sock = socket.create_connection(("127.0.0.1", env.ports["submissions"]), timeout=10)
    sock.sendall(b"EHLO plain\r\n")
    data = b""
    with contextlib.suppress(OSError):
        data = sock.recv(1024)
    assert b"250" not in data  # no SMTP in clear text on the implicit-TLS port
    sock.close()
    deadline = time.monotonic() + 5
    while env.service.status()["connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert env.service.status()["connections"] == 0
    with env.smtp("submissions") as s:  # still serving
        assert s.ehlo("c")[0] == 250


def test_auth_plain_authzid_is_compared_without_case(env: SmtpEnv) -> None:
    """appliance.sasl: the one authzid rule SMTP, IMAP and POP3 share (an identity is an
    address; addresses compare without case)."""
    with env.smtp("submission") as s:
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        upper = f"ALICE@{DOMAIN.upper()}\0alice@{DOMAIN}\0{PASSWORD}"
        blob = base64.b64encode(upper.encode()).decode()
        assert s.docmd("AUTH", f"PLAIN {blob}") == (235, b"2.7.0 Authentication successful")
