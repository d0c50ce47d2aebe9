"""Sieve (RFC 5228) lexer, parser and checker.

``parse(text)`` returns a list of :class:`Command` or raises :class:`SieveSyntaxError`
with a line and column the web UI editor can point at. The checker knows the
arguments of every supported command and test and that extensions are ``require``d.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SUPPORTED_EXTENSIONS = frozenset(
    {
        "fileinto",
        "reject",
        "envelope",
        "vacation",
        "body",
        "imap4flags",
        "copy",
        "relational",
        "date",
        "comparator-i;octet",
        "comparator-i;ascii-casemap",
        "comparator-i;ascii-numeric",
    }
)
MAX_SCRIPT_BYTES = 64 * 1024
MAX_NESTING = 32


class SieveSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Tag:
    name: str  # without the colon, lower case


@dataclass(frozen=True)
class StringList:
    values: tuple[str, ...]
    single: bool = False  # written as one string, not a [list]


Argument = Tag | int | StringList


@dataclass
class Test:
    name: str
    args: list[Argument]
    tests: list[Test]
    line: int
    column: int
    tags: dict[str, Argument | None] = field(default_factory=dict)  # filled by the checker
    positional: list[Argument] = field(default_factory=list)


@dataclass
class Command:
    name: str
    args: list[Argument]
    tests: list[Test]
    block: list[Command] | None
    line: int
    column: int
    tags: dict[str, Argument | None] = field(default_factory=dict)
    positional: list[Argument] = field(default_factory=list)


# ------------------------------------------------------------------ lexer


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, tag, number, string, punct, eof
    value: str | int
    line: int
    column: int


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<hash>\#[^\n]*)
  | (?P<bracket>/\*)
  | (?P<multi>text:[ \t]*(?:\#[^\n]*)?\r?\n)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9]+[KkMmGg]?)
  | (?P<quote>")
  | (?P<punct>[\[\](),;{}])
    """,
    re.VERBOSE,
)
_QUANTIFIERS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        col = pos - line_start + 1
        m = _TOKEN.match(text, pos)
        if not m:
            raise SieveSyntaxError(f"unexpected character {text[pos]!r}", line, col)
        kind = m.lastgroup or ""
        end = m.end()
        if kind == "bracket":
            close = text.find("*/", end)
            if close < 0:
                raise SieveSyntaxError("unterminated /* comment", line, col)
            end = close + 2
        elif kind == "quote":
            chars: list[str] = []
            i = end
            while True:
                if i >= len(text):
                    raise SieveSyntaxError("unterminated string", line, col)
                c = text[i]
                if c == "\\" and i + 1 < len(text):
                    chars.append(text[i + 1])  # RFC 5228 2.4.2: \x is x
                    i += 2
                    continue
                if c == '"':
                    break
                chars.append(c)
                i += 1
            end = i + 1
            value = "".join(chars).replace("\r\n", "\n").replace("\n", "\r\n")
            out.append(_Token("string", value, line, col))
        elif kind == "multi":
            # RFC 5228 2.4.2: text: ... lines ... "." CRLF; a leading ".." is "."
            lines: list[str] = []
            i = end
            while True:
                nl = text.find("\n", i)
                if nl < 0:
                    raise SieveSyntaxError("unterminated text: block", line, col)
                body_line = text[i:nl].rstrip("\r")
                i = nl + 1
                if body_line == ".":
                    break
                lines.append(body_line[1:] if body_line.startswith("..") else body_line)
            end = i
            out.append(_Token("string", "".join(ln + "\r\n" for ln in lines), line, col))
        elif kind == "ident":
            out.append(_Token("ident", m.group(0).lower(), line, col))
        elif kind == "tag":
            out.append(_Token("tag", m.group(0)[1:].lower(), line, col))
        elif kind == "number":
            raw = m.group(0)
            mult = _QUANTIFIERS.get(raw[-1].lower(), 1)
            number = int(raw[:-1] if mult > 1 else raw) * mult
            out.append(_Token("number", number, line, col))
        elif kind == "punct":
            out.append(_Token("punct", m.group(0), line, col))
        segment = text[pos:end]
        newlines = segment.count("\n")
        if newlines:
            line += newlines
            line_start = pos + segment.rfind("\n") + 1
        pos = end
    out.append(_Token("eof", "", line, pos - line_start + 1))
    return out


# ------------------------------------------------------------------ parser


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: _Token | None = None) -> SieveSyntaxError:
        tok = tok or self.peek()
        return SieveSyntaxError(message, tok.line, tok.column)

    def expect(self, punct: str) -> None:
        tok = self.take()
        if tok.kind != "punct" or tok.value != punct:
            found = "end of script" if tok.kind == "eof" else repr(tok.value)
            raise self.error(f"expected {punct!r}, found {found}", tok)

    def is_punct(self, punct: str) -> bool:
        tok = self.peek()
        return tok.kind == "punct" and tok.value == punct

    def commands(self, depth: int) -> list[Command]:
        if depth > MAX_NESTING:
            raise self.error("blocks nested too deeply")
        out: list[Command] = []
        while self.peek().kind == "ident":
            out.append(self.command(depth))
        return out

    def command(self, depth: int) -> Command:
        tok = self.take()
        args = self.arguments()
        tests: list[Test] = []
        if self.is_punct("("):
            tests = self.test_list(depth)
        elif self.peek().kind == "ident":
            tests = [self.test(depth)]
        block: list[Command] | None = None
        if self.is_punct("{"):
            self.take()
            block = self.commands(depth + 1)
            self.expect("}")
        else:
            nxt = self.peek()
            if tok.value in ("if", "elsif", "else") and not (
                nxt.kind == "punct" and nxt.value == ";"
            ):
                found = "end of script" if nxt.kind == "eof" else repr(nxt.value)
                raise self.error(f"expected '{{' after {tok.value}, found {found}", nxt)
            if not (nxt.kind == "punct" and nxt.value == ";"):
                found = "end of script" if nxt.kind == "eof" else repr(nxt.value)
                raise self.error(f"expected ';' after {tok.value}, found {found}", nxt)
            self.take()
        return Command(str(tok.value), args, tests, block, tok.line, tok.column)

    def arguments(self) -> list[Argument]:
        args: list[Argument] = []
        while True:
            tok = self.peek()
            if tok.kind == "tag":
                self.take()
                args.append(Tag(str(tok.value)))
            elif tok.kind == "number":
                self.take()
                args.append(int(tok.value))
            elif tok.kind == "string":
                self.take()
                args.append(StringList((str(tok.value),), single=True))
            elif self.is_punct("["):
                args.append(self.string_list())
            else:
                return args

    def string_list(self) -> StringList:
        self.take()
        values: list[str] = []
        while True:
            tok = self.take()
            if tok.kind != "string":
                raise self.error("expected a string in the list", tok)
            values.append(str(tok.value))
            if self.is_punct(","):
                self.take()
                continue
            self.expect("]")
            return StringList(tuple(values))

    def test_list(self, depth: int) -> list[Test]:
        self.expect("(")
        tests = [self.test(depth + 1)]
        while self.is_punct(","):
            self.take()
            tests.append(self.test(depth + 1))
        self.expect(")")
        return tests

    def test(self, depth: int) -> Test:
        if depth > MAX_NESTING:
            raise self.error("tests nested too deeply")
        tok = self.take()
        if tok.kind != "ident":
            raise self.error("expected a test", tok)
        args = self.arguments()
        tests: list[Test] = []
        if self.is_punct("("):
            tests = self.test_list(depth)
        elif tok.value == "not" and self.peek().kind == "ident":
            tests = [self.test(depth + 1)]
        return Test(str(tok.value), args, tests, tok.line, tok.column)


# ------------------------------------------------------------------ checker

MATCH_TYPES = {"is", "contains", "matches"}
RELATIONAL = {"value", "count"}  # RFC 5231 match types taking a relational operator
RELATIONAL_OPS = {"gt", "ge", "lt", "le", "eq", "ne"}  # RFC 5231 5
COMPARATORS = {"i;octet", "i;ascii-casemap", "i;ascii-numeric"}
DATE_PARTS = {
    "year",
    "month",
    "day",
    "date",
    "julian",
    "hour",
    "minute",
    "second",
    "time",
    "iso8601",
    "std11",
    "zone",
    "weekday",
}  # RFC 5260 4.2
_ZONE_RE = re.compile(r"^[+-]\d{4}$")
ADDRESS_PARTS = {"all", "localpart", "domain"}
BODY_TRANSFORMS = {"raw", "text", "content"}

# name -> (tags taking a value, flag tags, positional kinds, extension needed)
# kinds: "s" string, "l" string list, "n" number
_TESTS: dict[str, tuple[set[str], set[str], str, str | None]] = {
    "address": ({"comparator"} | RELATIONAL, MATCH_TYPES | ADDRESS_PARTS, "ll", None),
    "envelope": ({"comparator"} | RELATIONAL, MATCH_TYPES | ADDRESS_PARTS, "ll", "envelope"),
    "header": ({"comparator"} | RELATIONAL, MATCH_TYPES, "ll", None),
    "exists": (set(), set(), "l", None),
    "size": (set(), {"over", "under"}, "n", None),
    "true": (set(), set(), "", None),
    "false": (set(), set(), "", None),
    "not": (set(), set(), "", None),
    "allof": (set(), set(), "", None),
    "anyof": (set(), set(), "", None),
    "body": ({"comparator", "content"}, MATCH_TYPES | {"raw", "text"}, "l", "body"),
    "hasflag": ({"comparator"} | RELATIONAL, MATCH_TYPES, "l", "imap4flags"),
    # RFC 5260 5: date tests (the match types of RFC 5231 apply to them too)
    "date": ({"comparator", "zone"} | RELATIONAL, MATCH_TYPES | {"originalzone"}, "ssl", "date"),
    "currentdate": ({"comparator", "zone"} | RELATIONAL, MATCH_TYPES, "sl", "date"),
}
_COMMANDS: dict[str, tuple[set[str], set[str], str, str | None]] = {
    "require": (set(), set(), "l", None),
    "if": (set(), set(), "", None),
    "elsif": (set(), set(), "", None),
    "else": (set(), set(), "", None),
    "stop": (set(), set(), "", None),
    "keep": ({"flags"}, set(), "", None),
    "discard": (set(), set(), "", None),
    "redirect": (set(), {"copy"}, "s", None),
    "fileinto": ({"flags"}, {"copy"}, "s", "fileinto"),
    "reject": (set(), set(), "s", "reject"),
    "vacation": (
        {"days", "subject", "from", "addresses", "handle"},
        {"mime"},
        "s",
        "vacation",
    ),
    "setflag": (set(), set(), "l", "imap4flags"),
    "addflag": (set(), set(), "l", "imap4flags"),
    "removeflag": (set(), set(), "l", "imap4flags"),
}
_TAG_EXT = {"copy": "copy", "flags": "imap4flags", "value": "relational", "count": "relational"}
_TAG_KIND = {
    "comparator": "s",
    "content": "l",
    "flags": "l",
    "days": "n",
    "subject": "s",
    "from": "s",
    "addresses": "l",
    "handle": "s",
    "value": "s",
    "count": "s",
    "zone": "s",
}


def _kind_ok(arg: Argument, kind: str) -> bool:
    if kind == "n":
        return isinstance(arg, int)
    if kind == "s":
        return isinstance(arg, StringList) and len(arg.values) == 1
    return isinstance(arg, StringList)


_KIND_NAME = {"n": "a number", "s": "a string", "l": "a string or a string list"}


def _check_args(
    node: Command | Test, spec: tuple[set[str], set[str], str, str | None], required: set[str]
) -> None:
    valued, flags, kinds, ext = spec
    if ext and ext not in required:
        raise SieveSyntaxError(
            f'{node.name} needs require "{ext}"', node.line, node.column
        )  # RFC 5228 3.2: extensions must be required before use
    i = 0
    groups: dict[str, str] = {}
    while i < len(node.args):
        arg = node.args[i]
        if not isinstance(arg, Tag):
            node.positional.append(arg)
            i += 1
            continue
        if node.positional:
            raise SieveSyntaxError(
                f":{arg.name} must come before the other arguments", node.line, node.column
            )
        if arg.name in _TAG_EXT and _TAG_EXT[arg.name] not in required:
            raise SieveSyntaxError(
                f':{arg.name} needs require "{_TAG_EXT[arg.name]}"', node.line, node.column
            )
        if arg.name in node.tags:
            raise SieveSyntaxError(f":{arg.name} given twice", node.line, node.column)
        for group in (
            MATCH_TYPES | RELATIONAL,
            ADDRESS_PARTS,
            {"over", "under"},
            {"raw", "text", "content"},
            {"zone", "originalzone"},
        ):
            if arg.name in group:
                key = str(sorted(group))
                if key in groups:
                    raise SieveSyntaxError(
                        f":{arg.name} conflicts with :{groups[key]}", node.line, node.column
                    )
                groups[key] = arg.name
        if arg.name in valued:
            if i + 1 >= len(node.args) or not _kind_ok(node.args[i + 1], _TAG_KIND[arg.name]):
                raise SieveSyntaxError(
                    f":{arg.name} needs {_KIND_NAME[_TAG_KIND[arg.name]]}", node.line, node.column
                )
            node.tags[arg.name] = node.args[i + 1]
            i += 2
        elif arg.name in flags:
            node.tags[arg.name] = None
            i += 1
        else:
            raise SieveSyntaxError(f"{node.name} has no :{arg.name}", node.line, node.column)
    if len(node.positional) != len(kinds) or not all(
        _kind_ok(a, k) for a, k in zip(node.positional, kinds, strict=False)
    ):
        wanted = ", ".join(_KIND_NAME[k] for k in kinds) or "no arguments"
        raise SieveSyntaxError(f"{node.name} takes {wanted}", node.line, node.column)
    comparator = node.tags.get("comparator")
    if isinstance(comparator, StringList):
        name = comparator.values[0].lower()
        if name not in COMPARATORS:
            raise SieveSyntaxError(f"unknown comparator {name!r}", node.line, node.column)
        if name == "i;ascii-numeric" and f"comparator-{name}" not in required:
            # RFC 5228 2.7.3: comparators other than i;octet and i;ascii-casemap are required.
            raise SieveSyntaxError(
                f'comparator {name!r} needs require "comparator-{name}"', node.line, node.column
            )
        if name == "i;ascii-numeric" and {"contains", "matches"} & set(node.tags):
            # RFC 4790 9.1: i;ascii-numeric has no substring or wildcard match.
            raise SieveSyntaxError(
                f"{name} cannot be used with :contains or :matches", node.line, node.column
            )
    _check_relational(node)
    if node.name == "size" and not ({"over", "under"} & set(node.tags)):
        raise SieveSyntaxError("size needs :over or :under", node.line, node.column)


def _check_relational(node: Command | Test) -> None:
    for name in RELATIONAL:
        op = node.tags.get(name)
        if isinstance(op, StringList) and op.values[0].lower() not in RELATIONAL_OPS:
            # RFC 5231 5: the relational operator is one of gt, ge, lt, le, eq, ne.
            raise SieveSyntaxError(
                f"unknown relational operator {op.values[0]!r}", node.line, node.column
            )
    zone = node.tags.get("zone")
    if isinstance(zone, StringList) and not _ZONE_RE.match(zone.values[0]):
        # RFC 5260 4.1: the zone is "+" or "-" and four digits.
        raise SieveSyntaxError(f"bad :zone {zone.values[0]!r}", node.line, node.column)
    if node.name in ("date", "currentdate"):
        part = node.positional[-2]
        if isinstance(part, StringList) and part.values[0].lower() not in DATE_PARTS:
            # RFC 5260 4.2: the date-part names.
            raise SieveSyntaxError(f"unknown date-part {part.values[0]!r}", node.line, node.column)


def _check_test(test: Test, required: set[str]) -> None:
    spec = _TESTS.get(test.name)
    if spec is None:
        raise SieveSyntaxError(f"unknown test {test.name!r}", test.line, test.column)
    _check_args(test, spec, required)
    if test.name == "not" and len(test.tests) != 1:
        raise SieveSyntaxError("not takes exactly one test", test.line, test.column)
    if test.name in ("allof", "anyof") and not test.tests:
        raise SieveSyntaxError(f"{test.name} needs a test list", test.line, test.column)
    if test.name not in ("not", "allof", "anyof") and test.tests:
        raise SieveSyntaxError(f"{test.name} takes no nested test", test.line, test.column)
    for sub in test.tests:
        _check_test(sub, required)


def _check_block(commands: list[Command], required: set[str], top: bool) -> None:
    previous = ""
    allow_require = top
    for cmd in commands:
        spec = _COMMANDS.get(cmd.name)
        if spec is None:
            raise SieveSyntaxError(f"unknown command {cmd.name!r}", cmd.line, cmd.column)
        if cmd.name == "require":
            # RFC 5228 3.2: require only at the start of the script.
            if not allow_require:
                raise SieveSyntaxError(
                    "require must come before other commands", cmd.line, cmd.column
                )
            _check_args(cmd, spec, required)
            for ext in (
                cmd.positional[0].values if isinstance(cmd.positional[0], StringList) else ()
            ):
                if ext.lower() not in SUPPORTED_EXTENSIONS:
                    raise SieveSyntaxError(f"unsupported extension {ext!r}", cmd.line, cmd.column)
                required.add(ext.lower())
            continue
        allow_require = False
        _check_args(cmd, spec, required)
        control = cmd.name in ("if", "elsif", "else")
        if cmd.name in ("elsif", "else") and previous not in ("if", "elsif"):
            raise SieveSyntaxError(f"{cmd.name} without if", cmd.line, cmd.column)
        if control and cmd.block is None:
            raise SieveSyntaxError(f"{cmd.name} needs a {{ block }}", cmd.line, cmd.column)
        if not control and cmd.block is not None:
            raise SieveSyntaxError(f"{cmd.name} takes no block", cmd.line, cmd.column)
        if cmd.name in ("if", "elsif") and len(cmd.tests) != 1:
            raise SieveSyntaxError(f"{cmd.name} needs exactly one test", cmd.line, cmd.column)
        if cmd.name not in ("if", "elsif") and cmd.tests:
            raise SieveSyntaxError(f"{cmd.name} takes no test", cmd.line, cmd.column)
        for test in cmd.tests:
            _check_test(test, required)
        if cmd.block is not None:
            _check_block(cmd.block, required, top=False)
        previous = cmd.name


def parse(text: str) -> list[Command]:
    """Parse and check a script; raises SieveSyntaxError(message, line, column)."""
    if len(text.encode("utf-8")) > MAX_SCRIPT_BYTES:
        raise SieveSyntaxError("script is too large", 1, 1)
    parser = _Parser(_tokens(text))
    commands = parser.commands(0)
    tok = parser.peek()
    if tok.kind != "eof":
        raise parser.error(f"expected a command, found {tok.value!r}")
    _check_block(commands, set(), top=True)
    return commands
