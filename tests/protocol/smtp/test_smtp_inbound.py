"""Inbound MX on real sockets: EHLO, recipients, delivery into the real Maildir."""

from __future__ import annotations

import smtplib

import pytest

from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv, message


def test_ehlo_extensions_mx(env: SmtpEnv) -> None:
    with env.smtp() as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        for ext in (
            "pipelining",
            "size",
            "8bitmime",
            "smtputf8",
            "enhancedstatuscodes",
            "starttls",
        ):
            assert s.has_extn(ext), ext
        assert s.esmtp_features["size"] == str(1024 * 1024)
        assert not s.has_extn("auth")  # never AUTH on port 25
        s.starttls(context=env.client_tls())
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        assert not s.has_extn("auth")
        assert s.docmd("AUTH", "PLAIN AGFsaWNlAHg=")[0] == 502


def test_delivers_into_maildir_with_trace_headers(env: SmtpEnv) -> None:
    body = message("inbound one", body="line one\r\n.leading dot\r\n")
    with env.smtp() as s:
        s.ehlo("client.test")
        refused = s.sendmail("sender@remote.test", [f"bob@{DOMAIN}"], body)
        assert refused == {}
    msgs = env.messages(f"bob@{DOMAIN}")
    assert len(msgs) == 1
    stored = msgs[0]
    assert stored.startswith(
        b"Return-Path: <sender@remote.test>\r\nDelivered-To: bob@example.org\r\n"
    )
    assert b"Received: from client.test ([127.0.0.1])" in stored
    assert b"with ESMTP id " in stored
    assert b"for <bob@example.org>;" in stored
    assert stored.endswith(body)  # dot-unstuffed, byte for byte
    assert b"\r\n.leading dot\r\n" in stored
    assert env.spool_files() == []  # the spool file is removed after delivery


def test_received_header_names_tls(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.starttls(context=env.client_tls())
        s.sendmail("x@remote.test", [f"bob@{DOMAIN}"], message())
    stored = env.messages(f"bob@{DOMAIN}")[0]
    assert b"with ESMTPS id " in stored
    assert b"(using version=TLSv1.3 cipher=" in stored


def test_alias_subaddress_catchall_and_dedup(env: SmtpEnv) -> None:
    with env.smtp() as s:
        refused = s.sendmail(
            "x@remote.test",
            [f"sales@{DOMAIN}", f"alice+news@{DOMAIN}", "anything@catch.test", f"AL@{DOMAIN}"],
            message("fan out"),
        )
        assert refused == {}
    assert len(env.messages(f"alice@{DOMAIN}")) == 1  # sales, alice+news and al: one copy
    assert len(env.messages(f"bob@{DOMAIN}")) == 1
    assert len(env.messages(f"carol@{DOMAIN}")) == 1
    assert env.queue.items == []


def test_remote_alias_target_is_forwarded_through_queue(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.sendmail("x@remote.test", [f"fwd@{DOMAIN}", f"bob@{DOMAIN}"], message("fwd"))
    assert len(env.queue.items) == 1
    sender, rcpts, path = env.queue.items[0]
    assert (sender, rcpts) == ("x@remote.test", ("someone@remote.test",))
    assert path.read_bytes().startswith(b"Received: from ")
    assert len(env.messages(f"bob@{DOMAIN}")) == 1


@pytest.mark.parametrize(
    "rcpt",
    [
        f"<nobody@{DOMAIN}>",
        "<user@remote.test>",
        f"<user%remote.test@{DOMAIN}>",
        f'<"user@remote.test"@{DOMAIN}>',
        f'<"bob"@{DOMAIN}>',
        f"<@{DOMAIN}:user@remote.test>",
        f"<remote.test!user@{DOMAIN}>",
        "<user@remote.test.>",
        f"<bob@{DOMAIN}.>",
        "<bob@[127.0.0.1]>",
        "<bob@[IPv6:::1]>",
        f"<bob@remote.test@{DOMAIN}>",
        "<user@remote.test>,<x@" + DOMAIN + ">",
        f"<bob@{DOMAIN}",
        "<>",
    ],
)
def test_no_relay_for_unauthenticated(env: SmtpEnv, rcpt: str) -> None:
    with env.smtp() as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL", "FROM:<x@remote.test>")[0] == 250
        code, text = s.docmd("RCPT", f"TO:{rcpt}")
        assert 500 <= code < 600, (code, text)
        assert text[:2] == b"5.", text  # enhanced status code present
        assert s.docmd("DATA")[0] == 503  # nothing accepted
    assert env.queue.items == []


def test_unknown_user_gets_550_5_1_1_and_relay_550_5_7_1(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.ehlo("client.test")
        s.docmd("MAIL", "FROM:<x@remote.test>")
        assert s.docmd("RCPT", f"TO:<nobody@{DOMAIN}>") == (550, b"5.1.1 No such user here")
        assert s.docmd("RCPT", "TO:<a@remote.test>") == (550, b"5.7.1 Relay access denied")
        assert s.docmd("RCPT", f"TO:<bob@{DOMAIN}>")[0] == 250


def test_source_route_to_local_user_is_accepted_and_ignored(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.ehlo("client.test")
        s.docmd("MAIL", "FROM:<x@remote.test>")
        assert s.docmd("RCPT", f"TO:<@relay.test,@other.test:bob@{DOMAIN}>")[0] == 250


def test_postmaster_without_domain(env: SmtpEnv) -> None:
    env.accounts.add_alias(f"postmaster@{DOMAIN}", f"carol@{DOMAIN}")
    with env.smtp() as s:
        s.ehlo("client.test")
        s.docmd("MAIL", "FROM:<>")
        assert s.docmd("RCPT", "TO:<Postmaster>")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(message("to postmaster") + b".\r\n")
        assert s.getreply()[0] == 250
    assert len(env.messages(f"carol@{DOMAIN}")) == 1


def test_null_sender_accepted_on_mx(env: SmtpEnv) -> None:
    with env.smtp() as s:
        assert s.sendmail("", [f"bob@{DOMAIN}"], message("bounce")) == {}
    assert env.messages(f"bob@{DOMAIN}")[0].startswith(b"Return-Path: <>\r\n")


def test_max_recipients_452(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.ehlo("client.test")
        s.docmd("MAIL", "FROM:<x@remote.test>")
        for _ in range(5):
            assert s.docmd("RCPT", f"TO:<bob@{DOMAIN}>")[0] == 250
        assert s.docmd("RCPT", f"TO:<bob@{DOMAIN}>") == (452, b"4.5.3 Too many recipients")


def test_pipelined_transactions(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.ehlo("client.test")
        batch = (
            b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<nobody@example.org>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\n"
        )
        s.send(batch)
        assert [s.getreply()[0] for _ in range(4)] == [250, 550, 250, 354]
        s.send(message("pipelined") + b".\r\nRSET\r\nNOOP\r\n")
        assert [s.getreply()[0] for _ in range(3)] == [250, 250, 250]
    assert len(env.messages(f"bob@{DOMAIN}")) == 1


def test_smtputf8_address(env: SmtpEnv) -> None:
    env.accounts.add_alias(f"jürgen@{DOMAIN}", f"bob@{DOMAIN}")
    with env.smtp() as s:
        s.command_encoding = "utf-8"
        s.ehlo("client.test")
        assert s.docmd("MAIL", "FROM:<x@remote.test>")[0] == 250
        code, text = s.docmd("RCPT", f"TO:<jürgen@{DOMAIN}>")
        assert (code, text[:5]) == (553, b"5.6.7")
        s.docmd("RSET")
        assert s.docmd("MAIL", "FROM:<x@remote.test> SMTPUTF8")[0] == 250
        assert s.docmd("RCPT", f"TO:<jürgen@{DOMAIN}>")[0] == 250


def test_commands_before_helo_and_out_of_order(env: SmtpEnv) -> None:
    with env.smtp() as s:
        assert s.docmd("MAIL", "FROM:<x@remote.test>")[0] == 503
        s.ehlo("client.test")
        assert s.docmd("RCPT", f"TO:<bob@{DOMAIN}>")[0] == 503
        assert s.docmd("DATA")[0] == 503
        assert s.docmd("FROB")[0] == 500


def test_starttls_discards_plaintext_injection(env: SmtpEnv) -> None:
    import socket

    sock = socket.create_connection(("127.0.0.1", env.ports["smtp"]), timeout=10)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220 ")
    sock.sendall(b"EHLO c\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    # RFC 3207 / CVE-2011-0411: commands pipelined after STARTTLS in clear text are dropped
    sock.sendall(b"STARTTLS\r\nRSET\r\n")
    assert f.readline().startswith(b"220 ")
    tls = env.client_tls().wrap_socket(sock, server_hostname="127.0.0.1")
    tf = tls.makefile("rb")
    tls.sendall(b"NOOP\r\n")
    line = tf.readline()
    assert line.startswith(b"250 "), line
    tls.sendall(b"QUIT\r\n")
    assert tf.readline().startswith(b"221")
    tls.close()


def test_service_status(env: SmtpEnv) -> None:
    st = env.service.status()
    assert len(st["listening"]) == 3
    assert all(a.startswith("127.0.0.1:") for a in st["listening"])
    with env.smtp() as s:
        s.sendmail("x@remote.test", [f"bob@{DOMAIN}"], message())
    assert env.service.status()["accepted"] == 1


def test_smtplib_refuses_on_bad_recipient(env: SmtpEnv) -> None:
    with env.smtp() as s, pytest.raises(smtplib.SMTPRecipientsRefused):
        s.sendmail("x@remote.test", [f"nobody@{DOMAIN}"], message())


def test_helo_client_plain_smtp(env: SmtpEnv) -> None:
    with env.smtp() as s:
        assert s.helo("old.client")[0] == 250
        code, text = s.docmd("MAIL", "FROM:<x@remote.test>")
        assert (code, text) == (250, b"2.1.0 Sender OK")
        code, text = s.docmd("NOOP")
        assert (code, text) == (250, b"OK")  # no enhanced codes without EHLO
        s.docmd("RCPT", f"TO:<bob@{DOMAIN}>")
        s.docmd("DATA")
        s.send(message("helo") + b".\r\n")
        assert s.getreply()[0] == 250
    assert b"with SMTP id " in env.messages(f"bob@{DOMAIN}")[0]


def test_starttls_twice_and_inside_transaction(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.ehlo("c")
        s.docmd("MAIL", "FROM:<x@remote.test>")
        assert s.docmd("STARTTLS")[0] == 503
        s.docmd("RSET")
        s.starttls(context=env.client_tls())
        s.ehlo("c")
        assert s.docmd("STARTTLS")[0] == 503


def test_vrfy_does_not_disclose_users(env: SmtpEnv) -> None:
    with env.smtp() as s:
        s.ehlo("c")
        assert s.docmd("VRFY", f"bob@{DOMAIN}") == s.docmd("VRFY", f"nobody@{DOMAIN}")
        assert s.docmd("EXPN", f"sales@{DOMAIN}")[0] == 502


def test_forged_authentication_results_are_removed(env: SmtpEnv) -> None:
    """RFC 8601 5: results that claim this host's authserv-id come from outside: drop them;
    results of other hosts (and everything else in the header) stay byte for byte."""
    ours = env.ctx.config.hostname
    body = (
        f"Authentication-Results: {ours}; spf=pass smtp.mailfrom=x@remote.test\r\n"
        f"Authentication-Results: (forged) {ours.upper()};\r\n dkim=pass header.d=bank.test\r\n"
        "Authentication-Results: mx.elsewhere.test; spf=fail\r\n"
    ).encode() + message("forged results")
    with env.smtp() as s:
        s.sendmail("x@remote.test", [f"bob@{DOMAIN}"], body)
    stored = env.messages(f"bob@{DOMAIN}")[0]
    assert ours.encode() + b"; spf=pass" not in stored
    assert b"header.d=bank.test" not in stored
    assert b"Authentication-Results: mx.elsewhere.test; spf=fail\r\n" in stored
    assert stored.endswith(message("forged results"))
