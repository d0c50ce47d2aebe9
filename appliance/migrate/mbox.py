"""mbox files: read (mboxrd or mboxo) and write (mboxrd), streaming, one message at a time.

A message starts at a ``From `` separator line at the top of the file or after an empty
line (RFC 4155 2). Inside a message mboxrd quotes ``>*From `` by one more ``>``, mboxo
quotes only ``From ``; reading undoes the variant chosen. A ``From `` line after an empty
line that is no separator (no time and year) is an unquoted body line an mboxo writer
left behind or a damaged file: reading stops there with :class:`MboxError` naming the
line, after every message before it was handed out. Line ends become CRLF (the store's
form); writing turns CRLF back into LF.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO, Literal

from appliance.migrate.dest import header_block

Variant = Literal["mboxrd", "mboxo"]

# "From <sender> <date>": the date has a time and a four-digit year in any of the
# layouts writers use (asctime, with or without a zone, Thunderbird's "From - ...")
_SEPARATOR = re.compile(rb"^From \S+ +.*\b\d{1,2}:\d{2}(:\d{2})?\b.*\b\d{4}\b")
_ASCTIME = re.compile(rb"^From \S+ +(\w{3} \w{3} [ \d]\d \d{2}:\d{2}:\d{2}(?: [+-]\d{4})? \d{4})")
_RD_QUOTED = re.compile(rb"^>(>*From )")
_NEEDS_QUOTE = re.compile(rb"^(>*From )")
_MOZ_STATUS = re.compile(rb"^X-Mozilla-Status:[ \t]*([0-9A-Fa-f]{1,4})\s*$", re.I | re.M)
_MOZ_KEYS = re.compile(rb"^X-Mozilla-Keys:[ \t]*(.*?)\s*$", re.I | re.M)
_STATUS = re.compile(rb"^Status:[ \t]*(\S*)\s*$", re.I | re.M)
_XSTATUS = re.compile(rb"^X-Status:[ \t]*(\S*)\s*$", re.I | re.M)
_LABELS = re.compile(rb"^X-Gmail-Labels:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


class MboxError(Exception):
    def __init__(self, line: int, text: str, path: str = "") -> None:
        super().__init__(f"{path} line {line}: {text}" if path else f"line {line}: {text}")
        self.line = line
        self.text = text


@dataclass(frozen=True)
class MboxMessage:
    data: bytes  # CRLF line ends
    separator: bytes  # the "From " line, without its line end
    line: int  # where the separator is

    def date(self) -> float | None:
        """The separator's date, else the Date header's, else None."""
        m = _ASCTIME.match(self.separator)
        if m:
            text = " ".join(m.group(1).decode("ascii", "replace").split())
            for fmt in ("%a %b %d %H:%M:%S %z %Y", "%a %b %d %H:%M:%S %Y"):
                try:
                    when = datetime.strptime(text, fmt)
                except ValueError:
                    continue
                return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        head = header_block(self.data)
        m2 = re.search(rb"^Date:[ \t]*(.*?)\r?$", head, re.I | re.M)
        if m2:
            try:
                return parsedate_to_datetime(m2.group(1).decode("ascii", "replace")).timestamp()
            except (ValueError, TypeError):
                return None
        return None

    def flags(self) -> frozenset[str]:
        """Flags from mutt/mbox Status/X-Status, Thunderbird's X-Mozilla-* or Takeout."""
        head = header_block(self.data)
        out: set[str] = set()
        m = _STATUS.search(head)
        if m and b"R" in m.group(1):
            out.add("\\Seen")
        m = _XSTATUS.search(head)
        if m:
            letters = m.group(1)
            for letter, flag in (
                (b"A", "\\Answered"),
                (b"F", "\\Flagged"),
                (b"T", "\\Draft"),
                (b"D", "\\Deleted"),
            ):
                if letter in letters:
                    out.add(flag)
        m = _MOZ_STATUS.search(head)
        if m:
            bits = int(m.group(1), 16)
            for bit, flag in ((0x1, "\\Seen"), (0x2, "\\Answered"), (0x4, "\\Flagged")):
                if bits & bit:
                    out.add(flag)
            if bits & 0x8:  # expunged in Thunderbird: deleted
                out.add("\\Deleted")
        m = _MOZ_KEYS.search(head)
        if m:
            out.update(k for k in m.group(1).decode("utf-8", "replace").split() if k)
        labels = self.gmail_labels()
        if labels:
            if "Unread" not in labels:
                out.add("\\Seen")
            if "Starred" in labels:
                out.add("\\Flagged")
        return frozenset(out)

    def gmail_labels(self) -> list[str]:
        m = _LABELS.search(header_block(self.data))
        if m is None:
            return []
        raw = re.sub(rb"\r?\n[ \t]+", b" ", m.group(1)).decode("utf-8", "replace")
        return [x.strip().strip('"') for x in raw.split(",") if x.strip()]


def _crlf(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line
    if line.endswith(b"\n"):
        return line[:-1] + b"\r\n"
    return line


def read(fh: BinaryIO, variant: Variant = "mboxrd") -> Iterator[MboxMessage]:
    lineno = 0
    first = fh.readline()
    lineno = 1
    if not first.startswith(b"From ") or not _SEPARATOR.match(first):
        if not first:
            return
        raise MboxError(1, "this is not an mbox file: it does not start with a 'From ' line")
    separator, sep_line = first.rstrip(b"\r\n"), 1
    lines: list[bytes] = []
    previous_blank = False
    for line in fh:
        lineno += 1
        # RFC 4155 2: a message starts at a "From " line at the file's start or after a blank line
        if line.startswith(b"From ") and previous_blank:
            if not _SEPARATOR.match(line):
                shown = line.rstrip(b"\r\n")[:80].decode("utf-8", "replace")
                raise MboxError(
                    lineno,
                    f"broken 'From ' line {shown!r}: a new message should start here but "
                    "the line has no date; quote it as '>From ' if it belongs to the text",
                )
            lines.pop()  # the empty line before a separator belongs to the separator
            yield MboxMessage(b"".join(lines), separator, sep_line)
            separator, sep_line, lines, previous_blank = line.rstrip(b"\r\n"), lineno, [], False
            continue
        previous_blank = line in (b"\n", b"\r\n")
        if variant == "mboxrd":
            line = _RD_QUOTED.sub(rb"\1", line)
        elif line.startswith(b">From "):
            line = line[1:]
        lines.append(_crlf(line))
    if lines and previous_blank:
        lines.pop()
    yield MboxMessage(b"".join(lines), separator, sep_line)


def write(fh: BinaryIO, data: bytes, internal_date: float, sender: str = "MAILER-DAEMON") -> int:
    """Append one message as mboxrd; returns the bytes written."""
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(internal_date))
    out = [f"From {sender} {stamp}\n".encode()]
    for line in data.splitlines(keepends=True):
        if line.endswith(b"\r\n"):
            line = line[:-2] + b"\n"
        out.append(_NEEDS_QUOTE.sub(rb">\1", line))
    if not data.endswith(b"\n"):
        out.append(b"\n")
    out.append(b"\n")
    chunk = b"".join(out)
    fh.write(chunk)
    return len(chunk)
