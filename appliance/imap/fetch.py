"""FETCH items for one message: blocking (disk), run in a worker thread per message.

Small values are rendered in memory; big body ranges become :class:`FileRange` pieces
the session streams from the open message file in chunks.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from appliance.imap import preview, wire
from appliance.imap.commands import FetchAtt, Section
from appliance.imap.errors import ImapError
from appliance.imap.savedate import save_date
from appliance.mime.model import NoSuchPart, Part, Summary, load_summary
from appliance.store.base import MailStore, MessageInfo, MessageNotFound

STREAM_THRESHOLD = 256 * 1024
_STRUCTURE_ATTS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY", "BINARY", "BINARY.SIZE"})


@dataclass(frozen=True)
class FileRange:
    fh: BinaryIO
    start: int
    length: int


Piece = bytes | FileRange


@dataclass
class Fetched:
    pieces: list[Piece] = field(default_factory=list)
    fh: BinaryIO | None = None

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


@dataclass(frozen=True)
class FetchRequest:
    atts: tuple[FetchAtt, ...]
    utf8: bool = False
    with_modseq: bool = False
    with_uid: bool = False


def needs_file(atts: Sequence[FetchAtt]) -> bool:
    """Message bytes are read (sections, RFC822.*, BINARY)."""
    return any(
        a.section is not None
        or (a.name.startswith("RFC822") and a.name != "RFC822.SIZE")
        or a.name == "PREVIEW"  # RFC 8970: text of the first text part
        for a in atts
    )


def needs_disk(atts: Sequence[FetchAtt]) -> bool:
    """Anything beyond the index (the summary or the file): run in a worker thread."""
    return needs_file(atts) or any(a.name in _STRUCTURE_ATTS for a in atts)


def build_many(
    store: MailStore,
    user: str,
    mailbox: str,
    items: Sequence[tuple[int, MessageInfo, set[str]]],
    req: FetchRequest,
) -> list[Fetched]:
    """:func:`build` for a batch of messages in one worker-thread hop; messages that
    vanished meanwhile are left out. Summaries and file paths are read for the whole
    batch at once (one index query each), not per message."""
    uids = [info.uid for _, info, _ in items]
    summaries = store.summaries(user, mailbox, uids) if needs_disk(req.atts) else None
    paths = store.message_paths(user, mailbox, uids) if needs_file(req.atts) else None
    out: list[Fetched] = []
    try:
        for seq, info, flags in items:
            try:
                out.append(
                    _build_one(store, user, mailbox, seq, info, flags, req, summaries, paths)
                )
            except (MessageNotFound, FileNotFoundError):
                continue
    except BaseException:
        for fetched in out:
            fetched.close()
        raise
    return out


def build(
    store: MailStore,
    user: str,
    mailbox: str,
    seq: int,
    info: MessageInfo,
    flags: set[str],
    req: FetchRequest,
) -> Fetched:
    """Render ``* seq FETCH (...)`` for one message (blocking)."""
    return _build_one(store, user, mailbox, seq, info, flags, req, None, None)


def _build_one(
    store: MailStore,
    user: str,
    mailbox: str,
    seq: int,
    info: MessageInfo,
    flags: set[str],
    req: FetchRequest,
    summaries: dict[int, bytes] | None,
    paths: dict[int, Path] | None,
) -> Fetched:
    out = Fetched()
    try:
        summary: Summary | None = None
        if needs_disk(req.atts):
            if summaries is None:
                data = store.summary(user, mailbox, info.uid)
            elif info.uid in summaries:
                data = summaries[info.uid]
            else:
                raise MessageNotFound(f"{mailbox} UID {info.uid}")
            summary = load_summary(data)
        if needs_file(req.atts):
            out.fh = _open_file(store, user, mailbox, info.uid, paths)
        _render(seq, info, flags, req, summary, out)
    except BaseException:
        out.close()
        raise
    return out


def _open_file(
    store: MailStore, user: str, mailbox: str, uid: int, paths: dict[int, Path] | None
) -> BinaryIO:
    path = paths.get(uid) if paths is not None else None
    if path is not None:
        try:
            return path.open("rb")
        except FileNotFoundError:
            pass  # flags changed (renamed) since the paths were read
    return store.open_message(user, mailbox, uid)


def _render(
    seq: int,
    info: MessageInfo,
    flags: set[str],
    req: FetchRequest,
    summary: Summary | None,
    out: Fetched,
) -> None:
    items: list[list[Piece]] = []
    names = {a.name for a in req.atts}
    if req.with_uid and "UID" not in names:
        items.append([b"UID %d" % info.uid])
    for att in req.atts:
        items.append(_item(att, info, flags, summary, out.fh, req))
    if req.with_modseq and "MODSEQ" not in names:
        items.append([b"MODSEQ (%d)" % info.modseq])
    out.pieces.append(b"* %d FETCH (" % seq)
    for i, item in enumerate(items):
        if i:
            out.pieces.append(b" ")
        out.pieces += item
    out.pieces.append(b")\r\n")


def _item(
    att: FetchAtt,
    info: MessageInfo,
    flags: set[str],
    summary: Summary | None,
    fh: BinaryIO | None,
    req: FetchRequest,
) -> list[Piece]:
    name = att.name
    if name == "UID":
        return [b"UID %d" % info.uid]
    if name == "FLAGS":
        return [b"FLAGS " + wire.flags(flags)]
    if name == "INTERNALDATE":
        return [b"INTERNALDATE " + wire.internal_date(info.internal_date)]
    if name == "RFC822.SIZE":
        return [b"RFC822.SIZE %d" % info.size]
    if name == "SAVEDATE":  # RFC 8514 4.2: the date the message was saved in this mailbox
        return [b"SAVEDATE " + wire.internal_date(save_date(info))]
    if name == "MODSEQ":  # RFC 7162 3.1.4
        return [b"MODSEQ (%d)" % info.modseq]
    assert summary is not None
    if name == "ENVELOPE":
        return [b"ENVELOPE " + wire.envelope(summary.message.envelope, req.utf8)]
    if name in ("BODY", "BODYSTRUCTURE") and att.section is None:
        extended = name == "BODYSTRUCTURE"
        return [name.encode() + b" " + wire.body_structure(summary.root, extended, req.utf8)]
    assert fh is not None
    size = os.fstat(fh.fileno()).st_size
    if name == "PREVIEW":  # RFC 8970 3.1: PREVIEW nstring (never NIL: computed here)
        return [b"PREVIEW " + wire.string(_preview(summary, fh), req.utf8)]
    if name == "RFC822":
        return _literal(b"RFC822", fh, 0, size)
    if name == "RFC822.HEADER":
        return _literal(b"RFC822.HEADER", fh, 0, summary.root.body_start)
    if name == "RFC822.TEXT":
        return _literal(b"RFC822.TEXT", fh, summary.root.body_start, size - summary.root.body_start)
    assert att.section is not None
    if name in ("BINARY", "BINARY.SIZE"):
        return _binary(att, summary, fh, size)
    return _body_section(att, att.section, summary, fh, size)


def _label(att: FetchAtt, start: int | None = None) -> bytes:
    assert att.section is not None
    label = f"{att.name}[{att.section.render()}]"
    if start is not None:
        label += f"<{start}>"
    return label.encode()


def _body_section(
    att: FetchAtt, section: Section, summary: Summary, fh: BinaryIO, size: int
) -> list[Piece]:
    try:
        node = summary.find(section.part) if section.part else None
    except NoSuchPart:
        return [_label(att, att.partial[0] if att.partial else None) + b" NIL"]
    text = section.text
    if node is None:  # the whole message
        root = summary.root
        header = (0, root.body_start)
        body = (root.body_start, size - root.body_start)
        whole = (0, size)
    else:
        inner: Part | None = node.message.part if node.message is not None else None
        header = (inner.header_start, inner.body_start - inner.header_start) if inner else (0, 0)
        body = (inner.body_start, inner.body_end - inner.body_start) if inner else (0, 0)
        whole = (node.body_start, node.body_size)
        if text == "MIME":  # RFC 9051 6.4.5: the part's own MIME header
            whole = (node.header_start, node.body_start - node.header_start)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        fh.seek(header[0])
        data = _filter_header(fh.read(header[1]), section.fields, text == "HEADER.FIELDS")
        return _data(att, data)
    start, length = {"HEADER": header, "TEXT": body}.get(text, whole)
    if att.partial is not None:
        offset, count = att.partial
        skip = min(offset, length)
        return _literal(_label(att, offset), fh, start + skip, min(count, length - skip))
    return _literal(_label(att), fh, start, length)


def _data(att: FetchAtt, data: bytes) -> list[Piece]:
    if att.partial is not None:
        offset, count = att.partial
        data = data[offset : offset + count]
        return [_label(att, offset) + b" " + b"{%d}\r\n" % len(data) + data]
    return [_label(att) + b" " + b"{%d}\r\n" % len(data) + data]


def _literal(label: bytes, fh: BinaryIO, start: int, length: int) -> list[Piece]:
    length = max(0, length)
    if length > STREAM_THRESHOLD:
        return [label + b" {%d}\r\n" % length, FileRange(fh, start, length)]
    fh.seek(start)
    data = fh.read(length)
    return [label + b" {%d}\r\n" % len(data) + data]


_FIELD_START = re.compile(rb"^([^\s:]+)[ \t]*:")


def _filter_header(header: bytes, names: Sequence[str], keep: bool) -> bytes:
    """RFC 9051 6.4.5: HEADER.FIELDS / HEADER.FIELDS.NOT (with the blank line)."""
    wanted = {n.lower() for n in names}
    out: list[bytes] = []
    take = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        match = _FIELD_START.match(line)
        if match and line[:1] not in (b" ", b"\t"):
            name = match.group(1).decode("ascii", "replace").lower()
            take = (name in wanted) == keep
        if take:
            out.append(line if line.endswith(b"\n") else line + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


_QP_LINE = re.compile(rb"([^\r\n]*)(\r\n|\n|\r(?!\n)|$)")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_qp(raw: bytes) -> bytes:
    """RFC 2045 6.7 quoted-printable: trailing whitespace of a line is deleted (rule 3),
    a line ending in "=" (whitespace after it allowed) is a soft line break (rule 5);
    "=XY" is the octet; any other "=" is kept as is (robustness, 6.7 note 2)."""
    out: list[bytes] = []
    for match in _QP_LINE.finditer(raw):
        line, newline = match.group(1), match.group(2)
        if not line and not newline:
            break
        line = line.rstrip(b" \t")
        if line.endswith(b"="):
            line, newline = line[:-1], b""
        out.append(_QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), line) + newline)
    return b"".join(out)


def _preview(summary: Summary, fh: BinaryIO) -> str:
    part = preview.choose_part(summary.root)
    if part is None:
        return ""
    fh.seek(part.body_start)
    raw = fh.read(min(part.body_size, preview.PREVIEW_SCAN))
    try:
        data = decode_part(part, raw)
    except ImapError:
        data = raw
    return preview.render(part, data)


def decode_part(part: Part, raw: bytes) -> bytes:
    """RFC 3516 4.2: undo the Content-Transfer-Encoding."""
    encoding = part.encoding
    if encoding in ("7bit", "8bit", "binary", ""):
        return raw
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except binascii.Error as exc:
            raise ImapError("Cannot decode base64 content", "UNKNOWN-CTE") from exc
    if encoding == "quoted-printable":
        return decode_qp(raw)
    raise ImapError(f"Unknown transfer encoding {encoding}", "UNKNOWN-CTE")


def _binary(att: FetchAtt, summary: Summary, fh: BinaryIO, size: int) -> list[Piece]:
    assert att.section is not None
    if not att.section.part:
        start, length = 0, size
        data = b""
        fh.seek(start)
        data = fh.read(length)
    else:
        try:
            node = summary.find(att.section.part)
        except NoSuchPart as exc:
            raise ImapError("No such part", "NONEXISTENT") from exc
        if node.children:
            raise ImapError("Cannot decode a multipart", "UNKNOWN-CTE")
        fh.seek(node.body_start)
        raw = fh.read(node.body_size)
        data = decode_part(node, raw)  # RFC 3516 4.2; a message/rfc822 part is 7bit/8bit/binary
    if att.name == "BINARY.SIZE":  # RFC 3516 4.3
        return [_label(att) + b" %d" % len(data)]
    offset = None
    if att.partial is not None:
        offset, count = att.partial
        data = data[offset : offset + count]
    marker = b"~" if b"\x00" in data else b""  # RFC 3516 4.1: literal8 for NUL octets
    return [_label(att, offset) + b" " + marker + b"{%d}\r\n" % len(data) + data]
