"""The reader side of :mod:`appliance.mime.summary`: typed parts and section lookup."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Version of the serialized summary (mime.summary writes it, load_summary reads it). Raise
# it whenever the parse changes what a summary holds: cached summaries of another version
# are made again from the message file (MaildirStore summary_current).
VERSION = 2

Address = tuple[str | None, str | None, str | None, str | None]


class SummaryError(ValueError):
    """A cached summary that cannot be read (wrong version, corrupt)."""


class NoSuchPart(LookupError):
    """A section number that names no part of this message."""


@dataclass(frozen=True)
class Envelope:
    date: str | None
    subject: str | None
    from_: tuple[Address, ...] | None
    sender: tuple[Address, ...] | None
    reply_to: tuple[Address, ...] | None
    to: tuple[Address, ...] | None
    cc: tuple[Address, ...] | None
    bcc: tuple[Address, ...] | None
    in_reply_to: str | None
    message_id: str | None


@dataclass(frozen=True)
class Part:
    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    id: str | None
    description: str | None
    encoding: str
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None
    language: tuple[str, ...] | None
    location: str | None
    md5: str | None
    header_start: int
    body_start: int
    body_end: int
    lines: int
    children: tuple[Part, ...] = ()
    message: Message | None = None

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def body_size(self) -> int:
        return self.body_end - self.body_start

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.params if k == name), None)


@dataclass(frozen=True)
class Message:
    envelope: Envelope
    part: Part


@dataclass(frozen=True)
class Extras:
    date: float | None
    subject: str  # RFC 5256 base subject, case-folded
    from_: tuple[str, str] | None  # (display name or address, mailbox lower-cased)
    to: tuple[str, str] | None
    cc: tuple[str, str] | None
    message_id: str | None
    references: tuple[str, ...]
    in_reply_to: str | None


@dataclass(frozen=True)
class Summary:
    size: int
    message: Message
    extras: Extras

    @property
    def root(self) -> Part:
        return self.message.part

    def find(self, numbers: Sequence[int]) -> Part:
        """RFC 9051 6.4.5: a part number -> the part (nested message/rfc822 included)."""
        node = self.root
        for depth, n in enumerate(numbers):
            if n < 1:
                raise NoSuchPart(str(n))
            if node.children:
                if n > len(node.children):
                    raise NoSuchPart(str(n))
                node = node.children[n - 1]
            elif node.message is not None and depth > 0:
                inner = node.message.part
                if inner.children:
                    if n > len(inner.children):
                        raise NoSuchPart(str(n))
                    node = inner.children[n - 1]
                elif n == 1:
                    node = inner
                else:
                    raise NoSuchPart(str(n))
            elif n != 1:
                raise NoSuchPart(str(n))
        return node


def _addresses(raw: Any) -> tuple[Address, ...] | None:
    if raw is None:
        return None
    return tuple((a[0], a[1], a[2], a[3]) for a in raw)


def _envelope(raw: dict[str, Any]) -> Envelope:
    return Envelope(
        date=raw["date"],
        subject=raw["subject"],
        from_=_addresses(raw["from"]),
        sender=_addresses(raw["sender"]),
        reply_to=_addresses(raw["reply-to"]),
        to=_addresses(raw["to"]),
        cc=_addresses(raw["cc"]),
        bcc=_addresses(raw["bcc"]),
        in_reply_to=raw["in-reply-to"],
        message_id=raw["message-id"],
    )


def _part(raw: dict[str, Any]) -> Part:
    disp = raw.get("dp")
    message = raw.get("m")
    return Part(
        type=raw["t"],
        subtype=raw["s"],
        params=tuple((k, v) for k, v in raw["p"]),
        id=raw.get("id"),
        description=raw.get("ds"),
        encoding=raw.get("e", "7bit"),
        disposition=(disp[0], tuple((k, v) for k, v in disp[1])) if disp else None,
        language=tuple(raw["la"]) if raw.get("la") else None,
        location=raw.get("lo"),
        md5=raw.get("md5"),
        header_start=raw["hs"],
        body_start=raw["bs"],
        body_end=raw["be"],
        lines=raw.get("ln", 0),
        children=tuple(_part(c) for c in raw.get("c", ())),
        message=Message(_envelope(message["env"]), _part(message["part"])) if message else None,
    )


def _pair(raw: Any) -> tuple[str, str] | None:
    return (raw[0], raw[1]) if raw else None


def load_summary(data: bytes) -> Summary:
    try:
        raw = json.loads(data)
        if raw.get("v") != VERSION:
            raise SummaryError(f"unknown summary version {raw.get('v')!r}")
        x = raw["x"]
        return Summary(
            size=raw["size"],
            message=Message(_envelope(raw["env"]), _part(raw["part"])),
            extras=Extras(
                date=x["date"],
                subject=x["subject"],
                from_=_pair(x["from"]),
                to=_pair(x["to"]),
                cc=_pair(x["cc"]),
                message_id=x["mid"],
                references=tuple(x["refs"]),
                in_reply_to=x["irt"],
            ),
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise SummaryError(str(exc)) from exc
