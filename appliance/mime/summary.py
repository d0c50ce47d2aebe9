"""One streaming pass over a stored message -> a compact JSON summary for IMAP.

``summarize(path)`` runs once per message at delivery (in a worker thread) and the
store caches the result. It reads the file line by line, keeping only header blocks
(bounded) and a stack of multipart boundaries, so memory does not grow with the
message. Broken MIME never raises: an unusable Content-Type becomes text/plain
(RFC 2045 5.2), a multipart without a boundary is a text/plain leaf.

Each part records the byte offsets of its header (``hs``..``bs``) and body
(``bs``..``be``) in the file so FETCH BODY[1.2], BODY[1.MIME] and BINARY[...] can
seek instead of parsing again. See :mod:`appliance.mime.model` for the reader side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from appliance.mime.addresses import parse_addresses
from appliance.mime.headers import (
    base_subject,
    decode_words,
    message_ids,
    parse_date,
    split_params,
    to_text,
    unfold,
)
from appliance.mime.model import VERSION

CHUNK = 65536
MAX_HEADER_BYTES = 256 * 1024
MAX_DEPTH = 40
ENVELOPE_FIELDS = (
    "date",
    "subject",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "in-reply-to",
    "message-id",
)
_ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})


@dataclass(frozen=True)
class _Term:
    """How a body ended: at a boundary of the stack (index, close?) or at EOF (None).

    ``newlines`` counts the newlines in the file before ``body_end`` (for line counts)."""

    index: int | None
    close: bool
    body_end: int
    newlines: int


DRAIN_BLOCK = 1 << 16


class _Reader:
    """Lines (or CHUNK-sized pieces of very long lines) with their file offsets."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.pos = 0
        self.at_line_start = True
        self._pushed: tuple[int, bytes, bool] | None = None
        self.newlines = 0  # newlines in the file before self.pos
        self.cur = (0, 0)  # (length, newline length) of the last piece read from the file
        self.prev = (0, 0)  # ... and of the piece before it

    def next(self) -> tuple[int, bytes, bool] | None:
        """(offset, piece, starts_a_line) or None at EOF."""
        if self._pushed is not None:
            item, self._pushed = self._pushed, None
            return item
        piece = self.fh.readline(CHUNK)
        if not piece:
            return None
        item = (self.pos, piece, self.at_line_start)
        self.pos += len(piece)
        nl = 2 if piece.endswith(b"\r\n") else 1 if piece.endswith(b"\n") else 0
        self.newlines += 1 if nl else 0
        self.prev, self.cur = self.cur, (len(piece), nl)
        self.at_line_start = nl > 0
        return item

    def drain(self) -> None:
        """Read to EOF in blocks, keeping only the counts: the body of a single-part
        message needs nothing else, and line-by-line reading was most of its cost."""
        self._pushed = None  # already counted in pos and newlines when it was read
        last = b""
        while block := self.fh.read(DRAIN_BLOCK):
            self.pos += len(block)
            self.newlines += block.count(b"\n")
            last = block
        if last:
            nl = 2 if last.endswith(b"\r\n") else 1 if last.endswith(b"\n") else 0
            self.prev, self.cur = self.cur, (0, nl)
            self.at_line_start = nl > 0

    def newlines_before_next(self) -> int:
        pushed = self._pushed
        return self.newlines - (1 if pushed is not None and pushed[1].endswith(b"\n") else 0)

    def push(self, item: tuple[int, bytes, bool]) -> None:
        self._pushed = item


def _lines(start: int, newlines_at_start: int, term: _Term) -> int:
    """Text lines in [start, term.body_end): the newlines in it (as Dovecot counts)."""
    if term.body_end <= start:
        return 0
    return term.newlines - newlines_at_start


def _boundary_of(line: bytes, boundaries: tuple[bytes, ...]) -> tuple[int, bool] | None:
    if not line.startswith(b"--"):
        return None
    for index in range(len(boundaries) - 1, -1, -1):
        delim = b"--" + boundaries[index]
        if line.startswith(delim):
            rest = line[len(delim) :].rstrip(b" \t\r\n")
            if rest == b"":  # RFC 2046 5.1.1: delimiter line, transport padding allowed
                return index, False
            if rest.startswith(b"--"):  # RFC 2046 5.1.1: close delimiter
                return index, True
    return None


def _scan_body(reader: _Reader, start: int, boundaries: tuple[bytes, ...]) -> _Term:
    """Skip body lines up to the next boundary of the stack (or EOF)."""
    if not boundaries:  # nothing can end this body before EOF
        reader.drain()
        return _Term(None, False, reader.pos, reader.newlines)
    while True:
        item = reader.next()
        if item is None:
            return _Term(None, False, reader.pos, reader.newlines)
        offset, piece, line_start = item
        found = _boundary_of(piece, boundaries) if line_start and boundaries else None
        if found is not None:
            # RFC 2046 5.1.1: the CRLF before the boundary belongs to the boundary.
            prev_nl = reader.prev[1]
            before = reader.newlines - (1 if reader.cur[1] else 0)
            end = offset - prev_nl
            if end < start:
                return _Term(found[0], found[1], start, before)
            return _Term(found[0], found[1], end, before - (1 if prev_nl else 0))


def _read_headers(
    reader: _Reader, boundaries: tuple[bytes, ...]
) -> tuple[list[tuple[str, bytes]], int]:
    """Header fields (name lower-cased, raw unfolded value) and the body start offset."""
    fields: list[tuple[str, bytes]] = []
    kept = 0
    current: list[bytes] | None = None
    first = True
    header_start: int | None = None
    while True:
        item = reader.next()
        if item is None:
            break
        offset, piece, line_start = item
        header_start = offset if header_start is None else header_start
        if line_start and boundaries and _boundary_of(piece, boundaries) is not None:
            reader.push(item)  # a boundary inside the header: the header ends here
            if current is not None:
                fields.append(_field(current))
            # RFC 2046 5.1.1: the CRLF before the boundary belongs to the boundary, not
            # to the header (BODY[n.MIME] ends before it, as Dovecot answers).
            return fields, max(header_start, offset - reader.prev[1])
        if line_start and piece in (b"\r\n", b"\n"):
            body_start = offset + len(piece)
            peek = reader.next()
            if peek is not None:
                reader.push(peek)
                if boundaries and peek[2] and _boundary_of(peek[1], boundaries) is not None:
                    # RFC 2046 5.1.1: an empty body; this CRLF is the boundary's, so the
                    # header ends before it (BODY[n.MIME], n.HEADER as Dovecot answers).
                    body_start = offset
            if current is not None:
                fields.append(_field(current))
            return fields, body_start
        if not line_start or piece[:1] in (b" ", b"\t"):
            if current is not None and kept < MAX_HEADER_BYTES:
                current.append(piece)
                kept += len(piece)
            continue
        if current is not None:
            fields.append(_field(current))
            current = None
        name, colon, _ = piece.partition(b":")
        if colon and name and b" " not in name.strip() and kept < MAX_HEADER_BYTES:
            current = [piece]
            kept += len(piece)
        elif first and piece.startswith(b"From "):
            pass  # an mbox "From " line before the header
        first = False
    if current is not None:
        fields.append(_field(current))
    return fields, reader.pos


def _field(pieces: list[bytes]) -> tuple[str, bytes]:
    raw = b"".join(pieces)
    name, _, value = raw.partition(b":")
    return name.strip().decode("ascii", "replace").lower(), unfold(value)


def _first(fields: list[tuple[str, bytes]], name: str) -> bytes | None:
    return next((v for k, v in fields if k == name), None)


def _envelope(fields: list[tuple[str, bytes]]) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for name in ENVELOPE_FIELDS:
        raw = _first(fields, name)
        if raw is None:
            env[name] = None
        elif name in _ADDRESS_FIELDS:
            # A repeated To/Cc/... field (RFC 5322 3.6 allows one) is merged, as Dovecot does.
            merged = [a for k, v in fields if k == name for a in parse_addresses(to_text(v))]
            env[name] = merged or None
        elif name in ("in-reply-to", "message-id"):
            env[name] = to_text(raw)
        else:
            env[name] = to_text(raw)
    # RFC 9051 7.5.2: Sender and Reply-To default to From.
    for name in ("sender", "reply-to"):
        if env[name] is None:
            env[name] = env["from"]
    return env


def _content(fields: list[tuple[str, bytes]], default: tuple[str, str]) -> dict[str, Any]:
    raw = _first(fields, "content-type")
    ctype, subtype = default
    params: list[tuple[str, str]] = []
    if raw is not None:
        head, parsed = split_params(to_text(raw))
        main, slash, sub = head.partition("/")
        main, sub = main.strip().lower(), sub.strip().lower()
        if slash and main and sub and " " not in main + sub:
            ctype, subtype, params = main, sub, parsed
        else:  # RFC 2045 5.2: an unusable Content-Type means text/plain; us-ascii
            ctype, subtype, params = "text", "plain", []
    if ctype == "text" and not any(k == "charset" for k, _ in params):
        params.append(("charset", "us-ascii"))
    part: dict[str, Any] = {"t": ctype, "s": subtype, "p": params}
    cid = _first(fields, "content-id")
    part["id"] = to_text(cid) if cid is not None else None
    desc = _first(fields, "content-description")
    part["ds"] = to_text(desc) if desc is not None else None
    enc = _first(fields, "content-transfer-encoding")
    part["e"] = to_text(enc).strip().lower() if enc else "7bit"
    disp = _first(fields, "content-disposition")
    if disp is not None:
        dtype, dparams = split_params(to_text(disp))
        part["dp"] = [dtype.lower(), dparams] if dtype else None
    else:
        part["dp"] = None
    lang = _first(fields, "content-language")
    part["la"] = [x.strip() for x in to_text(lang).split(",") if x.strip()] if lang else None
    loc = _first(fields, "content-location")
    part["lo"] = to_text(loc) if loc is not None else None
    md5 = _first(fields, "content-md5")
    part["md5"] = to_text(md5) if md5 is not None else None
    return part


def _entity(
    reader: _Reader,
    boundaries: tuple[bytes, ...],
    default: tuple[str, str],
    depth: int,
) -> tuple[dict[str, Any], list[tuple[str, bytes]], _Term]:
    item = reader.next()
    header_start = reader.pos if item is None else item[0]
    if item is not None:
        reader.push(item)
    fields, body_start = _read_headers(reader, boundaries)
    newlines_at_start = reader.newlines_before_next()
    part = _content(fields, default)
    part["hs"] = header_start
    part["bs"] = body_start
    boundary = dict(part["p"]).get("boundary", "") if part["t"] == "multipart" else ""
    if part["t"] == "multipart" and (not boundary or depth >= MAX_DEPTH):
        part.update(t="text", s="plain", p=[("charset", "us-ascii")])
    if part["t"] == "multipart":
        term = _multipart(reader, part, boundaries, boundary.encode("utf-8"), depth)
    elif part["t"] == "message" and part["s"] in ("rfc822", "global") and depth < MAX_DEPTH:
        # RFC 9051 7.5.2 body-type-msg: "message" "rfc822" always carries an envelope, a
        # body and a line count. One sent base64/QP (RFC 2046 5.2.1 forbids it) is parsed
        # as it stands, as Dovecot does; BINARY[n] still decodes it.
        inner, inner_fields, term = _entity(reader, boundaries, ("text", "plain"), depth + 1)
        part["m"] = {"env": _envelope(inner_fields), "part": inner}
        part["ln"] = _lines(body_start, newlines_at_start, term)
    else:
        term = _scan_body(reader, body_start, boundaries)
        part["ln"] = _lines(body_start, newlines_at_start, term)
    part["be"] = term.body_end
    return part, fields, term


def _multipart(
    reader: _Reader,
    part: dict[str, Any],
    boundaries: tuple[bytes, ...],
    boundary: bytes,
    depth: int,
) -> _Term:
    stack = (*boundaries, boundary)
    mine = len(stack) - 1
    child_default = ("message", "rfc822") if part["s"] == "digest" else ("text", "plain")
    children: list[dict[str, Any]] = []
    part["c"] = children
    term = _scan_body(reader, part["bs"], stack)  # the preamble
    while term.index == mine and not term.close:
        child, _, term = _entity(reader, stack, child_default, depth + 1)
        children.append(child)
    if term.index == mine:  # after the close delimiter: the epilogue
        term = _scan_body(reader, reader.pos, boundaries)
    if not children:  # RFC 9051 7.5.2 needs at least one part: an empty text/plain
        pos = part["bs"]
        children.append(
            {
                "t": "text",
                "s": "plain",
                "p": [("charset", "us-ascii")],
                "id": None,
                "ds": None,
                "e": "7bit",
                "dp": None,
                "la": None,
                "lo": None,
                "md5": None,
                "hs": pos,
                "bs": pos,
                "be": pos,
                "ln": 0,
            }
        )
    return term


def _extras(fields: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Header values SORT, THREAD and SEARCH use often."""

    def display(name: str) -> list[str] | None:
        raw = _first(fields, name)
        if raw is None:
            return None
        addrs = [a for a in parse_addresses(decode_words(raw)) if a[2] is not None]
        if not addrs:
            return None
        a = addrs[0]
        if a[3] is None:  # a group first: its name is both (as Dovecot sorts it)
            return [a[2] or "", (a[2] or "").lower()]
        spec = f"{a[2]}@{a[3]}"
        return [a[0] or spec, (a[2] or "").lower()]  # RFC 5957 display, RFC 5256 mailbox

    subject = _first(fields, "subject")
    date = _first(fields, "date")
    refs = _first(fields, "references")
    irt = _first(fields, "in-reply-to")
    mid = _first(fields, "message-id")
    mids = message_ids(to_text(mid)) if mid is not None else []
    irts = message_ids(to_text(irt)) if irt is not None else []
    return {
        "date": parse_date(to_text(date)) if date is not None else None,
        "subject": base_subject(decode_words(subject)) if subject is not None else "",
        "from": display("from"),
        "to": display("to"),
        "cc": display("cc"),
        "mid": mids[0] if mids else None,
        "refs": message_ids(to_text(refs)) if refs is not None else [],
        "irt": irts[0] if irts else None,
    }


def summarize_file(fh: BinaryIO) -> dict[str, Any]:
    reader = _Reader(fh)
    part, fields, _ = _entity(reader, (), ("text", "plain"), 0)
    return {
        "v": VERSION,
        "size": reader.pos,
        "env": _envelope(fields),
        "part": part,
        "x": _extras(fields),
    }


def summarize(path: Path) -> bytes:
    """Parse ``path`` once and return the serialized summary (never raises on bad MIME)."""
    with path.open("rb") as fh:
        data = summarize_file(fh)
    return json.dumps(data, separators=(",", ":")).encode("ascii")


_CURRENT = b'{"v":%d,' % VERSION  # summarize() writes "v" first, without spaces


def is_current(data: bytes) -> bool:
    """Whether a cached summary was made by this version of the parse."""
    return data.startswith(_CURRENT)
