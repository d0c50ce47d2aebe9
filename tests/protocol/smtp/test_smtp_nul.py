"""NUL octets in message data are refused (554 5.6.0), never stored, DATA and BDAT alike.

RFC 2045 2.7/2.8: 7bit and 8bit data hold no NUL; only a BINARYMIME body (RFC 3030 3)
may, and Pillarbox does not offer BINARYMIME.
"""

from __future__ import annotations

import pytest

from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv
from tests.protocol.smtp.test_smtp_chunking import bdat, begin
from tests.protocol.smtp.test_smtp_data import start_data

NUL_REPLY = b"554 5.6.0 Message contains NUL characters\r\n"

PLACES = {
    "body": b"Subject: x\r\n\r\nbefore\x00after\r\n",
    "header": b"Subject: x\x00y\r\n\r\nbody\r\n",
    "line-start": b"Subject: x\r\n\r\n\x00\r\n",
    "deep": b"Subject: x\r\n\r\n" + b"filler line\r\n" * 20000 + b"\x00\r\n",
}


@pytest.mark.parametrize("where", PLACES)
def test_data_with_nul_refused(env: SmtpEnv, where: str) -> None:
    c = start_data(env)
    c.sock.sendall(PLACES[where])
    assert c.cmd(b".") == (554, NUL_REPLY)
    # the session goes on: the next message without NUL is taken
    assert c.cmd(b"MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<bob@{DOMAIN}>".encode())[0] == 250
    assert c.cmd(b"DATA")[0] == 354
    c.sock.sendall(b"Subject: clean\r\n\r\nclean\r\n")
    assert c.cmd(b".")[0] == 250
    c.close()
    stored = env.messages(f"bob@{DOMAIN}")
    assert len(stored) == 1 and b"\x00" not in stored[0] and b"Subject: clean" in stored[0]
    assert env.spool_files() == []


def test_bdat_with_nul_refused(env: SmtpEnv) -> None:
    c = begin(env)
    assert bdat(c, b"Subject: chunk\r\n\r\nfirst\x00")[0] == 250  # answered once, at LAST
    assert bdat(c, b"second\r\n", last=True) == (554, NUL_REPLY)
    assert c.cmd(b"NOOP")[0] == 250
    c.close()
    assert env.messages(f"bob@{DOMAIN}") == []
    assert env.spool_files() == []


def test_submission_with_nul_refused(env: SmtpEnv) -> None:
    import smtplib

    with env.submit_client() as s:
        with pytest.raises(smtplib.SMTPDataError) as info:
            s.sendmail(f"alice@{DOMAIN}", [f"bob@{DOMAIN}"], b"From: alice@example.org\r\n\r\n\x00")
        assert (info.value.smtp_code, info.value.smtp_error) == (
            554,
            b"5.6.0 Message contains NUL characters",
        )
    assert env.messages(f"bob@{DOMAIN}") == []


def test_binarymime_is_not_offered(env: SmtpEnv) -> None:
    c = begin(env)
    ehlo = c.cmd(b"EHLO c")[1]
    assert b"BINARYMIME" not in ehlo  # else NUL would be legal in a BODY=BINARYMIME message
    c.close()
