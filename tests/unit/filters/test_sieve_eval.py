"""Sieve interpreter: every test, match type, comparator and action."""

from __future__ import annotations

import email.parser
import email.policy

import pytest

from appliance.filters.sieve_eval import SieveMessage, SieveOutcome, run_script
from appliance.filters.sieve_parse import parse

RAW = (
    b'From: "Alice Example" <Alice@Example.org>\r\n'
    b"To: bob@pillarbox.test, list-dev@lists.example.net\r\n"
    b"Cc: carol@pillarbox.test\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?= meeting about MONEY\r\n"
    b"X-Spam-Score: 7.5\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Please click =E2=9C=93 to unsubscribe\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>html only words</p>\r\n"
    b"--b1--\r\n"
)


def message(raw: bytes = RAW, mail_from: str = "alice@example.org") -> SieveMessage:
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    return SieveMessage(headers, raw, mail_from, "bob@pillarbox.test", len(raw))


EXTS = 'require ["fileinto", "envelope", "body", "imap4flags", "copy", "reject", "vacation"];\n'


def run(script: str, msg: SieveMessage | None = None) -> SieveOutcome:
    return run_script(parse(EXTS + script), msg or message())


def matches(test: str, msg: SieveMessage | None = None) -> bool:
    out = run(f'if {test} {{ fileinto "Hit"; }}', msg)
    return out.fileinto == (("Hit", frozenset()),)


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ('header :is "subject" "Café meeting about MONEY"', True),  # RFC 2047 decoded
        ('header :is "subject" "café meeting about money"', True),  # ascii-casemap
        ('header :is "subject" "CAFÉ meeting about money"', False),  # only ASCII folds
        ('header :contains "Subject" "money"', True),
        ('header :contains :comparator "i;octet" "Subject" "money"', False),
        ('header :contains :comparator "i;octet" "Subject" "MONEY"', True),
        ('header :matches "subject" "caf? *money"', True),
        ('header :matches "subject" "*meeting"', False),
        ('header :matches "x-spam-score" "7.?"', True),
        ('header :matches "subject" "\\\\*"', False),  # escaped star is literal
        ('header :contains ["x-nope", "cc"] ["zzz", "carol"]', True),
        ('address :is "from" "alice@example.org"', True),
        ('address :localpart :is "from" "alice"', True),
        ('address :domain :is "to" "lists.example.net"', True),
        ('address :all :is "to" "Bob@Pillarbox.test"', True),
        ('address :localpart :matches ["to", "cc"] "list-*"', True),
        ('address :is "from" "Alice Example"', False),  # display name is not the address
        ('envelope :is "from" "alice@example.org"', True),
        ('envelope :domain :is "to" "pillarbox.test"', True),
        ('envelope :localpart :is "to" "carol"', False),
        ('exists "x-spam-score"', True),
        ('exists ["from", "x-missing"]', False),
        ("size :over 100", True),
        ("size :over 100K", False),
        ("size :under 1M", True),
        ("true", True),
        ("false", False),
        ("not true", False),
        ('allof (true, exists "from")', True),
        ("allof (true, false)", False),
        ("anyof (false, size :under 1)", False),
        ("anyof (false, true)", True),
        ('body :contains "unsubscribe"', True),  # default :text, decoded QP
        ('body :contains "✓"', True),
        ('body :content "text/html" :contains "html only"', True),
        ('body :raw :contains "=E2=9C=93"', True),  # undecoded
        ('body :content "image" :contains "a"', False),
    ],
)
def test_tests(test: str, expected: bool) -> None:
    assert matches(test) is expected


def test_body_text_covers_all_text_parts() -> None:
    # RFC 5173 5.2: :text looks at every text/* part (html included).
    assert matches('body :text :contains "html only"')


def test_null_envelope_sender() -> None:
    msg = message(mail_from="")
    assert matches('envelope :is "from" ""', msg)
    assert not matches('envelope :domain :is "from" "example.org"', msg)


def test_implicit_keep_and_discard() -> None:
    assert run("").keep
    out = run("discard;")
    assert not out.keep and out.fileinto == ()


def test_fileinto_cancels_keep_unless_copy() -> None:
    out = run('fileinto "Lists";')
    assert not out.keep and out.fileinto == (("Lists", frozenset()),)
    out = run('fileinto :copy "Lists";')
    assert out.keep and out.fileinto == (("Lists", frozenset()),)


def test_redirect_and_copy() -> None:
    out = run('redirect "x@elsewhere.test";')
    assert out.redirects == ("x@elsewhere.test",) and not out.keep
    out = run('redirect :copy "x@elsewhere.test"; redirect :copy "x@elsewhere.test";')
    assert out.redirects == ("x@elsewhere.test",) and out.keep


def test_bad_redirect_address_is_runtime_error_keep() -> None:
    out = run('fileinto "A"; redirect "not an address";')
    assert out.error and out.keep and out.fileinto == ()


def test_stop_ends_the_script() -> None:
    out = run('fileinto :copy "A"; stop; fileinto "B";')
    assert out.fileinto == (("A", frozenset()),) and out.keep


def test_if_elsif_else_chain() -> None:
    script = (
        'if header :contains "subject" "nomatch" { fileinto "1"; }'
        ' elsif header :contains "subject" "money" { fileinto "2"; }'
        ' else { fileinto "3"; }'
    )
    assert run(script).fileinto == (("2", frozenset()),)
    script2 = 'if false { fileinto "1"; } elsif false { fileinto "2"; } else { fileinto "3"; }'
    assert run(script2).fileinto == (("3", frozenset()),)


def test_reject() -> None:
    out = run('reject "Go away";')
    assert out.reject == "Go away" and not out.keep
    # RFC 5429 2.1: reject with fileinto is an error -> plain keep.
    out = run('fileinto "X"; reject "no";')
    assert out.error and out.keep and out.reject is None


def test_vacation_arguments() -> None:
    out = run(
        'vacation :days 0 :subject "Away" :from "bob@pillarbox.test"'
        ' :addresses ["b@alias.test"] :handle "h" :mime "text";'
    )
    v = out.vacation
    assert v is not None and out.keep
    assert (v.days, v.subject, v.from_addr, v.addresses, v.handle, v.mime) == (
        1,  # raised to the minimum
        "Away",
        "bob@pillarbox.test",
        ("b@alias.test",),
        "h",
        True,
    )
    assert run('vacation "a"; vacation "b";').error  # twice is an error
    assert run('vacation "a"; reject "b";').error  # RFC 5230 4.7


def test_imap4flags() -> None:
    out = run('addflag "\\\\seen $Work"; addflag "\\\\Flagged"; removeflag "$work"; keep;')
    assert out.keep_flags == {"\\Seen", "\\Flagged"}
    out = run('setflag "\\\\Answered"; fileinto "A"; setflag "x"; fileinto :flags "y z" "B";')
    assert out.fileinto == (("A", frozenset({"\\Answered"})), ("B", frozenset({"y", "z"})))
    out = run('addflag ["a", "b"]; if hasflag :is "b" { fileinto "Hit"; }')
    assert out.fileinto == (("Hit", frozenset({"a", "b"})),)
    out = run('setflag "a"; if hasflag "b" { fileinto "Hit"; }')
    assert out.fileinto == () and out.keep_flags == {"a"}  # implicit keep takes the flags
    out = run('addflag "\\\\Seen"; keep :flags "\\\\Flagged";')
    assert out.keep_flags == {"\\Flagged"}


def test_too_many_redirects_is_an_error() -> None:
    script = " ".join(f'redirect :copy "u{i}@x.test";' for i in range(6))
    assert run(script).error
