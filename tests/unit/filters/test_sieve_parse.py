"""Sieve parser and checker: valid scripts parse, broken ones name line and column."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.filters.sieve_parse import SieveSyntaxError, StringList, Tag, parse

VALID = [
    "keep;",
    "",
    "# only a comment\n/* and a\nblock comment */\n",
    'require ["fileinto", "imap4flags", "copy"];\nfileinto :copy :flags "\\\\Seen" "Archive";',
    'if header :contains "subject" "money" { discard; stop; }',
    "if size :over 1M { discard; } elsif size :under 10K { keep; } else { keep; }",
    'if not exists ["From", "Date"] { discard; }',
    "if allof (true, not false, anyof (false, true)) { keep; }",
    'require "envelope";\nif envelope :domain :is "from" "example.org" { keep; }',
    'if address :localpart :matches ["to", "cc"] "list-*" { keep; }',
    'require ["body"];\nif body :content "text" :contains "unsubscribe" { discard; }',
    'require "vacation";\nvacation :days 3 :subject "Away" :from "me@x.test"'
    ' :addresses ["a@x.test"] :handle "h1" "Gone fishing";',
    'require "vacation";\nvacation text:\nLine one\n..dot line\n.\n;',
    'require "reject";\nreject "no thanks";',
    'require "imap4flags";\nif hasflag :contains "flagged" { keep; }\naddflag "\\\\Flagged";',
    'if header :comparator "i;octet" :is "X-A" "b" { redirect "c@d.test"; }',
]


@pytest.mark.parametrize("script", VALID)
def test_valid_scripts_parse(script: str) -> None:
    parse(script)


def test_arguments_are_structured() -> None:
    cmds = parse(
        'require ["fileinto", "copy"];\nfileinto :copy "a\\"b";\nif size :over 2K { stop; }'
    )
    assert [c.name for c in cmds] == ["require", "fileinto", "if"]
    assert cmds[1].tags == {"copy": None}
    assert cmds[1].positional == [StringList(('a"b',), single=True)]
    assert cmds[2].tests[0].positional == [2048]
    assert cmds[2].tests[0].args[0] == Tag("over")


def test_multiline_text_unstuffs_dots() -> None:
    cmds = parse('require "vacation";\nvacation text:\nhello\n..world\n.\n;')
    assert cmds[1].positional[0] == StringList(("hello\r\n.world\r\n",), single=True)


@pytest.mark.parametrize(
    ("script", "line", "column", "fragment"),
    [
        ("keep", 1, 5, "expected ';'"),
        ('fileinto "x";', 1, 1, 'needs require "fileinto"'),
        ('require "nosuch";', 1, 1, "unsupported extension"),
        ("keep;\nfrobnicate;", 2, 1, "unknown command"),
        ("if foo { keep; }", 1, 4, "unknown test"),
        ('if header "a" { keep; }', 1, 4, "header takes"),
        ("if true { keep; ", 1, 17, "expected '}'"),
        ("if true { keep; }\nelse { discard; }\nelse { keep; }", 3, 1, "else without if"),
        ('keep;\nrequire "fileinto";', 2, 1, "require must come before"),
        ("if size 10 { keep; }", 1, 4, "size needs :over or :under"),
        ('if header :is :contains "a" "b" { keep; }', 1, 4, "conflicts"),
        ('if header :comparator "i;nope" "a" "b" { keep; }', 1, 4, "unknown comparator"),
        ('keep "x";', 1, 1, "keep takes no arguments"),
        ("if true keep;", 1, 9, "expected '{' after if, found 'keep'"),
        ('redirect "a@b" ;\n"x";', 2, 1, "expected a command"),
        ('keep;\n  if header :contains "s" "unterminated { keep; }', 2, 27, "unterminated string"),
        ("/* never closed", 1, 1, "unterminated /* comment"),
        ('require "fileinto";\nfileinto :copy "x";', 2, 1, ':copy needs require "copy"'),
        ("if not (true, false) { keep; }", 1, 4, "not takes exactly one test"),
        ("stop { keep; }", 1, 1, "takes no block"),
        ("if true;", 1, 1, "needs a { block }"),
    ],
)
def test_errors_point_at_the_problem(script: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(SieveSyntaxError) as info:
        parse(script)
    err = info.value
    assert fragment in err.message, err.message
    assert (err.line, err.column) == (line, column), str(err)


def test_oversized_script_refused() -> None:
    with pytest.raises(SieveSyntaxError, match="too large"):
        parse("keep;\n" * 20000)


@given(
    st.text(alphabet=st.sampled_from(list('keepif{}()[];,:" \n#*/\\allofnotrue12KM')), max_size=80)
)
@settings(max_examples=300, deadline=None)
def test_fuzz_only_syntax_errors(text: str) -> None:
    """Arbitrary input either parses or raises SieveSyntaxError with a sane position."""
    try:
        parse(text)
    except SieveSyntaxError as exc:
        assert exc.line >= 1 and exc.column >= 1
        assert exc.line <= text.count("\n") + 1


@given(st.text(max_size=60))
@settings(max_examples=200, deadline=None)
def test_fuzz_any_unicode(text: str) -> None:
    with contextlib.suppress(SieveSyntaxError):
        parse(text)
