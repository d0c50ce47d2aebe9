"""The wire form of a queued message: what is signed (DKIM) and sent (DATA)."""

from __future__ import annotations

import re

_LINE_END = re.compile(rb"\r\n|\r|\n")


MAX_LINE = 998  # RFC 5322 2.1.1 / RFC 5321 4.5.3.1.6: octets per line without CRLF


def _break_line(line: bytes, joiner: bytes) -> bytes:
    step = MAX_LINE - len(joiner) + 2
    parts = [line[:MAX_LINE]]
    parts += [line[i : i + step] for i in range(MAX_LINE, len(line), step)]
    return joiner.join(parts)


def wire_form(data: bytes) -> bytes:
    """The wire form, which is also what DKIM signs: CRLF line ends (RFC 5322 2.1) and no
    line over 998 octets (RFC 5321 4.5.3.1.6): long header lines are folded (CRLF SP),
    long body lines broken (CRLF), as receivers refuse longer lines."""
    lines = _LINE_END.sub(b"\r\n", data).split(b"\r\n")
    if all(len(line) <= MAX_LINE for line in lines):
        return b"\r\n".join(lines)
    out: list[bytes] = []
    in_header = True
    for line in lines:
        if in_header and line == b"":
            in_header = False
        if len(line) > MAX_LINE:
            line = _break_line(line, b"\r\n " if in_header else b"\r\n")
        out.append(line)
    return b"\r\n".join(out)
