"""Parsing of SEARCH, SORT and THREAD arguments (RFC 9051 6.4.4, RFC 5256, RFC 4731)."""

from __future__ import annotations

from appliance.imap import charsets
from appliance.imap.commands import Command, Search, SearchKey, Sort, Thread
from appliance.imap.cursor import MAX_DEPTH, Cursor, ParseError

_SEARCH_FLAG_KEYS = {
    "ANSWERED": "\\Answered",
    "DELETED": "\\Deleted",
    "DRAFT": "\\Draft",
    "FLAGGED": "\\Flagged",
    "SEEN": "\\Seen",
}
_SEARCH_UNFLAG_KEYS = {"UN" + k: v for k, v in _SEARCH_FLAG_KEYS.items()}
_SEARCH_PLAIN = frozenset({"ALL", "NEW", "OLD", "RECENT", "SAVEDATESUPPORTED"})
_SEARCH_STRING = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_SEARCH_DATE = frozenset(
    {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
    | {"SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"}  # RFC 8514 4.3
)
_SEARCH_NUMBER = frozenset({"LARGER", "SMALLER"})
_SEARCH_INTERVAL = frozenset({"OLDER", "YOUNGER"})
MAX_NZ_NUMBER = 2**32 - 1  # RFC 9051 9: nz-number is a 32-bit value
SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)


def _search_returns(cur: Cursor) -> tuple[str, ...] | None:
    if not cur.accept(b"RETURN "):  # RFC 4731 3: ESEARCH result options
        return None
    words = [o.upper() for o in cur.paren_list(cur.atom)]
    opts: list[str] = []
    while words:
        opt = words.pop(0)
        if opt == "PARTIAL":  # RFC 5267 4.4: PARTIAL low:high (a window of the result)
            if any(o.startswith("PARTIAL ") for o in opts):
                raise ParseError("PARTIAL can be used only once")
            opts.append("PARTIAL " + _partial_range(words.pop(0) if words else ""))
        elif opt in ("MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE"):
            opts.append(opt)  # RFC 4731 3.1, RFC 5182 2, RFC 5267 4.2
        else:
            raise ParseError(f"unknown RETURN option {opt}")
    if "ALL" in opts and any(o.startswith("PARTIAL ") for o in opts):
        raise ParseError("PARTIAL conflicts with ALL")
    cur.sp()
    return tuple(opts)


def _partial_range(text: str) -> str:
    """RFC 5267 4.4: partial-range = nz-number ":" nz-number, either order (as Dovecot)."""
    low, colon, high = text.partition(":")
    if not (colon and low.isdigit() and high.isdigit()) or len(low) > 10 or len(high) > 10:
        raise ParseError("PARTIAL range broken")
    a, b = sorted((int(low), int(high)))
    if a < 1 or b > 2**32 - 1:
        raise ParseError("PARTIAL range broken")
    return f"{a}:{b}"


def _charset(cur: Cursor) -> str | None:
    if cur.accept(b"CHARSET "):
        charset = cur.astring().upper()
        cur.sp()
        return charset
    return None


def _search(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    returns = _search_returns(cur)
    charset = _charset(cur)
    key = search_program(cur, charset)
    return Search(tag, name, uid, key, charset, returns)


def _sort(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    returns = _search_returns(cur)
    raw = cur.paren_list(cur.atom, False)  # RFC 5256 3: sort-criteria
    criteria: list[tuple[str, bool]] = []
    reverse = False
    for word in (w.upper() for w in raw):
        if word == "REVERSE":
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise ParseError(f"unknown sort key {word}")
        criteria.append((word, reverse))
        reverse = False
    if reverse or not criteria:
        raise ParseError("bad sort criteria")
    cur.sp()
    charset = cur.astring().upper()
    cur.sp()
    program = search_program(cur, charset)
    return Sort(tag, name, uid, tuple(criteria), charset, program, returns)


def _thread(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    algorithm = cur.atom().upper()
    if algorithm not in ("REFERENCES", "ORDEREDSUBJECT"):
        raise ParseError(f"unknown THREAD algorithm {algorithm}")
    cur.sp()
    charset = cur.astring().upper()
    cur.sp()
    return Thread(tag, name, uid, algorithm, charset, search_program(cur, charset))


def search_program(cur: Cursor, charset: str | None = None) -> SearchKey:
    """``charset``: the command's CHARSET (None: UTF-8), which the strings are in."""
    keys = [search_key(cur, charset)]
    while cur.accept(b" "):
        keys.append(search_key(cur, charset))
    return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))


def search_key(cur: Cursor, charset: str | None = None) -> SearchKey:
    cur.depth += 1
    if cur.depth > MAX_DEPTH:
        raise ParseError("search program too deeply nested")
    try:
        return _search_key(cur, charset)
    finally:
        cur.depth -= 1


def _search_text(cur: Cursor, charset: str | None) -> str:
    """RFC 9051 6.4.4: a search string (quoted or literal) is text in the command's
    CHARSET; an atom is 7-bit (UTF-8 after ENABLE)."""
    if cur.peek() not in (ord('"'), ord("{")):
        return cur.astring()
    raw = cur.string_bytes()
    assert isinstance(raw, bytes)  # no allow_file: literals are in memory
    try:
        return charsets.decode(raw, charset)
    except LookupError:
        # an unknown charset: the handler answers NO [BADCHARSET] before any use
        return raw.decode("latin-1")
    except UnicodeDecodeError:
        raise ParseError(f"search string is not valid {charset or 'UTF-8'}") from None


def _search_key(cur: Cursor, charset: str | None) -> SearchKey:
    ch = cur.peek()
    if ch == ord("("):
        keys = cur.paren_list(lambda: search_key(cur, charset), False)
        return SearchKey("AND", tuple(keys))
    if ch is not None and (chr(ch).isdigit() or ch in b"*$"):
        return SearchKey("SEQ", seqset=cur.seqset())
    word = cur.atom().upper()
    if word in _SEARCH_PLAIN:
        return SearchKey(word)
    if word in _SEARCH_FLAG_KEYS:
        return SearchKey("FLAG", text=_SEARCH_FLAG_KEYS[word])
    if word in _SEARCH_UNFLAG_KEYS:
        return SearchKey("UNFLAG", text=_SEARCH_UNFLAG_KEYS[word])
    cur.sp()
    if word in ("KEYWORD", "UNKEYWORD"):
        return SearchKey("FLAG" if word == "KEYWORD" else "UNFLAG", text=cur.flag())
    if word in _SEARCH_STRING:
        return SearchKey(word, text=_search_text(cur, charset))
    if word in _SEARCH_DATE:
        return SearchKey(word, number=cur.date().toordinal())
    if word in _SEARCH_NUMBER:
        return SearchKey(word, number=cur.number())
    if word in _SEARCH_INTERVAL:  # RFC 5032 4: ("OLDER" / "YOUNGER") SP nz-number
        seconds = cur.nz_number()
        if seconds > MAX_NZ_NUMBER:
            raise ParseError("interval out of range")
        return SearchKey(word, number=seconds)
    if word == "HEADER":
        field = cur.astring()
        cur.sp()
        return SearchKey("HEADER", text=field, value=_search_text(cur, charset))
    if word == "UID":
        return SearchKey("UID", seqset=cur.seqset())
    if word == "NOT":
        return SearchKey("NOT", (search_key(cur, charset),))
    if word == "OR":
        first = search_key(cur, charset)
        cur.sp()
        return SearchKey("OR", (first, search_key(cur, charset)))
    if word == "MODSEQ":  # RFC 7162 3.1.5: MODSEQ [entry-name entry-type] mod-sequence
        if cur.peek() == ord('"'):
            cur.string()
            cur.sp()
            cur.atom()
            cur.sp()
        return SearchKey("MODSEQ", number=cur.number())
    raise ParseError(f"unknown search key {word}")
