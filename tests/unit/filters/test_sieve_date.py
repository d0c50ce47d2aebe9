"""Sieve relational (RFC 5231) and date (RFC 5260) extensions: parse and run, table-driven."""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy

import pytest

from appliance.filters.sieve_eval import SieveMessage, run_script
from appliance.filters.sieve_parse import SieveSyntaxError, parse

RAW = (
    b"From: alice@example.org\r\n"
    b"To: bob@pillarbox.test, carol@pillarbox.test\r\n"
    b"Subject: budget\r\n"
    b"X-Priority: 12\r\n"
    b"Date: Tue, 01 Dec 2026 23:30:00 -0500\r\n"
    b"Received: from a by b; Wed, 02 Dec 2026 04:31:00 +0000\r\n"
    b"\r\n"
    b"body\r\n"
)
EXTS = 'require ["fileinto", "relational", "date", "comparator-i;ascii-numeric"];\n'
# Thursday 3 December 2026, 16:05:09 in UTC+01:00
NOW = dt.datetime(2026, 12, 3, 16, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def matches(test: str) -> bool:
    head = RAW.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    msg = SieveMessage(headers, RAW, "alice@example.org", "bob@pillarbox.test", len(RAW))
    script = parse(f'{EXTS}if {test} {{ fileinto "Hit"; }}')
    return run_script(script, msg, now=NOW).fileinto == (("Hit", frozenset()),)


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ('currentdate :is "date" "2026-12-03"', True),
        ('currentdate :value "ge" "date" "2026-12-03"', True),
        ('currentdate :value "ge" "date" "2026-12-04"', False),
        ('currentdate :value "le" "date" "2026-12-24"', True),
        ('currentdate :value "lt" "date" "2026-12-03"', False),
        ('currentdate :value "ne" "date" "2026-12-03"', False),
        ('currentdate :is "year" "2026"', True),
        ('currentdate :is "month" "12"', True),
        ('currentdate :is "day" "03"', True),
        ('currentdate :is "hour" "16"', True),
        ('currentdate :is "minute" "05"', True),
        ('currentdate :is "second" "09"', True),
        ('currentdate :is "time" "16:05:09"', True),
        ('currentdate :is "zone" "+0100"', True),
        ('currentdate :is "weekday" "4"', True),  # 0 is Sunday
        ('currentdate :is "julian" "61377"', True),  # Modified Julian Day
        ('currentdate :is "iso8601" "2026-12-03T16:05:09+01:00"', True),
        ('currentdate :is "std11" "Thu, 03 Dec 2026 16:05:09 +0100"', True),
        ('currentdate :zone "+0000" :is "hour" "15"', True),
        ('currentdate :zone "-1000" :is "date" "2026-12-03"', True),
        ('currentdate :zone "+1000" :is "date" "2026-12-04"', True),
        ('currentdate :matches "date" "2026-*"', True),
        # the Date field, converted to the box's zone unless :originalzone
        ('date :is "date" "date" "2026-12-02"', True),
        ('date :originalzone "date" "date" "2026-12-01"', True),
        ('date :originalzone "date" "zone" "-0500"', True),
        ('date :zone "+0000" "date" "hour" "04"', True),
        ('date :is "received" "date" "2026-12-02"', True),  # after the last ";"
        ('date :is "x-none" "date" "2026-12-02"', False),  # absent field: false
        ('date :is "subject" "date" "2026-12-02"', False),  # no date in it: false
        # relational on other tests
        ('header :value "gt" "subject" "aardvark"', True),
        ('header :value "gt" "subject" "zebra"', False),
        ('header :value "gt" :comparator "i;ascii-numeric" "x-priority" "9"', True),
        ('header :value "gt" "x-priority" "9"', False),  # casemap: "12" < "9"
        ('header :count "eq" :comparator "i;ascii-numeric" "to" "1"', True),  # one field
        ('address :count "eq" :comparator "i;ascii-numeric" "to" "2"', True),
        ('address :count "ge" :comparator "i;ascii-numeric" "to" "3"', False),
        ('header :is :comparator "i;ascii-numeric" "x-priority" "012"', True),
    ],
)
def test_relational_and_date(test: str, expected: bool) -> None:
    assert matches(test) is expected


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ('if currentdate "date" "2026-12-03" { stop; }', 'needs require "date"'),
        ('require "date"; if currentdate :value "ge" "date" "x" { stop; }', "relational"),
        (
            'require ["date", "relational"]; if currentdate :value "gg" "date" "x" { stop; }',
            "operator",
        ),
        ('require "date"; if currentdate "weeks" "1" { stop; }', "date-part"),
        ('require "date"; if currentdate :zone "UTC" "date" "1" { stop; }', ":zone"),
        (
            'require "date"; if date :zone "+0000" :originalzone "date" "date" "1" { stop; }',
            "conflicts",
        ),
        ('require "relational"; if header :value "gt" :contains "a" "b" { stop; }', "conflicts"),
        ('if header :comparator "i;ascii-numeric" "a" "1" { stop; }', "comparator-i;ascii-numeric"),
        (
            'require "comparator-i;ascii-numeric";'
            ' if header :contains :comparator "i;ascii-numeric" "a" "1" { stop; }',
            "cannot be used",
        ),
    ],
)
def test_checker_refuses(script: str, problem: str) -> None:
    with pytest.raises(SieveSyntaxError, match=problem):
        parse(script)
