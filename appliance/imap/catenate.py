"""CATENATE (RFC 4469): APPEND a message built from TEXT literals and URLs naming stored
messages or parts of them (RFC 5092 IMAP URLs, URL-PARTIAL of RFC 5550).

URLs are relative, as Dovecot 2.3 takes them: ``/mailbox[;UIDVALIDITY=n]/;UID=n`` or,
with a mailbox selected, ``;UID=n`` (also ``/;UID=n``), each optionally followed by
``/;SECTION=<fetch section>`` and ``/;PARTIAL=start[.length]``. A URL's data is what
``BODY.PEEK[section]<partial>`` returns. The message is written to a spooled temporary
file (under the session's spool dir, swept at start) and then stored like any APPEND
message; it may not grow past the APPEND limit (RFC 4469 5 / RFC 7889: TOOBIG).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote

from appliance.imap import fetch
from appliance.imap.commands import AppendMessage, CatenatePart, FetchAtt, Literal
from appliance.imap.connection import LITERAL_PREFIX
from appliance.imap.cursor import Cursor, ParseError
from appliance.imap.errors import ImapError
from appliance.imap.parser import fetch_att
from appliance.store.base import MailStore, MessageInfo, MessageNotFound, StoreError

if TYPE_CHECKING:
    from appliance.imap.session import Session

COPY_CHUNK = 64 * 1024
_URL = re.compile(
    r"(?:/(?P<mailbox>[^;]*?)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9]\d{0,9}))?)?/?"
    r";UID=(?P<uid>[1-9]\d{0,9})"
    r"(?:/;SECTION=(?P<section>[^/;]+))?"
    r"(?:/;PARTIAL=(?P<start>\d{1,10})(?:\.(?P<length>[1-9]\d{0,9}))?)?",
    re.IGNORECASE,
)
_RESP_UNSAFE = re.compile(r"[^\x21-\x5c\x5e-\x7e]")  # RFC 4469 5 (errata 2002): no "]"


@dataclass(frozen=True)
class ImapUrl:
    mailbox: str | None  # as on the wire (percent-decoded); None: the selected mailbox
    uidvalidity: int | None
    uid: int
    att: FetchAtt  # BODY.PEEK[section]<partial>


def _badurl(url: str, text: str) -> ImapError:
    # RFC 4469 5: NO [BADURL url] (the URL as given, minus what the code cannot carry)
    return ImapError(text, "BADURL " + (_RESP_UNSAFE.sub("", url)[:200] or "/"))


def parse_url(url: str) -> ImapUrl:
    match = _URL.fullmatch(url)
    if match is None:
        raise _badurl(url, "Invalid or unsupported IMAP URL (a relative URL is required)")
    section = unquote(match.group("section") or "")
    spec = b"BODY.PEEK[" + section.encode("utf-8", "replace") + b"]"
    if match.group("start") is not None:
        length = int(match.group("length") or 2**31 - 1)
        spec += b"<%d.%d>" % (int(match.group("start")), length)
    try:
        cur = Cursor([spec])
        att = fetch_att(cur)
        if not cur.at_end():
            raise ParseError("trailing data")
    except ParseError:
        raise _badurl(url, "Invalid SECTION or PARTIAL in IMAP URL") from None
    raw_mailbox = match.group("mailbox")
    mailbox = unquote(raw_mailbox) if raw_mailbox else None  # RFC 5092 3: %-encoded
    uidvalidity = int(match.group("uidvalidity")) if match.group("uidvalidity") else None
    return ImapUrl(mailbox, uidvalidity, int(match.group("uid")), att)


def _copy_url(
    store: MailStore, user: str, mailbox: str, target: ImapUrl, out: BinaryIO, budget: int
) -> int:
    """Append the URL's data to ``out`` (blocking); returns the bytes written."""
    info = MessageInfo(target.uid, 0, frozenset(), 0.0, 0, "")
    req = fetch.FetchRequest((target.att,))
    built = fetch.build(store, user, mailbox, 1, info, set(), req)
    try:
        item = built.pieces[1:-1]  # between "* 1 FETCH (" and ")\r\n"
        head = item[0]
        assert isinstance(head, bytes)
        if head.endswith(b" NIL"):
            raise MessageNotFound("no such part")
        _, _, data = head.partition(b"}\r\n")
        written = 0
        for piece in [data, *item[1:]]:
            if isinstance(piece, bytes):
                chunks = [piece]
            else:
                piece.fh.seek(piece.start)
                chunks = _read_range(piece.fh, piece.length)
            for chunk in chunks:
                written += len(chunk)
                if written > budget:
                    raise ImapError("Message too large", "TOOBIG")  # RFC 7889 3
                out.write(chunk)
        return written
    finally:
        built.close()


def _read_range(fh: BinaryIO, length: int) -> list[bytes]:
    out = []
    while length > 0:
        chunk = fh.read(min(COPY_CHUNK, length))
        if not chunk:
            break
        out.append(chunk)
        length -= len(chunk)
    return out


def _copy_text(literal: Literal, out: BinaryIO, budget: int) -> int:
    if literal.size > budget:
        raise ImapError("Message too large", "TOOBIG")  # RFC 7889 3
    if literal.data is not None:
        out.write(literal.data)
        return len(literal.data)
    assert literal.path is not None
    with literal.path.open("rb") as fh:
        for chunk in _read_range(fh, literal.size):
            out.write(chunk)
    return literal.size


def _assemble(
    store: MailStore,
    user: str,
    parts: list[tuple[CatenatePart, ImapUrl | None, str | None]],
    spool: Path,
    limit: int,
) -> tuple[Path, int]:
    """Write the parts to a new spool file (blocking); on any error the file is removed."""
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=LITERAL_PREFIX + "cat-", dir=spool)
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            for part, target, mailbox in parts:
                if part.text is not None:
                    size += _copy_text(part.text, out, limit - size)
                    continue
                assert target is not None and mailbox is not None
                if target.uidvalidity is not None:
                    status = store.status(user, mailbox)
                    if status.uidvalidity != target.uidvalidity:
                        raise _badurl(part.url, "Invalid UIDVALIDITY")
                try:
                    size += _copy_url(store, user, mailbox, target, out, limit - size)
                except (MessageNotFound, FileNotFoundError):
                    raise _badurl(part.url, "Message not found") from None
                except StoreError:
                    raise _badurl(part.url, "Mailbox does not exist") from None
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path, size


async def build(s: Session, message: AppendMessage) -> AppendMessage:
    """The APPEND message a CATENATE describes, spooled to a file the session removes."""
    resolved: list[tuple[CatenatePart, ImapUrl | None, str | None]] = []
    for part in message.parts:
        if part.text is not None:
            resolved.append((part, None, None))
            continue
        target = parse_url(part.url)
        if target.mailbox is not None:
            try:
                mailbox = s.mailbox_in(target.mailbox)
            except ImapError:
                raise _badurl(part.url, "Invalid mailbox name in IMAP URL") from None
        elif s.selected is not None:
            mailbox = s.selected.name
        else:
            raise _badurl(part.url, "Mailbox-relative IMAP URL, but no mailbox selected")
        resolved.append((part, target, mailbox))
    limit = s.config.limits.max_message_size
    path, size = await s.run_blocking(_assemble, s.deps.store, s.user, resolved, s.spool_dir, limit)
    s.temp_files.append(str(path))
    return dataclasses.replace(message, literal=Literal(size, path=path), parts=())
