"""Modified UTF-7 (RFC 3501 5.1.3): IMAP mailbox names on the wire and Maildir++ folder
names on disk (the encoding Dovecot and Courier use there too)."""

from __future__ import annotations

import base64


def encode(text: str) -> str:
    """Printable ASCII as itself ("&" as "&-"), other runs as "&" + modified BASE64 of
    UTF-16BE + "-"."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def decode(text: str, strict: bool = True) -> str:
    """Modified UTF-7 -> Unicode; raises ValueError on malformed input. ``strict`` also
    refuses 8-bit characters and runs that encode printable ASCII (non-canonical forms a
    client must not send; names written on disk by other tools are read leniently)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if strict and ord(ch) > 0x7E:
            raise ValueError("8-bit character in a modified UTF-7 name")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated modified UTF-7 run")
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                run = base64.b64decode(padded, validate=True).decode("utf-16-be")
            except (ValueError, UnicodeDecodeError):
                raise ValueError("bad modified UTF-7 run") from None
            if strict and any(0x20 <= ord(c) <= 0x7E for c in run):
                raise ValueError("modified UTF-7 run encodes printable ASCII")
            out.append(run)
        i = end + 1
    return "".join(out)
