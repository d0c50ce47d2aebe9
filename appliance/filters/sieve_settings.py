"""A user's mail settings (vacation, forwarding, simple rules) <-> their Sieve script.

The web page's settings live in the user's one active script (appliance.filters.
sieve_store), the script a ManageSieve client edits too, as a generated section:

    require [...];                      # what the section and the user's own text need
    <the user's own text, if any was above the section>
    # pillarbox:begin ...
    # pillarbox:settings {JSON}         # what the page shows, read back by read()
    <Sieve code generated from the JSON>
    # pillarbox:end
    <the user's own text>               # kept as it is

``read`` parses a stored script into :class:`UserScript`; ``render`` writes one back.
Text outside the section is never changed (only its leading ``require`` is merged into
the first line). A section whose code no longer matches its JSON (edited by hand) is
reported in ``UserScript.note``; saving from the page rewrites it from the JSON.
Pure (no I/O); the daemon stores the result through the sieve.* ctl commands.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from appliance.filters.sieve_parse import SieveSyntaxError, parse

BEGIN = "# pillarbox:begin"
END = "# pillarbox:end"
SETTINGS = "# pillarbox:settings "
BEGIN_LINE = f"{BEGIN} (made on the web page, Settings > Mail: change them there)"

MAX_RULES = 50
MAX_FORWARDS = 4  # the evaluator allows 5 redirects a message: one is left for a rule
MAX_TEXT = 200  # characters of a rule's text, a subject, a folder name
MAX_BODY = 4000  # characters of the auto-reply
MAX_DAYS = 30

FIELDS: dict[str, tuple[str, ...]] = {
    "from": ("from",),
    "to": ("to", "cc"),
    "subject": ("subject",),
}
ACTIONS = ("folder", "junk", "forward", "discard")
JUNK = "Junk"
_ADDRESS_RE = re.compile(r"^[^\s@<>,;\"]+@[^\s@<>,;\"]+\.[^\s@<>,;\"]+$")
_REQUIRE_RE = re.compile(r'require\s*(\[[^\]]*\]|"(?:[^"\\]|\\.)*")\s*;', re.IGNORECASE)
_SKIP_RE = re.compile(r"(?:\s+|#[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_STRING_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Vacation:
    enabled: bool = False
    start: str = ""  # YYYY-MM-DD (first day of replies) or ""
    end: str = ""  # YYYY-MM-DD (last day) or ""
    subject: str = ""
    body: str = ""
    days: int = 7  # RFC 5230 4.1: one reply per sender per this many days
    addresses: tuple[str, ...] = ()  # the user's other addresses (aliases), RFC 5230 4.5


@dataclass(frozen=True)
class Forwarding:
    addresses: tuple[str, ...] = ()
    keep: bool = True  # keep a copy here too


@dataclass(frozen=True)
class Rule:
    field: str  # one of FIELDS
    contains: str
    action: str  # one of ACTIONS
    target: str = ""  # the folder (folder) or address (forward)


@dataclass(frozen=True)
class MailSettings:
    vacation: Vacation = field(default_factory=Vacation)
    forwarding: Forwarding = field(default_factory=Forwarding)
    rules: tuple[Rule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        v, f = self.vacation, self.forwarding
        return {
            "v": 1,
            "vacation": {
                "enabled": v.enabled,
                "start": v.start,
                "end": v.end,
                "subject": v.subject,
                "body": v.body,
                "days": v.days,
                "addresses": list(v.addresses),
            },
            "forward": {"addresses": list(f.addresses), "keep": f.keep},
            "rules": [
                {"field": r.field, "contains": r.contains, "action": r.action, "target": r.target}
                for r in self.rules
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> MailSettings:
        """Raises ValueError on anything that is not what to_json writes."""
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("unknown settings version")
        v = data.get("vacation") or {}
        f = data.get("forward") or {}
        vacation = Vacation(
            enabled=bool(v.get("enabled")),
            start=str(v.get("start", "")),
            end=str(v.get("end", "")),
            subject=str(v.get("subject", "")),
            body=str(v.get("body", "")),
            days=int(v.get("days", 7)),
            addresses=tuple(str(a) for a in v.get("addresses", [])),
        )
        forwarding = Forwarding(
            addresses=tuple(str(a) for a in f.get("addresses", [])), keep=bool(f.get("keep", True))
        )
        rules = tuple(
            Rule(str(r["field"]), str(r["contains"]), str(r["action"]), str(r.get("target", "")))
            for r in data.get("rules", [])
        )
        return cls(vacation, forwarding, rules)


@dataclass(frozen=True)
class UserScript:
    settings: MailSettings = field(default_factory=MailSettings)
    before: str = ""  # the user's own text above the section (without its require)
    after: str = ""  # the user's own text below the section
    requires: tuple[str, ...] = ()  # extensions the stored script required
    note: str = ""  # why the page's view may differ from what runs ("" when it does not)

    @property
    def has_own_text(self) -> bool:
        return bool(self.before.strip() or self.after.strip())


# ------------------------------------------------------------------ checking


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def check(settings: MailSettings, folders: frozenset[str] | None = None) -> dict[str, str]:
    """Problems by form field name ({} when the settings can be saved)."""
    errors: dict[str, str] = {}
    v = settings.vacation
    for name, value in (("start", v.start), ("end", v.end)):
        if value and _date(value) is None:
            errors[name] = "Give a date as YYYY-MM-DD."
    start, end = _date(v.start), _date(v.end)
    if start and end and end < start:
        errors["end"] = "The last day is before the first day."
    if len(v.subject) > MAX_TEXT:
        errors["subject"] = f"At most {MAX_TEXT} characters."
    elif _CONTROL_RE.search(v.subject):
        errors["subject"] = "One line, please."  # it becomes the reply's Subject field
    if v.enabled and not v.body.strip():
        errors["body"] = "Write the reply that senders get."
    if len(v.body) > MAX_BODY:
        errors["body"] = f"At most {MAX_BODY} characters."
    if not 1 <= v.days <= MAX_DAYS:
        errors["days"] = f"Between 1 and {MAX_DAYS} days."
    f = settings.forwarding
    if len(f.addresses) > MAX_FORWARDS:
        errors["addresses"] = f"At most {MAX_FORWARDS} addresses."
    bad = [a for a in f.addresses if not _ADDRESS_RE.match(a)]
    if bad:
        errors["addresses"] = f"Not an email address: {bad[0]}"
    if len(settings.rules) > MAX_RULES:
        errors["rules"] = f"At most {MAX_RULES} rules."
    for i, rule in enumerate(settings.rules):
        key = f"rule-{i}"
        if rule.field not in FIELDS or rule.action not in ACTIONS:
            errors[key] = "Choose what to look at and what to do."
        elif not rule.contains.strip() or len(rule.contains) > MAX_TEXT:
            errors[key] = f"Give the text to look for (at most {MAX_TEXT} characters)."
        elif _CONTROL_RE.search(rule.contains + rule.target):
            errors[key] = "One line, please."
        elif rule.action == "forward" and not _ADDRESS_RE.match(rule.target):
            errors[key] = "Give the address to forward to."
        elif rule.action == "folder" and (
            not rule.target or (folders is not None and rule.target not in folders)
        ):
            errors[key] = "Choose one of your folders."
    return errors


# ------------------------------------------------------------------ generating


def quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 2.4.2: backslash escapes \\ and ")."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rule_test(rule: Rule) -> str:
    names = FIELDS[rule.field]
    header = quote(names[0]) if len(names) == 1 else "[" + ", ".join(map(quote, names)) + "]"
    return f"header :contains {header} {quote(rule.contains)}"


def _rule_action(rule: Rule) -> str:
    if rule.action == "folder":
        return f"fileinto {quote(rule.target)};"
    if rule.action == "junk":
        return f"fileinto {quote(JUNK)};"
    if rule.action == "forward":
        return f"redirect {quote(rule.target)};"
    return "discard;"


def needs(settings: MailSettings) -> set[str]:
    """The extensions the generated section uses."""
    out: set[str] = set()
    v = settings.vacation
    if v.enabled:
        out.add("vacation")
        if v.start or v.end:
            out |= {"date", "relational"}
    if settings.forwarding.addresses and settings.forwarding.keep:
        out.add("copy")
    if any(r.action in ("folder", "junk") for r in settings.rules):
        out.add("fileinto")
    return out


def section_code(settings: MailSettings) -> str:
    """The Sieve code of the section (without its marker lines)."""
    lines: list[str] = []
    v = settings.vacation
    if v.enabled:
        args = f":days {v.days}"
        if v.subject:
            args += f" :subject {quote(v.subject)}"
        if v.addresses:
            # RFC 5230 4.5: mail to these addresses is addressed to the user as well.
            args += " :addresses [" + ", ".join(quote(a) for a in v.addresses) + "]"
        action = f"vacation {args} {quote(v.body)};"
        # RFC 5260 5 / RFC 5231: the dates are compared in the box's time zone.
        window = [
            f'currentdate :value "{op}" "date" {quote(day)}'
            for op, day in (("ge", v.start), ("le", v.end))
            if day
        ]
        if len(window) == 2:
            lines += [f"if allof ({window[0]}, {window[1]}) {{", f"  {action}", "}"]
        elif window:
            lines += [f"if {window[0]} {{", f"  {action}", "}"]
        else:
            lines.append(action)
    f = settings.forwarding
    for address in f.addresses:
        # RFC 3894: :copy forwards and keeps the message here as well.
        lines.append(f"redirect{' :copy' if f.keep else ''} {quote(address)};")
    if f.addresses and not f.keep:
        lines.append("stop;")  # forwarded only: no rule and no own text files it here
    for i, rule in enumerate(settings.rules):
        keyword = "if" if i == 0 else "} elsif"
        lines += [f"{keyword} {_rule_test(rule)} {{", f"  {_rule_action(rule)}"]
    if settings.rules:
        lines.append("}")
    return "".join(line + "\n" for line in lines)


def _require_line(names: set[str]) -> str:
    if not names:
        return ""
    return "require [" + ", ".join(quote(n) for n in sorted(names)) + "];\n"


def _assemble(requires: set[str], before: str, settings: MailSettings, after: str) -> str:
    payload = json.dumps(settings.to_json(), sort_keys=True, separators=(",", ":"))
    section = f"{BEGIN_LINE}\n{SETTINGS}{payload}\n{section_code(settings)}{END}\n"
    if before and not before.endswith("\n"):
        before += "\n"
    return _require_line(requires) + before + section + after


def render(script: UserScript, settings: MailSettings) -> str:
    """The whole script with ``settings`` in the section and the user's own text kept.

    The require line lists what the section needs plus every extension the stored script
    required that the user's own text still needs (tried by parsing without it)."""
    wanted = needs(settings)
    keep = set(script.requires) | wanted
    for ext in sorted(set(script.requires) - wanted):
        trial = _assemble(keep - {ext}, script.before, settings, script.after)
        try:
            parse(trial)
        except SieveSyntaxError:
            continue
        keep.discard(ext)
    return _assemble(keep, script.before, settings, script.after)


# ------------------------------------------------------------------ reading back


def split_requires(text: str) -> tuple[tuple[str, ...], str]:
    """The extensions of the ``require`` commands at the start of ``text`` and the text
    without those commands (comments around them are kept)."""
    names: list[str] = []
    kept: list[str] = []
    pos = 0
    while True:
        skip = _SKIP_RE.match(text, pos)
        start = skip.end() if skip else pos
        kept.append(text[pos:start])
        m = _REQUIRE_RE.match(text, start)
        if m is None:
            kept.append(text[start:])
            break
        for raw in _STRING_RE.findall(m.group(1)):
            names.append(re.sub(r"\\(.)", r"\1", raw).lower())
        pos = m.end()
        if pos < len(text) and text[pos] == "\n":
            pos += 1
    return tuple(dict.fromkeys(names)), "".join(kept)


def read(text: str | None) -> UserScript:
    """Parse a stored script (None: the user has none) into settings and own text."""
    if not text:
        return UserScript()
    text = text.replace("\r\n", "\n")
    requires, rest = split_requires(text)
    lines = rest.splitlines(keepends=True)
    begin = next((i for i, ln in enumerate(lines) if ln.startswith(BEGIN)), None)
    end = None
    if begin is not None:
        end = next((i for i in range(begin + 1, len(lines)) if lines[i].startswith(END)), None)
    if begin is None or end is None:
        note = ""
        if rest.strip():
            note = (
                "Your filter script also has rules written elsewhere (for example with a "
                "ManageSieve client). They are kept and run after the settings made here."
            )
        return UserScript(after=rest, requires=requires, note=note)
    before, after = "".join(lines[:begin]), "".join(lines[end + 1 :])
    body = lines[begin + 1 : end]
    note = ""
    settings = MailSettings()
    if body and body[0].startswith(SETTINGS):
        try:
            settings = MailSettings.from_json(json.loads(body[0][len(SETTINGS) :]))
        except (ValueError, KeyError, TypeError):
            note = "The settings section of your filter script could not be read."
        else:
            if "".join(body[1:]) != section_code(settings):
                note = (
                    "The settings section of your filter script was changed outside this "
                    "page. Saving here writes it again from the settings shown."
                )
    else:
        note = "The settings section of your filter script could not be read."
    if not note and (before.strip() or after.strip()):
        note = (
            "Your filter script also has rules written elsewhere (for example with a "
            "ManageSieve client). They are kept and run after the settings made here."
        )
        if before.strip():
            note = note.replace("after the settings", "around the settings")
    return UserScript(settings, before, after, requires, note)
