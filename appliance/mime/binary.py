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
import io
import re
from pathlib import Path
from typing import Any

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


def _base64(body: bytes) -> bytes:
    text = base64.b64encode(body)
    return b"\r\n".join(text[i : i + LINE] for i in range(0, len(text), LINE))


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
    return header[:end] + b"Content-Transfer-Encoding: base64\r\n" + header[end:]


def encode_nul_parts(data: bytes) -> bytes | None:
    """``data`` rewritten so it holds no NUL (None when it holds none already)."""
    if b"\x00" not in data:
        return None
    summary = summarize_file(io.BytesIO(data))
    out: list[bytes] = []
    pos = 0
    for leaf in sorted(_leaves(summary["part"]), key=lambda p: p["hs"]):
        hs, bs, be = leaf["hs"], leaf["bs"], leaf["be"]
        body = data[bs:be]
        if b"\x00" not in body or leaf.get("e", "7bit") not in _IDENTITY or hs < pos:
            continue
        out.append(data[pos:hs])
        out.append(_header(data[hs:bs]))
        out.append(_base64(body))
        if be == len(data):
            out.append(b"\r\n")
        pos = be
    out.append(data[pos:])
    return b"".join(out).replace(b"\x00", b"\x80")


SCAN_BLOCK = 1 << 20


def rewrite_file_without_nul(path: Path) -> bool:
    """Rewrite the message file at ``path`` in place when it holds NUL (blocking; the
    file is an APPEND literal's own temporary copy). True when it was rewritten."""
    with path.open("rb") as fh:
        while block := fh.read(SCAN_BLOCK):
            if b"\x00" in block:
                break
        else:
            return False
        fh.seek(0)
        data = fh.read()
    rewritten = encode_nul_parts(data)
    if rewritten is None:
        return False
    with path.open("wb") as out:
        out.write(rewritten)
    return True
