"""Sieve (RFC 5228) interpreter: tests, match types, comparators and actions.

Runs a parsed script against one message for one recipient and returns a
:class:`SieveOutcome` (where the copy goes, with which flags, what to send). Sending
and storing happen elsewhere (appliance.filters.sieve_filter); this module is pure.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.utils
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import Message

from appliance.filters.sieve_date import date_part, header_date, zone_of
from appliance.filters.sieve_parse import Argument, Command, StringList, Test

MAX_REDIRECTS = 5  # RFC 5228 4.2: implementations may limit redirects per script
MAX_ACTIONS = 64
SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}


class SieveRuntimeError(Exception):
    """RFC 5228 2.10.6: a run-time error cancels all actions and keeps the message."""


@dataclass(frozen=True)
class VacationRequest:
    reason: str
    days: int = 7
    subject: str = ""
    from_addr: str = ""
    addresses: tuple[str, ...] = ()
    handle: str = ""
    mime: bool = False


@dataclass(frozen=True)
class SieveOutcome:
    keep: bool = True  # implicit or explicit keep: file into the default mailbox
    keep_flags: frozenset[str] = frozenset()
    fileinto: tuple[tuple[str, frozenset[str]], ...] = ()  # (mailbox, flags)
    redirects: tuple[str, ...] = ()
    reject: str | None = None
    vacation: VacationRequest | None = None
    error: str = ""  # run-time error text (the outcome is then a plain keep)


@dataclass(frozen=True)
class SieveMessage:
    headers: Message  # header fields of the message (compat32 parse)
    raw: bytes  # whole message
    mail_from: str  # envelope sender, "" for the null sender
    rcpt_to: str  # envelope recipient of this copy
    size: int


# ------------------------------------------------------------------ matching


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _glob(pattern: str) -> re.Pattern[str]:
    # RFC 5228 2.7.1: * any sequence, ? one character, \ escapes the next character.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


_RELATIONS = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
}


def _numeric(text: str) -> float:
    # RFC 4790 9.1.1: the leading digits as a number; no leading digit is positive infinity.
    digits = re.match(r"\d*", text)
    return float(int(digits.group())) if digits and digits.group() else float("inf")


@dataclass(frozen=True)
class Matcher:
    match_type: str = "is"
    comparator: str = "i;ascii-casemap"
    relation: str = ""  # RFC 5231: the operator of :value / :count

    @classmethod
    def of(cls, node: Test) -> Matcher:
        match_type, relation = "is", ""
        for name in ("is", "contains", "matches"):
            if name in node.tags:
                match_type = name
        for name in ("value", "count"):
            op = node.tags.get(name)
            if isinstance(op, StringList):
                match_type, relation = name, op.values[0].lower()
        comp = node.tags.get("comparator")
        comparator = comp.values[0].lower() if isinstance(comp, StringList) else "i;ascii-casemap"
        return cls(match_type, comparator, relation)

    def _order(self, value: str, key: str) -> bool:
        compare = _RELATIONS[self.relation]
        if self.comparator == "i;ascii-numeric":
            return bool(compare(_numeric(value), _numeric(key)))
        if self.comparator == "i;ascii-casemap":
            value, key = _ascii_lower(value), _ascii_lower(key)
        # RFC 4790 9.3 / 9.2: octet order (of the case-mapped strings).
        return bool(compare(value.encode("utf-8"), key.encode("utf-8")))

    def match(self, value: str, key: str) -> bool:
        if self.match_type == "value":
            return self._order(value, key)  # RFC 5231 4.1: value OP key
        if self.comparator == "i;ascii-numeric":
            return _numeric(value) == _numeric(key)  # RFC 4790 9.1: equality only
        if self.comparator == "i;ascii-casemap":
            # RFC 4790 9.2: ASCII letters compare case-insensitively.
            value, key = _ascii_lower(value), _ascii_lower(key)
        if self.match_type == "is":
            return value == key
        if self.match_type == "contains":
            return key in value
        return _glob(key).fullmatch(value) is not None

    def any(self, values: Iterable[str], keys: Sequence[str]) -> bool:
        if self.match_type == "count":
            # RFC 5231 4.2: the number of values, compared with each key.
            count = str(sum(1 for v in values if v != ""))
            return any(self._order(count, k) for k in keys)
        return any(self.match(v, k) for v in values for k in keys)


# ------------------------------------------------------------------ message access


def decode_header(value: str) -> str:
    """Unfold and decode RFC 2047 encoded-words (RFC 5228 2.7.2)."""
    value = re.sub(r"\r?\n[ \t]", " ", value)
    if any("\udc80" <= c <= "\udcff" for c in value):
        # RFC 6532: raw UTF-8 in header fields (parsed with surrogateescape).
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(value))).strip()
    except (ValueError, LookupError, UnicodeError):
        return value.strip()


def raw_headers(headers: Message, name: str) -> list[str]:
    """The raw values of field ``name`` (RFC 6532 UTF-8 kept as surrogate escapes)."""
    wanted = name.lower()
    return [str(v) for k, v in headers.raw_items() if k.lower() == wanted]


def header(headers: Message, name: str, default: str = "") -> str:
    """The decoded value of the first field ``name``."""
    values = raw_headers(headers, name)
    return decode_header(values[0]) if values else default


def _header_values(msg: SieveMessage, names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        out.extend(decode_header(v) for v in raw_headers(msg.headers, name))
    return out


def _address_part(address: str, part: str) -> str:
    if part == "all":
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        return address if part == "localpart" else ""
    return local if part == "localpart" else domain


def _part(node: Test) -> str:
    for name in ("localpart", "domain", "all"):
        if name in node.tags:
            return name
    return "all"


def _body_text(msg: SieveMessage, transform: str, types: Sequence[str]) -> list[str]:
    _, sep, body = msg.raw.partition(b"\r\n\r\n")
    if not sep:
        _, sep, body = msg.raw.partition(b"\n\n")
    if transform == "raw":
        return [body.decode("utf-8", "replace")]  # RFC 5173 5.1: undecoded body
    parsed = email.message_from_bytes(msg.raw)
    wanted = types if transform == "content" else ("text",)
    texts: list[str] = []
    for part in parsed.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type().lower()
        main = ctype.split("/", 1)[0]
        # RFC 5173 5.2: "" matches every type, "text" a main type, "text/plain" exactly.
        if not any(t == "" or t.lower() in (ctype, main) for t in wanted):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "us-ascii"
            try:
                texts.append(payload.decode(charset, "replace"))
            except LookupError:
                texts.append(payload.decode("utf-8", "replace"))
    return texts


def _strings(arg: Argument | None) -> tuple[str, ...]:
    return arg.values if isinstance(arg, StringList) else ()


def split_flags(values: Iterable[str]) -> set[str]:
    """RFC 5232 3: each string is a space-separated list of flags."""
    out: set[str] = set()
    for value in values:
        for flag in value.split():
            out.add(SYSTEM_FLAGS.get(flag.lower(), flag))
    return out


# ------------------------------------------------------------------ interpreter


class _Stop(Exception):
    pass


@dataclass
class _State:
    implicit_keep: bool = True
    explicit_keep: bool = False
    keep_flags: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)  # RFC 5232 internal variable
    fileinto: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    reject: str | None = None
    vacation: VacationRequest | None = None
    actions: int = 0


class Interpreter:
    def __init__(
        self, script: list[Command], msg: SieveMessage, now: dt.datetime | None = None
    ) -> None:
        self.script = script
        self.msg = msg
        self.state = _State()
        # RFC 5260 5: currentdate is the time the script runs, in the box's local zone.
        self.now = now if now is not None else dt.datetime.now().astimezone()

    def run(self) -> SieveOutcome:
        try:
            self._block(self.script)
        except _Stop:
            pass
        except SieveRuntimeError as exc:
            return SieveOutcome(error=str(exc))  # RFC 5228 2.10.6: implicit keep only
        s = self.state
        # RFC 5429 2.1: reject cannot be combined with keep, fileinto or redirect.
        if s.reject is not None and (s.explicit_keep or s.fileinto or s.redirects):
            return SieveOutcome(error="reject together with keep, fileinto or redirect")
        if s.reject is not None and s.vacation is not None:
            return SieveOutcome(error="reject together with vacation")  # RFC 5230 4.7
        keep_flags = s.keep_flags if s.explicit_keep else s.flags
        return SieveOutcome(
            keep=s.implicit_keep or s.explicit_keep,
            keep_flags=frozenset(keep_flags),
            fileinto=tuple(s.fileinto),
            redirects=tuple(s.redirects),
            reject=s.reject,
            vacation=s.vacation,
        )

    # ---------------------------------------------------------------- commands
    def _block(self, commands: list[Command]) -> None:
        matched_chain = False
        for cmd in commands:
            if cmd.name == "require":
                continue
            if cmd.name == "if":
                matched_chain = self._test(cmd.tests[0])
                if matched_chain:
                    self._block(cmd.block or [])
                continue
            if cmd.name == "elsif":
                if not matched_chain:
                    matched_chain = self._test(cmd.tests[0])
                    if matched_chain:
                        self._block(cmd.block or [])
                continue
            if cmd.name == "else":
                if not matched_chain:
                    self._block(cmd.block or [])
                matched_chain = True
                continue
            self._action(cmd)

    def _count(self) -> None:
        self.state.actions += 1
        if self.state.actions > MAX_ACTIONS:
            raise SieveRuntimeError("too many actions")

    def _action(self, cmd: Command) -> None:
        s = self.state
        name = cmd.name
        if name == "stop":
            raise _Stop
        self._count()
        if name == "keep":
            s.explicit_keep = True
            flags = cmd.tags.get("flags")
            s.keep_flags |= split_flags(_strings(flags)) if flags is not None else set(s.flags)
        elif name == "discard":
            s.implicit_keep = False  # RFC 5228 4.4: cancels the implicit keep
        elif name == "fileinto":
            mailbox = _strings(cmd.positional[0])[0]
            flags = cmd.tags.get("flags")
            chosen = split_flags(_strings(flags)) if flags is not None else set(s.flags)
            if all(m != mailbox for m, _ in s.fileinto):
                s.fileinto.append((mailbox, frozenset(chosen)))
            if "copy" not in cmd.tags:
                s.implicit_keep = False  # RFC 3894 3: :copy keeps the implicit keep
        elif name == "redirect":
            address = _strings(cmd.positional[0])[0].strip()
            if "@" not in address or any(c in address for c in " <>\r\n,"):
                raise SieveRuntimeError(f"invalid redirect address {address!r}")
            if address.lower() not in (a.lower() for a in s.redirects):
                if len(s.redirects) >= MAX_REDIRECTS:
                    raise SieveRuntimeError("too many redirects")
                s.redirects.append(address)
            if "copy" not in cmd.tags:
                s.implicit_keep = False
        elif name == "reject":
            s.reject = _strings(cmd.positional[0])[0]
            s.implicit_keep = False  # RFC 5429 2.2: reject cancels the implicit keep
        elif name == "vacation":
            if s.vacation is not None:
                raise SieveRuntimeError("vacation used twice")  # RFC 5230 4.7
            self._vacation(cmd)
        elif name in ("setflag", "addflag", "removeflag"):
            given = split_flags(_strings(cmd.positional[0]))
            if name == "setflag":
                s.flags = given
            elif name == "addflag":
                s.flags |= given
            else:
                lowered = {f.lower() for f in given}
                s.flags = {f for f in s.flags if f.lower() not in lowered}
        else:  # pragma: no cover - the checker rejects unknown commands
            raise SieveRuntimeError(f"unknown command {name}")

    def _vacation(self, cmd: Command) -> None:
        days_arg = cmd.tags.get("days")
        days = days_arg if isinstance(days_arg, int) else 7
        # RFC 5230 4.1: :days below the site minimum (1) is raised to it.
        days = max(1, min(days, 90))
        self.state.vacation = VacationRequest(
            reason=_strings(cmd.positional[0])[0],
            days=days,
            subject=(_strings(cmd.tags.get("subject")) or ("",))[0],
            from_addr=(_strings(cmd.tags.get("from")) or ("",))[0],
            addresses=_strings(cmd.tags.get("addresses")),
            handle=(_strings(cmd.tags.get("handle")) or ("",))[0],
            mime="mime" in cmd.tags,
        )

    # ---------------------------------------------------------------- tests
    def _test(self, test: Test) -> bool:
        name = test.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self._test(test.tests[0])
        if name == "allof":
            return all(self._test(t) for t in test.tests)
        if name == "anyof":
            return any(self._test(t) for t in test.tests)
        if name == "exists":
            return all(self.msg.headers.get(h) is not None for h in _strings(test.positional[0]))
        if name == "size":
            limit = test.positional[0]
            assert isinstance(limit, int)
            return self.msg.size > limit if "over" in test.tags else self.msg.size < limit
        matcher = Matcher.of(test)
        if name == "header":
            names, keys = _strings(test.positional[0]), _strings(test.positional[1])
            return matcher.any(_header_values(self.msg, names), keys)
        if name == "address":
            names, keys = _strings(test.positional[0]), _strings(test.positional[1])
            # Parse the raw (undecoded) fields: a decoded display name may hold commas.
            fields = [
                re.sub(r"\r?\n[ \t]", " ", v)
                for n in names
                for v in raw_headers(self.msg.headers, n)
            ]
            addrs = [a for _, a in email.utils.getaddresses(fields) if a]
            part = _part(test)
            return matcher.any((_address_part(a, part) for a in addrs), keys)
        if name == "envelope":
            parts, keys = _strings(test.positional[0]), _strings(test.positional[1])
            values: list[str] = []
            for p in parts:
                if p.lower() == "from":
                    values.append(self.msg.mail_from)
                elif p.lower() == "to":
                    values.append(self.msg.rcpt_to)
            part = _part(test)
            # RFC 5228 5.4: the null reverse-path is the empty string for every part.
            return matcher.any((_address_part(v, part) if v else "" for v in values), keys)
        if name == "body":
            transform = "text"
            for t in ("raw", "content", "text"):
                if t in test.tags:
                    transform = t
            types = _strings(test.tags.get("content"))
            return matcher.any(_body_text(self.msg, transform, types), _strings(test.positional[0]))
        if name == "hasflag":
            # RFC 5232 4: any flag in the internal variable matches any key.
            return matcher.any(self.state.flags, sorted(split_flags(_strings(test.positional[0]))))
        if name in ("date", "currentdate"):
            return matcher.any(self._dates(test), _strings(test.positional[-1]))
        raise SieveRuntimeError(f"unknown test {name}")  # pragma: no cover

    def _dates(self, test: Test) -> list[str]:
        """The date-part values a date / currentdate test compares (RFC 5260 4, 5)."""
        zone = _strings(test.tags.get("zone"))
        part = _strings(test.positional[-2])[0]
        if test.name == "currentdate":
            moments = [self.now]
        else:
            field_name = _strings(test.positional[0])[0]
            found = (header_date(v, field_name) for v in raw_headers(self.msg.headers, field_name))
            # RFC 5260 4.1: a field without a usable date makes the test false.
            moments = [m for m in found if m is not None][:1]
            if "originalzone" not in test.tags and not zone:
                moments = [m.astimezone(self.now.tzinfo) for m in moments]
        if zone:
            moments = [m.astimezone(zone_of(zone[0])) for m in moments]
        return [date_part(m, part) for m in moments]


def run_script(
    script: list[Command], msg: SieveMessage, now: dt.datetime | None = None
) -> SieveOutcome:
    return Interpreter(script, msg, now).run()
