"""Typed IMAP commands: what :mod:`appliance.imap.parser` produces (values only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# A sequence set: ranges (low, high); None stands for "*" (RFC 9051 9: seq-number).
SeqSet = tuple[tuple[int | None, int | None], ...]


@dataclass(frozen=True)
class Literal:
    """A literal argument: in memory (``data``) or spooled to ``path`` when large."""

    size: int
    data: bytes | None = None
    path: Path | None = None
    binary: bool = False  # RFC 3516 literal8 (~{n})


@dataclass(frozen=True)
class Section:
    part: tuple[int, ...] = ()
    text: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()

    def render(self) -> str:
        parts = [".".join(str(p) for p in self.part)] if self.part else []
        if self.text:
            parts.append(self.text)
        spec = ".".join(parts)
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True)
class FetchAtt:
    name: str  # FLAGS UID ENVELOPE ... BODY BINARY BINARY.SIZE
    section: Section | None = None
    partial: tuple[int, int] | None = None  # (start, count)
    peek: bool = False


@dataclass(frozen=True)
class SearchKey:
    name: str  # ALL, AND, OR, NOT, SEQ, UID, FLAG, UNFLAG, HEADER, BODY, ON, ... MODSEQ
    children: tuple[SearchKey, ...] = ()
    text: str = ""  # string argument; the field name for HEADER
    value: str = ""  # HEADER's string
    number: int = 0  # LARGER SMALLER MODSEQ OLDER YOUNGER; date ordinal for date keys
    seqset: SeqSet = ()


@dataclass(frozen=True)
class Command:
    tag: str
    name: str
    uid: bool = False


@dataclass(frozen=True)
class Simple(Command):
    """CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE UNSELECT EXPUNGE IDLE NAMESPACE."""


@dataclass(frozen=True)
class Login(Command):
    user: str = ""
    password: str = ""


@dataclass(frozen=True)
class Authenticate(Command):
    mechanism: str = ""
    initial: str | None = None  # RFC 4959 SASL-IR ("=" is an empty response)


@dataclass(frozen=True)
class Enable(Command):
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Id(Command):
    params: tuple[tuple[str, str | None], ...] | None = None


@dataclass(frozen=True)
class Compress(Command):
    mechanism: str = ""


@dataclass(frozen=True)
class QresyncParams:
    uidvalidity: int
    modseq: int
    known_uids: SeqSet = ()
    seq_match: tuple[SeqSet, SeqSet] | None = None


@dataclass(frozen=True)
class Select(Command):
    mailbox: str = ""
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True)
class MailboxCommand(Command):
    """CREATE DELETE SUBSCRIBE UNSUBSCRIBE GETQUOTAROOT GETQUOTA (the root name)."""

    mailbox: str = ""
    use: tuple[str, ...] = ()  # CREATE ... (USE (\Archive)) RFC 6154


@dataclass(frozen=True)
class Rename(Command):
    old: str = ""
    new: str = ""


@dataclass(frozen=True)
class ListCommand(Command):
    reference: str = ""
    patterns: tuple[str, ...] = ()
    selection: tuple[str, ...] = ()  # RFC 5258 selection options (upper case)
    returns: tuple[str, ...] = ()  # RFC 5258 return options (upper case)
    status_items: tuple[str, ...] = ()  # RFC 5819 RETURN (STATUS (...))
    extended: bool = False  # RFC 5258 syntax: selection/return options or a pattern list


@dataclass(frozen=True)
class Status(Command):
    mailbox: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatenatePart:
    """RFC 4469 5: cat-part, a TEXT literal or a URL to (part of) a stored message."""

    text: Literal | None = None
    url: str = ""


@dataclass(frozen=True)
class AppendMessage:
    flags: tuple[str, ...]
    date: float | None
    literal: Literal
    parts: tuple[CatenatePart, ...] = ()  # RFC 4469: CATENATE, built before storing


@dataclass(frozen=True)
class Append(Command):
    mailbox: str = ""
    messages: tuple[AppendMessage, ...] = ()


@dataclass(frozen=True)
class Expunge(Command):
    seqset: SeqSet | None = None  # UID EXPUNGE


@dataclass(frozen=True)
class Search(Command):
    key: SearchKey = field(default_factory=lambda: SearchKey("ALL"))
    charset: str | None = None
    returns: tuple[str, ...] | None = None  # RFC 4731 ESEARCH; () means RETURN ()


@dataclass(frozen=True)
class CancelUpdate(Command):
    tags: tuple[str, ...] = ()  # RFC 5267 4.3: the tags of UPDATE searches to end


@dataclass(frozen=True)
class Fetch(Command):
    seqset: SeqSet = ()
    atts: tuple[FetchAtt, ...] = ()
    changed_since: int | None = None  # RFC 7162 3.1.4
    vanished: bool = False  # RFC 7162 3.2.6


@dataclass(frozen=True)
class Store(Command):
    seqset: SeqSet = ()
    mode: str = "set"  # set add remove
    silent: bool = False
    flags: tuple[str, ...] = ()
    unchanged_since: int | None = None  # RFC 7162 3.1.3


@dataclass(frozen=True)
class CopyMove(Command):
    seqset: SeqSet = ()
    mailbox: str = ""


@dataclass(frozen=True)
class Sort(Command):
    criteria: tuple[tuple[str, bool], ...] = ()  # (key, reverse)
    charset: str = "UTF-8"
    key: SearchKey = field(default_factory=lambda: SearchKey("ALL"))
    returns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Thread(Command):
    algorithm: str = "REFERENCES"
    charset: str = "UTF-8"
    key: SearchKey = field(default_factory=lambda: SearchKey("ALL"))
