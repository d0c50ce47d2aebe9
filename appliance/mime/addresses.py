"""RFC 5322 3.4 address lists -> IMAP ENVELOPE address tuples (tolerant of junk).

An address is ``[name, adl, mailbox, host]`` (None for NIL). A group is written the
way RFC 9051 7.5.2 wants it: ``[None, None, "group name", None]`` before its members
and ``[None, None, None, None]`` after them.
"""

from __future__ import annotations

from collections.abc import Iterator

Address = list[str | None]

MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"
_SPECIALS = "<>@,;:"


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Yield (kind, value): kind is 'q' quoted string, 's' special, 'a' atom/dot-atom,
    'l' domain literal, 'c' comment (its text: quoted-pairs undone, nested parentheses
    kept, whitespace runs made one space, edges trimmed, as Dovecot and c-client do)."""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "(":
            depth = 0
            buf: list[str] = []
            while i < n:
                c = text[i]
                if c == "\\" and i + 1 < n:
                    i += 1
                    buf.append(text[i])
                elif c == "(":
                    depth += 1
                    if depth > 1:
                        buf.append(c)
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                    buf.append(c)
                else:
                    buf.append(c)
                i += 1
            i += 1
            yield "c", " ".join("".join(buf).split())
        elif ch == '"':
            buf = []
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(text[i])
                i += 1
            i += 1
            yield "q", "".join(buf)
        elif ch == "[":
            end = text.find("]", i)
            end = n - 1 if end < 0 else end
            yield "l", text[i : end + 1]
            i = end + 1
        elif ch in _SPECIALS:
            yield "s", ch
            i += 1
        else:
            start = i
            while i < n and text[i] not in _SPECIALS and text[i] not in ' \t\r\n"(':
                i += 1
            yield "a", text[start:i]


def _plain(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [t for t in tokens if t[0] != "c"]


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str | None, str, str]:
    """[route:]local@domain tokens -> (adl, mailbox, host)."""
    adl: str | None = None
    if tokens and tokens[0] == ("s", "@"):
        colon = next((i for i, t in enumerate(tokens) if t == ("s", ":")), None)
        if colon is not None:
            adl = "".join(v for _, v in tokens[:colon])
            tokens = tokens[colon + 1 :]
    at = max((i for i, t in enumerate(tokens) if t == ("s", "@")), default=-1)
    if at < 0:
        local = "".join(_quote_local(k, v) for k, v in tokens)
        return adl, local or MISSING_MAILBOX, MISSING_DOMAIN
    local = "".join(_quote_local(k, v) for k, v in tokens[:at])
    domain = "".join(v for _, v in tokens[at + 1 :])
    return adl, local or MISSING_MAILBOX, domain or MISSING_DOMAIN


def _quote_local(kind: str, value: str) -> str:
    if kind == "q":
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def _mailbox(tokens: list[tuple[str, str]]) -> Address | None:
    if not _plain(tokens):
        return None
    if ("s", "<") in tokens:
        lt = tokens.index(("s", "<"))
        gt = next((i for i in range(lt, len(tokens)) if tokens[i] == ("s", ">")), len(tokens))
        phrase = " ".join(v for _, v in _plain(tokens[:lt])) or None
        adl, mailbox, host = _addr_spec(_plain(tokens[lt + 1 : gt]))
        return [phrase, adl, mailbox, host]
    # A bare addr-spec: its last comment is the personal name, "user@d (Real Name)"
    # (Dovecot and c-client; comments before the address are not its name).
    first = next(i for i, t in enumerate(tokens) if t[0] != "c")
    comments = [v for k, v in tokens[first:] if k == "c"]
    adl, mailbox, host = _addr_spec(_plain(tokens))
    return [comments[-1] if comments and comments[-1] else None, adl, mailbox, host]


def parse_addresses(text: str) -> list[Address]:
    out: list[Address] = []
    current: list[tuple[str, str]] = []
    in_group = False
    angle = False
    for kind, value in _tokens(text):
        if kind == "s" and value == "<":
            angle = True
        elif kind == "s" and value == ">":
            angle = False
        if kind == "s" and value == ":" and not in_group and not angle:
            if _plain(current)[:1] == [("s", "@")]:  # a route, not a group
                current.append((kind, value))
                continue
            name = " ".join(v for _, v in _plain(current))
            out.append([None, None, name, None])
            current = []
            in_group = True
        elif kind == "s" and value == ";" and in_group and not angle:
            mailbox = _mailbox(current)
            if mailbox:
                out.append(mailbox)
            out.append([None, None, None, None])
            current = []
            in_group = False
        elif kind == "s" and value == "," and not angle:
            mailbox = _mailbox(current)
            if mailbox:
                out.append(mailbox)
            current = []
        else:
            current.append((kind, value))
    mailbox = _mailbox(current)
    if mailbox:
        out.append(mailbox)
    if in_group:
        out.append([None, None, None, None])
    return out


_ATEXT = frozenset("!#$%&'*+-/=?^_`{|}~") | frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)


def _maybe_quote(text: str) -> str:
    if text and all(c in _ATEXT or ord(c) >= 0x80 for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_forms(text: str) -> list[str]:
    """Each address of a list written the way SEARCH FROM/TO/CC/BCC matches it (as
    Dovecot does: the parsed address, not the raw field): ``"Real Name" <user@host>``
    or ``user@host``; a group is ``name: `` (``name:;`` when empty) and ``;``.
    Encoded words stay encoded (the caller decodes the result)."""
    out: list[str] = []
    addrs = parse_addresses(text)
    for i, (name, adl, mailbox, host) in enumerate(addrs):
        if host is None and mailbox is not None:  # group start
            empty = i + 1 < len(addrs) and addrs[i + 1] == [None, None, None, None]
            out.append(_maybe_quote(mailbox) + (":;" if empty else ": "))
        elif host is None:  # group end
            if not (i and addrs[i - 1][3] is None and addrs[i - 1][2] is not None):
                out.append(";")
        elif name or adl:
            shown = (name if "=?" in name else _maybe_quote(name)) + " " if name else ""
            route = adl + ":" if adl else ""
            out.append(f"{shown}<{route}{mailbox}@{host}>")
        else:
            out.append(f"{mailbox}@{host}")
    return out
