"""One validator: what accounts refuse to create, SMTP refuses at RCPT; what accounts
create (web form and CLI go through appliance.accounts), SMTP accepts."""

from __future__ import annotations

import pytest

from appliance.accounts import AccountError
from tests.addresses import ACCEPTED, REFUSED, REFUSED_BY_GRAMMAR
from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv


def test_refused_names_are_refused_at_rcpt(env: SmtpEnv) -> None:
    for local in REFUSED:
        with pytest.raises(AccountError, match="not allowed as a mailbox name"):
            env.accounts.add_alias(f"{local}@{DOMAIN}", f"alice@{DOMAIN}")
    with env.smtp() as s:
        s.ehlo("client.test")
        assert s.mail("sender@remote.test", ["SMTPUTF8"])[0] == 250
        for local in REFUSED:  # refused recipients do not count towards max_recipients
            code, _ = s.rcpt(f"<{local}@{DOMAIN}>")
            # RFC 5321 4.1.2 syntax: 553; quoted or relay syntax parses, names no mailbox: 550
            assert code == (553 if local in REFUSED_BY_GRAMMAR else 550), (local, code)


def test_created_names_are_accepted_at_rcpt(env: SmtpEnv) -> None:
    for local in ACCEPTED:
        env.accounts.add_alias(f"{local}@{DOMAIN}", f"alice@{DOMAIN}")
    with env.smtp() as s:
        s.ehlo("client.test")
        for local in ACCEPTED:  # one transaction each: max_recipients is 5 here
            s.rset()
            assert s.mail("sender@remote.test", ["SMTPUTF8"])[0] == 250
            assert s.rcpt(f"<{local}@{DOMAIN}>")[0] == 250, local
