"""Make a message with NUL octets legal for BODY[] (RFC 9051 4.3: a literal carries no
NUL; only a literal8 may, and only BINARY[] answers with one).

APPEND accepts a literal8 (RFC 3516 4.4) whose parts may hold NUL. Like Dovecot, such a
message is stored re-encoded: each leaf part whose body holds NUL and whose
Content-Transfer-Encoding is an identity one (7bit, 8bit, binary or none) becomes
base64, so BODY[] is a legal literal and BINARY[] decodes the original octets back. A NUL
that no re-encoding can carry (a header, a preamble, a base64/QP body) becomes 0x80,
the octet Dovecot shows in its place.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from appliance.mime.summary import summarize_file

_IDENTITY = frozenset({"7bit", "8bit", "binary", ""})
_CTE_FIELD = re.compile(rb"^content-transfer-encoding[ \t]*:.*(?:\r?\n[ \t].*)*\r?\n?", re.I | re.M)
LINE = 76  # RFC 2045 6.8: encoded lines of at most 76 characters


def _leaves(part: dict[str, Any]) -> list[dict[str, Any]]:
    if part.get("c"):
        return [leaf for child in part["c"] for leaf in _leaves(child)]
    if part.get("m"):
        return _leaves(part["m"]["part"])
    return [part]


CHUNK = 57 * 1024  # whole 57-octet groups: every 76-character base64 line stays full
SCAN_BLOCK = 1 << 20
MAX_HEADER = 1 << 20  # a part header is copied in memory; the summary bounds its fields


def _copy(src: BinaryIO, dst: BinaryIO, start: int, end: int) -> None:
    """[start, end) of ``src`` to ``dst``, a NUL becoming 0x80 (Dovecot's stand-in)."""
    src.seek(start)
    left = end - start
    while left > 0:
        block = src.read(min(SCAN_BLOCK, left))
        if not block:
            break
        left -= len(block)
        dst.write(block.replace(b"\x00", b"\x80"))


def _holds_nul(src: BinaryIO, start: int, end: int) -> bool:
    src.seek(start)
    left = end - start
    while left > 0:
        block = src.read(min(SCAN_BLOCK, left))
        if not block:
            return False
        if b"\x00" in block:
            return True
        left -= len(block)
    return False


def _write_base64(src: BinaryIO, dst: BinaryIO, start: int, end: int) -> None:
    src.seek(start)
    left = end - start
    first = True
    while left > 0:
        block = src.read(min(CHUNK, left))
        if not block:
            break
        left -= len(block)
        text = base64.b64encode(block)
        for i in range(0, len(text), LINE):
            if not first:
                dst.write(b"\r\n")
            dst.write(text[i : i + LINE])
            first = False


def _header(header: bytes) -> bytes:
    """The part header with its Content-Transfer-Encoding replaced by base64."""
    header = _CTE_FIELD.sub(b"", header)
    if header.endswith(b"\r\n\r\n") or header == b"\r\n":
        end = len(header) - 2  # before the blank line
    elif header.endswith(b"\n\n") or header == b"\n":
        end = len(header) - 1
    else:  # no blank line (the header ran into a boundary)
        if header and not header.endswith(b"\n"):
            header += b"\r\n"
        end = len(header)
    header = header.replace(b"\x00", b"\x80")
    return header[:end] + b"Content-Transfer-Encoding: base64\r\n" + header[end:]


def _rewrite(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy ``src`` to ``dst`` with every NUL-holding identity-encoded leaf in base64."""
    src.seek(0)
    summary = summarize_file(src)
    size = summary["size"]
    pos = 0
    for leaf in sorted(_leaves(summary["part"]), key=lambda p: p["hs"]):
        hs, bs, be = leaf["hs"], leaf["bs"], leaf["be"]
        if leaf.get("e", "7bit") not in _IDENTITY or hs < pos or bs - hs > MAX_HEADER:
            continue
        if not _holds_nul(src, bs, be):
            continue
        _copy(src, dst, pos, hs)
        src.seek(hs)
        dst.write(_header(src.read(bs - hs)))
        _write_base64(src, dst, bs, be)
        if be == size:
            dst.write(b"\r\n")
        pos = be
    _copy(src, dst, pos, size)


def encode_nul_parts(data: bytes) -> bytes | None:
    """``data`` rewritten so it holds no NUL (None when it holds none already)."""
    if b"\x00" not in data:
        return None
    out = io.BytesIO()
    _rewrite(io.BytesIO(data), out)
    return out.getvalue()


def rewrite_file_without_nul(path: Path) -> bool:
    """Rewrite the message file at ``path`` when it holds NUL (blocking; the file is an
    APPEND literal's own spool copy). Memory stays bounded: both passes stream. True
    when it was rewritten."""
    with path.open("rb") as src:
        if not _holds_nul(src, 0, os.fstat(src.fileno()).st_size):
            return False
        fd, name = tempfile.mkstemp(prefix=".nul-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as dst:
                _rewrite(src, dst)
            os.replace(name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
    return True
