"""Names on disk: mailbox names <-> Maildir++ folders, Maildir file names <-> flags.

Folders (Maildir++): INBOX is the user directory itself; every other mailbox is a
directory ``.<c1>.<c2>...`` in it, ``.`` being the Maildir++ hierarchy separator.
Each store name component (``/`` separates components) is written as IMAP modified
UTF-7 (RFC 3501 5.1.3, what Dovecot writes by default) and then ``.`` and ``~`` are
escaped as ``~2e`` and ``~7e`` so a component may contain them safely.

Message files: ``<unique>,S=<size>,U=<uid>[:2,<info>]``. ``S=`` is the stored size (as
Dovecot writes it); ``U=`` is the IMAP UID, so a lost index is rebuilt with the same
UIDs. The info letters are the standard Maildir flags (D F P R S T); keywords map to
the letters a-z through the folder's ``dovecot-keywords`` file (see ``folder.py``).
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance import mutf7
from appliance.store.base import INBOX, SEPARATOR, InvalidFlag, InvalidMailboxName

MAX_DIR_NAME = 240  # bytes; most filesystems allow 255 per name

# Standard Maildir info letters <-> IMAP flags (cr.yp.to/proto/maildir.html).
LETTER_OF_FLAG: Mapping[str, str] = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "$Forwarded": "P",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
FLAG_OF_LETTER: Mapping[str, str] = {v: k for k, v in LETTER_OF_FLAG.items()}
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"

_ATOM_SPECIALS = re.compile(r'[\x00-\x20\x7f(){%*"\\\]]')


# ------------------------------------------------------------------ mailbox names


def canonical_mailbox(name: str) -> str:
    """INBOX is case-insensitive (RFC 9051 5.1); everything else is kept as given."""
    head, sep, rest = name.partition(SEPARATOR)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def validate_mailbox(name: str) -> str:
    """Return the canonical name or raise InvalidMailboxName."""
    name = canonical_mailbox(name)
    if not name:
        raise InvalidMailboxName("empty mailbox name")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidMailboxName("control characters in mailbox name")
    parts = name.split(SEPARATOR)
    if any(p == "" for p in parts):
        raise InvalidMailboxName("empty hierarchy level in mailbox name")
    if name != INBOX and len(folder_dirname(name).encode()) > MAX_DIR_NAME:
        raise InvalidMailboxName("mailbox name too long")
    return name


def _escape(component: str) -> str:
    return mutf7.encode(component).replace("~", "~7e").replace(".", "~2e")


def _unescape(text: str) -> str:
    return mutf7.decode(
        re.sub(r"~([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text), strict=False
    )


def folder_dirname(name: str) -> str:
    """Store name (not INBOX) -> Maildir++ directory name ``.A.B``."""
    return "." + ".".join(_escape(p) for p in name.split(SEPARATOR))


def mailbox_of_dirname(dirname: str) -> str | None:
    """Maildir++ directory name -> store name; None for names that are not folders."""
    if not dirname.startswith(".") or dirname in (".", ".."):
        return None
    try:
        parts = [_unescape(p) for p in dirname[1:].split(".")]
    except (ValueError, UnicodeDecodeError):
        return None
    if any(p == "" for p in parts):
        return None
    return canonical_mailbox(SEPARATOR.join(parts))


# ------------------------------------------------------------------ LIST patterns

MAX_PATTERN_LITERALS = 1024  # characters other than wildcards; no name is that long


def _compact_pattern(pattern: str) -> str:
    """Runs of wildcards collapse: any run holding "*" is "*", a run of "%" is "%"."""
    out: list[str] = []
    for ch in pattern:
        if ch in "*%" and out and out[-1] in "*%":
            if ch == "*":
                out[-1] = "*"
            continue
        out.append(ch)
    return "".join(out)


def list_match(pattern: str, name: str) -> bool:
    """RFC 9051 6.3.9: does mailbox ``name`` match LIST ``pattern``? "*" matches any
    characters, "%" any but the hierarchy separator; a leading INBOX is case-insensitive.

    A bit-parallel automaton: time is O(len(name) * len(pattern) / word size) whatever
    the wildcards (a backtracking regex takes exponential time on ``*a*a*a...b``)."""
    if pattern[:5].upper() == INBOX and name[:5].upper() == INBOX:
        pattern, name = INBOX + pattern[5:], INBOX + name[5:]
    pattern = _compact_pattern(pattern)
    literals = len(pattern) - pattern.count("*") - pattern.count("%")
    if literals > len(name) or literals > MAX_PATTERN_LITERALS:
        return False
    star = percent = 0
    by_char: dict[str, int] = {}
    for i, ch in enumerate(pattern):
        bit = 1 << i
        if ch == "*":
            star |= bit
        elif ch == "%":
            percent |= bit
        else:
            by_char[ch] = by_char.get(ch, 0) | bit
    wild = star | percent
    # bit i set: the pattern up to (not including) position i matches the text so far;
    # a wildcard may match nothing, so its successor is live too (runs are compacted)
    states = 1 | ((1 & wild) << 1)
    for ch in name:
        stay = states & (star if ch == SEPARATOR else wild)
        states = ((states & by_char.get(ch, 0)) << 1) | stay
        states |= (states & wild) << 1
        if not states:
            return False
    return bool(states >> len(pattern) & 1)


# ------------------------------------------------------------------ message files


@dataclass(frozen=True)
class FileName:
    base: str  # unique part with its ,S= / ,U= fields: the stable key
    info: str  # flag letters after ":2," ("" in new/)
    size: int | None
    uid: int | None


def parse_filename(name: str) -> FileName:
    base, sep, info = name.partition(":2,")
    if not sep:
        info = ""
    size: int | None = None
    uid: int | None = None
    for field in base.split(",")[1:]:
        if field.startswith("S=") and field[2:].isdigit():
            size = int(field[2:])
        elif field.startswith("U=") and field[2:].isdigit():
            uid = int(field[2:])
    return FileName(base, info, size, uid)


def with_uid(base: str, uid: int, size: int | None) -> str:
    """``base`` with its ``U=`` field set to ``uid`` (and ``S=`` added when missing)."""
    head, *fields = base.split(",")
    kept = [f for f in fields if not f.startswith("U=")]
    if size is not None and not any(f.startswith("S=") for f in kept):
        kept.append(f"S={size}")
    kept.append(f"U={uid}")
    return ",".join([head, *kept])


def cur_name(base: str, info: str) -> str:
    return f"{base}:2,{info}"


def _host_part() -> str:
    # The Maildir spec asks for "/" and ":" to be escaped; we keep only safe characters.
    host = re.sub(r"[^A-Za-z0-9.-]", "", socket.gethostname()) or "localhost"
    return host[:40]


_HOST = _host_part()
_COUNTER = itertools.count(1)


def unique_name() -> str:
    """A new Maildir unique name: time, microseconds, pid, counter, random, host."""
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_COUNTER)}R{secrets.token_hex(4)}.{_HOST}"


# ------------------------------------------------------------------ flags


_SYSTEM_BY_FOLD = {f.casefold(): f for f in LETTER_OF_FLAG if f.startswith("\\")}


def normalize_flag(flag: str) -> str:
    """System flags are case-insensitive (RFC 9051 2.3.2); keywords keep their case."""
    return _SYSTEM_BY_FOLD.get(flag.casefold(), flag) if flag.startswith("\\") else flag


def valid_flag(flag: str) -> bool:
    if flag.startswith("\\"):
        return flag in LETTER_OF_FLAG
    return bool(flag) and _ATOM_SPECIALS.search(flag) is None and flag.isascii()


def info_of(flags: Iterable[str], keyword_letter: Mapping[str, str]) -> str:
    """IMAP flags -> Maildir info letters in ASCII order (keywords without a letter
    are left out: they live in the index only)."""
    letters = set()
    for flag in flags:
        letter = LETTER_OF_FLAG.get(flag) or keyword_letter.get(flag)
        if letter:
            letters.add(letter)
    return "".join(sorted(letters))


def flags_of(info: str, keyword_of_letter: Mapping[str, str]) -> set[str]:
    flags = set()
    for letter in info:
        flag = FLAG_OF_LETTER.get(letter) or keyword_of_letter.get(letter)
        if flag:
            flags.add(flag)
    return flags


def join_flags(flags: Iterable[str]) -> str:
    return " ".join(sorted(flags))


def split_flags(text: str) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def clean_flags(flags: Iterable[str]) -> frozenset[str]:
    """Normalised flags to store; InvalidFlag for \\Recent, unknown system flags, bad atoms."""
    result = set()
    for raw in flags:
        flag = normalize_flag(raw)
        if not valid_flag(flag):
            raise InvalidFlag(f"invalid flag {flag!r}")
        result.add(flag)
    return frozenset(result)
