"""IMAP command parser: pure functions from received segments to typed commands.

:func:`parse_command` turns the segments of one command (see :mod:`appliance.imap.cursor`)
into a :class:`~appliance.imap.commands.Command` or raises :class:`ParseError`, which
the session renders as ``tag BAD ...`` while keeping its state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from appliance.imap.commands import (
    Append,
    AppendMessage,
    Authenticate,
    CancelUpdate,
    CatenatePart,
    Command,
    Compress,
    CopyMove,
    Enable,
    Expunge,
    Fetch,
    FetchAtt,
    Id,
    ListCommand,
    Literal,
    Login,
    MailboxCommand,
    QresyncParams,
    Rename,
    Section,
    Select,
    SeqSet,
    Simple,
    Status,
    Store,
)
from appliance.imap.cursor import (
    _ATOM_STOP,
    _TAG_STOP,
    Cursor,
    ParseError,
    Segment,
    literal_suffix,
)
from appliance.imap.notify import parse_notify
from appliance.imap.parse_search import _search, _sort, _thread, search_program

__all__ = ["ParseError", "Segment", "literal_suffix", "parse_command", "search_program"]

FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
FETCH_SIMPLE = frozenset(
    {
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "UID",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "MODSEQ",
        "BODY",
        "SAVEDATE",  # RFC 8514 4.2
    }
)
# ------------------------------------------------------------------ command dispatch


def parse_command(segments: Sequence[Segment], utf8: bool = False) -> Command:
    cur = Cursor(segments, utf8)
    raw_tag = cur._run(_TAG_STOP)
    # RFC 9051 9: a tag is ASTRING-CHARs, 7-bit; an 8-bit one could not be echoed back
    if not raw_tag or not raw_tag.isascii() or cur.peek() != ord(" "):
        raise ParseError("missing tag or command", "*")
    tag = raw_tag.decode("ascii", "replace")
    try:
        cur.sp()
        name = cur.atom().upper()
        uid = False
        if name == "UID":
            cur.sp()
            uid = True
            name = cur.atom().upper()
            if name not in (
                "FETCH",
                "STORE",
                "COPY",
                "MOVE",
                "SEARCH",
                "EXPUNGE",
                "SORT",
                "THREAD",
            ):
                raise ParseError(f"UID {name} is not a command")
        handler = _HANDLERS.get(name)
        if handler is None:
            raise ParseError("unknown command")
        command = handler(cur, tag, name, uid)
        cur.end()
        return command
    except ParseError as exc:
        raise ParseError(exc.text, tag) from None


def _simple(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    if name == "EXPUNGE":
        if uid:
            cur.sp()
            return Expunge(tag, name, uid, cur.seqset())  # RFC 4315 2.1: UID EXPUNGE
        return Expunge(tag, name)
    return Simple(tag, name)


def _login(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    user = cur.astring()
    cur.sp()
    return Login(tag, name, user=user, password=cur.astring())


def _authenticate(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    mechanism = cur.atom().upper()
    initial = None
    if cur.accept(b" "):
        initial = cur._run(_ATOM_STOP).decode("ascii", "replace")  # RFC 4959: base64 or "="
        if not initial:
            raise ParseError("bad initial response")
    return Authenticate(tag, name, mechanism=mechanism, initial=initial)


def _enable(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    caps = []
    while cur.accept(b" "):
        caps.append(cur.atom().upper())
    if not caps:
        raise ParseError("ENABLE needs a capability")
    return Enable(tag, name, capabilities=tuple(caps))


def _cancelupdate(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    """RFC 5267 4.3: "CANCELUPDATE" 1*(SP quoted) (the tags of UPDATE searches)."""
    tags = []
    while cur.accept(b" "):
        tags.append(cur.string())
    if not tags:
        raise ParseError("CANCELUPDATE needs a tag")
    return CancelUpdate(tag, name, tags=tuple(tags))


def _id(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    if cur.accept(b"NIL"):
        return Id(tag, name)
    items = cur.paren_list(cur.nstring)
    if any(k is None for k in items[0::2]) or len(items) % 2:
        raise ParseError("bad ID parameter list")
    pairs = tuple((str(items[i]), items[i + 1]) for i in range(0, len(items), 2))
    return Id(tag, name, params=pairs[:30])


def _compress(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    return Compress(tag, name, mechanism=cur.atom().upper())


def _select(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    mailbox = cur.mailbox()
    condstore = False
    qresync = None
    if cur.accept(b" "):
        cur.expect(b"(")
        while not cur.accept(b")"):
            cur.accept(b" ")
            param = cur.atom().upper()
            if param == "CONDSTORE":  # RFC 7162 3.1.8
                condstore = True
            elif param == "QRESYNC":  # RFC 7162 3.2.5
                cur.sp()
                qresync = _qresync(cur)
            else:
                raise ParseError(f"unknown SELECT parameter {param}")
    return Select(tag, name, mailbox=mailbox, condstore=condstore, qresync=qresync)


def _qresync(cur: Cursor) -> QresyncParams:
    cur.expect(b"(")
    uidvalidity = cur.nz_number()
    cur.sp()
    modseq = cur.number()
    known: SeqSet = ()
    match = None
    if cur.accept(b" "):
        if cur.peek() != ord("("):
            known = cur.seqset()
            cur.accept(b" ")
        if cur.accept(b"("):
            seqs = cur.seqset()
            cur.sp()
            uids = cur.seqset()
            cur.expect(b")")
            match = (seqs, uids)
    cur.expect(b")")
    return QresyncParams(uidvalidity, modseq, known, match)


def _mailbox_cmd(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    mailbox = cur.mailbox()
    use: tuple[str, ...] = ()
    if name == "CREATE" and cur.accept(b" "):
        cur.expect(b"(")
        cur.expect(b"USE ")  # RFC 6154 3: CREATE-SPECIAL-USE
        use = tuple(cur.flag_list())
        cur.expect(b")")
    return MailboxCommand(tag, name, mailbox=mailbox, use=use)


def _rename(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    return Rename(tag, name, old=old, new=cur.mailbox())


def _list(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    selection: list[str] = []
    extended = cur.peek() == ord("(")  # RFC 5258 3: list-select-opts
    if extended:
        selection = [s.upper() for s in cur.paren_list(cur.atom)]
        cur.sp()
    reference = cur.mailbox()
    cur.sp()
    if cur.peek() == ord("("):  # RFC 5258 3: a list of patterns
        extended = True
        patterns = cur.paren_list(cur.list_mailbox, False)
    else:
        patterns = [cur.list_mailbox()]
    returns: list[str] = []
    status_items: list[str] = []
    if cur.accept(b" RETURN "):
        extended = True
        cur.expect(b"(")
        while not cur.accept(b")"):
            cur.accept(b" ")
            option = cur.atom().upper()
            returns.append(option)
            if option == "STATUS":  # RFC 5819
                cur.sp()
                status_items = [s.upper() for s in cur.paren_list(cur.atom, False)]
    return ListCommand(
        tag,
        name,
        reference=reference,
        patterns=tuple(patterns),
        selection=tuple(selection),
        returns=tuple(returns),
        status_items=tuple(status_items),
        extended=extended,
    )


def _status(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    items = tuple(s.upper() for s in cur.paren_list(cur.atom, False))
    return Status(tag, name, mailbox=mailbox, items=items)


def _append(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    mailbox = cur.mailbox()
    messages: list[AppendMessage] = []
    while cur.accept(b" "):  # RFC 3502: MULTIAPPEND
        flags: list[str] = []
        date = None
        if cur.peek() == ord("("):
            flags = cur.flag_list()
            cur.sp()
        if cur.peek() == ord('"'):
            date = cur.date_time()
            cur.sp()
        if cur.accept(b"CATENATE "):  # RFC 4469 5: "CATENATE" SP "(" cat-part *(SP cat-part) ")"
            parts = tuple(cur.paren_list(lambda: _cat_part(cur), False))
            messages.append(AppendMessage(tuple(flags), date, Literal(0), parts))
            continue
        # RFC 3516 4.2 / RFC 9051 9: append-data may be a literal8; RFC 6855 4: UTF8 (literal8)
        if cur.accept(b"UTF8 ("):
            value = cur.string_bytes(allow_file=True, literal8=True)
            cur.expect(b")")
        else:
            value = cur.string_bytes(allow_file=True, literal8=True)
        literal = value if isinstance(value, Literal) else Literal(len(value), data=value)
        messages.append(AppendMessage(tuple(flags), date, literal))
    if not messages:
        raise ParseError("APPEND needs a message")
    return Append(tag, name, mailbox=mailbox, messages=tuple(messages))


def _cat_part(cur: Cursor) -> CatenatePart:
    """RFC 4469 5: text-literal = "TEXT" SP literal; url = "URL" SP astring (a TEXT
    literal8 is accepted, as Dovecot does; NUL is re-encoded like APPEND data)."""
    kind = cur.atom().upper()
    cur.sp()
    if kind == "TEXT":
        if cur.peek() not in (ord("{"), ord("~")):
            raise ParseError("TEXT needs a literal")
        value = cur.string_bytes(allow_file=True, literal8=True)
        literal = value if isinstance(value, Literal) else Literal(len(value), data=value)
        return CatenatePart(text=literal)
    if kind == "URL":
        return CatenatePart(url=cur.astring())
    raise ParseError(f"unknown CATENATE part {kind}")


def _copy_move(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    seqset = cur.seqset()
    cur.sp()
    return CopyMove(tag, name, uid, seqset=seqset, mailbox=cur.mailbox())


def _store(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    seqset = cur.seqset()
    cur.sp()
    unchanged = None
    if cur.accept(b"(UNCHANGEDSINCE "):  # RFC 7162 3.1.3
        unchanged = cur.number()
        cur.expect(b") ")
    mode = "add" if cur.accept(b"+") else "remove" if cur.accept(b"-") else "set"
    cur.expect(b"FLAGS")
    silent = cur.accept(b".SILENT")
    cur.sp()
    if cur.peek() == ord("("):
        flags = cur.flag_list()
    else:
        flags = [cur.flag()]
        while cur.accept(b" "):
            flags.append(cur.flag())
    return Store(tag, name, uid, seqset, mode, silent, tuple(flags), unchanged)


def _fetch(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    cur.sp()
    seqset = cur.seqset()
    cur.sp()
    atts: list[FetchAtt] = []
    if cur.peek() == ord("("):
        atts = cur.paren_list(lambda: fetch_att(cur), False)
    else:
        word = cur.line[cur.pos : cur.pos + 4].upper()
        macro = next((m for m in FETCH_MACROS if word.startswith(m.encode())), None)
        if macro and (
            cur.pos + len(macro) >= len(cur.line) or cur.line[cur.pos + len(macro)] == ord(" ")
        ):
            cur.pos += len(macro)
            atts = [FetchAtt(a) for a in FETCH_MACROS[macro]]
        else:
            atts = [fetch_att(cur)]
    changed_since = None
    vanished = False
    if cur.accept(b" ("):
        while not cur.accept(b")"):
            cur.accept(b" ")
            modifier = cur.atom().upper()
            if modifier == "CHANGEDSINCE":  # RFC 7162 3.1.4.1
                cur.sp()
                changed_since = cur.number()
            elif modifier == "VANISHED" and uid:  # RFC 7162 3.2.6
                vanished = True
            else:
                raise ParseError(f"unknown FETCH modifier {modifier}")
        if vanished and changed_since is None:
            raise ParseError("VANISHED needs CHANGEDSINCE")
    return Fetch(tag, name, uid, tuple(seqset), tuple(atts), changed_since, vanished)


def fetch_att(cur: Cursor) -> FetchAtt:
    raw = cur._run(_ATOM_STOP - {ord(".")} | {ord("[")}).decode("ascii", "replace").upper()
    if raw in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE") and cur.accept(b"["):
        binary = raw.startswith("BINARY")
        section = _section(cur, binary)
        partial = None
        if raw != "BINARY.SIZE" and cur.accept(b"<"):
            start = cur.number()
            cur.expect(b".")
            partial = (start, cur.nz_number())
            cur.expect(b">")
        name = raw.removesuffix(".PEEK")
        return FetchAtt(name, section, partial, raw.endswith(".PEEK"))
    if raw in FETCH_SIMPLE:
        return FetchAtt(raw)
    if raw == "PREVIEW":  # RFC 8970 5: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]
        if cur.line[cur.pos : cur.pos + 6].upper() == b" (LAZY":
            cur.sp()
            for mod in cur.paren_list(cur.atom, False):
                if mod.upper() != "LAZY":
                    raise ParseError(f"unknown PREVIEW modifier {mod}")
        return FetchAtt(raw)
    raise ParseError(f"unknown FETCH item {raw or '?'}")


def _section(cur: Cursor, binary: bool) -> Section:
    numbers: list[int] = []
    text = ""
    fields: tuple[str, ...] = ()
    if not cur.accept(b"]"):
        while cur.peek() is not None and chr(cur.line[cur.pos]).isdigit():
            numbers.append(cur.nz_number())
            if not cur.accept(b"."):
                break
        if cur.peek() != ord("]"):
            if binary:
                raise ParseError("BINARY takes part numbers only")
            text = cur.atom().upper()
            if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
                cur.sp()
                fields = tuple(f.upper() for f in cur.paren_list(cur.astring, False))
            elif text not in ("HEADER", "TEXT", "MIME") or (text == "MIME" and not numbers):
                raise ParseError(f"bad section {text}")
        cur.expect(b"]")
    return Section(tuple(numbers), text, fields)


_HANDLERS: dict[str, Callable[[Cursor, str, str, bool], Command]] = {
    **dict.fromkeys(
        (
            "CAPABILITY",
            "NOOP",
            "LOGOUT",
            "STARTTLS",
            "CHECK",
            "CLOSE",
            "UNSELECT",
            "EXPUNGE",
            "IDLE",
            "NAMESPACE",
        ),
        _simple,
    ),
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "ID": _id,
    "COMPRESS": _compress,
    "SELECT": _select,
    "EXAMINE": _select,
    **dict.fromkeys(
        ("CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "GETQUOTAROOT", "GETQUOTA"),
        _mailbox_cmd,
    ),
    "RENAME": _rename,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "COPY": _copy_move,
    "MOVE": _copy_move,
    "STORE": _store,
    "FETCH": _fetch,
    "SEARCH": _search,
    "SORT": _sort,
    "THREAD": _thread,
    "CANCELUPDATE": _cancelupdate,
    "NOTIFY": parse_notify,  # RFC 5465 8
}
