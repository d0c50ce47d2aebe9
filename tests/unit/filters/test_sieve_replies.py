"""Vacation replies from script text that holds line breaks (a hand-written or
ManageSieve script may): the reply is still made, with one-line header fields."""

from __future__ import annotations

import email.parser
import email.policy

import pytest

from appliance.filters.sieve_eval import VacationRequest
from appliance.filters.sieve_replies import vacation_reply

HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
    b"From: alice@example.org\r\nTo: bob@pillarbox.test\r\nSubject: hi\r\n\r\n"
)


@pytest.mark.parametrize(
    ("subject", "from_addr", "want_subject", "want_from"),
    [
        ("Away\r\nBcc: all@example.net", "", "Away Bcc: all@example.net", "bob@pillarbox.test"),
        (
            "Away\nuntil Monday",
            "Bob\r\n <bob@pillarbox.test>",
            "Away until Monday",
            "Bob <bob@pillarbox.test>",
        ),
        ("", "", "Auto: hi", "bob@pillarbox.test"),
    ],
)
def test_header_fields_stay_on_one_line(
    subject: str, from_addr: str, want_subject: str, want_from: str
) -> None:
    request = VacationRequest(reason="Gone.", subject=subject, from_addr=from_addr)
    raw = vacation_reply(request, HEADERS, "alice@example.org", "bob@pillarbox.test", "mx.test")
    reply = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert reply["Subject"] == want_subject
    assert reply["From"] == want_from
    assert reply["Bcc"] is None
