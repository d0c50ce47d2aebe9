"""SEARCH evaluation, SORT (RFC 5256, RFC 5957) and THREAD (RFC 5256) - blocking.

Everything here runs in a worker thread: header and body keys read the message file
(header bytes from the summary's offsets, text parts decoded once per message).
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_tz
from pathlib import Path
from typing import BinaryIO

from appliance.imap import charsets
from appliance.imap.commands import SearchKey, SeqSet
from appliance.imap.errors import ImapError, bad
from appliance.imap.fetch import decode_part
from appliance.imap.savedate import save_date
from appliance.mime.addresses import search_forms
from appliance.mime.headers import decode_words, extract_subject, to_bytes, to_text
from appliance.mime.model import Part, Summary, SummaryError, load_summary
from appliance.store.base import MailStore, MessageInfo, MessageNotFound, StoreError
from appliance.store.names import normalize_flag

MAX_BODY_SCAN = 32 * 1024 * 1024
CHARSETS = charsets.ADVERTISED  # named in NO [BADCHARSET (...)]; any Python codec works
_HEADER_KEYS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}
_ADDRESS_KEYS = frozenset({"from", "to", "cc", "bcc"})
ADDRESS_PREFIX = "\0"  # header() entries of parsed addresses: ("\0from", '"Name" <a@b>')


def check_charset(charset: str | None, utf8_accept: bool = False) -> None:
    """The charset a SEARCH/SORT/THREAD names (None: SEARCH without CHARSET). The parser
    has already decoded the search strings with it (``charsets.decode``)."""
    if charset is None:
        return
    if charsets.codec_for(charset) is None:
        # RFC 9051 6.4.4: an unsupported charset -> tagged NO [BADCHARSET (list)]
        raise ImapError("Unsupported charset", "BADCHARSET (" + " ".join(CHARSETS) + ")")
    if utf8_accept and charsets.codec_for(charset) != "utf-8":
        # RFC 6855 3 (erratum 4029): after ENABLE UTF8=ACCEPT a charset label other than
        # UTF-8 conflicts with the UTF-8 strings: SHOULD be BAD
        raise bad("Only UTF-8 is allowed after ENABLE UTF8=ACCEPT")


def _in_set(value: int, seqset: SeqSet, star: int) -> bool:
    for low, high in seqset:
        a = star if low is None else low
        b = star if high is None else high
        if min(a, b) <= value <= max(a, b):
            return True
    return False


@dataclass
class Candidate:
    seq: int
    info: MessageInfo
    recent: bool = False


class _Batch:
    """Index data for a run of candidates, read on first need in one query each (not one
    store call per message)."""

    def __init__(self, store: MailStore, user: str, mailbox: str, uids: list[int]) -> None:
        self.store, self.user, self.mailbox, self.uids = store, user, mailbox, uids
        self._sums: dict[int, bytes] | None = None
        self._paths: dict[int, Path] | None = None

    def summary(self, uid: int) -> bytes:
        if self._sums is None:
            self._sums = self.store.summaries(self.user, self.mailbox, self.uids)
        try:
            return self._sums[uid]
        except KeyError:
            raise MessageNotFound(f"{self.mailbox} UID {uid}") from None

    def open(self, uid: int) -> BinaryIO:
        if self._paths is None:
            self._paths = self.store.message_paths(self.user, self.mailbox, self.uids)
        path = self._paths.get(uid)
        if path is not None:
            try:
                return path.open("rb")
            except FileNotFoundError:
                pass  # renamed by a flag change since the paths were read
        return self.store.open_message(self.user, self.mailbox, uid)


SEARCH_BATCH = 256


class _HeaderCache:
    """Decoded header fields of recently searched messages, shared by all sessions.

    Clients repeat header searches (quick filters, SEARCH FROM on every refresh); like
    Dovecot's field cache this keeps the parsed fields so the next search does not
    re-read and re-decode every file. Keyed by user, mailbox, UID, size and internal
    date, so a recreated mailbox reusing UIDs cannot hit a stale entry. Bounded LRU.

    No lock: searches run in worker threads, and a lock taken for every message made
    them queue behind whichever thread held it when the GIL switched (50 clients: 90% of
    the CPU went to that wait). Each OrderedDict call below is one C call, atomic under
    the GIL; an entry evicted between two calls is simply missing (KeyError ignored).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[tuple[str, str, int, int, float], list[tuple[str, str]]] = (
            OrderedDict()
        )

    def get(self, key: tuple[str, str, int, int, float]) -> list[tuple[str, str]] | None:
        fields = self._data.get(key)
        if fields is not None:
            with contextlib.suppress(KeyError):  # evicted by another thread meanwhile
                self._data.move_to_end(key)
        return fields

    def put(self, key: tuple[str, str, int, int, float], fields: list[tuple[str, str]]) -> None:
        data = self._data
        data[key] = fields
        with contextlib.suppress(KeyError):
            data.move_to_end(key)
        while len(data) > self.capacity:
            try:
                data.popitem(last=False)
            except KeyError:  # emptied by another thread
                break


HEADER_CACHE = _HeaderCache(20_000)


@dataclass
class _Message:
    store: MailStore
    user: str
    mailbox: str
    info: MessageInfo
    batch: _Batch | None = None
    _summary: Summary | None = None
    _header: list[tuple[str, str]] | None = None
    _body: str | None = None
    _mime: str | None = None
    _raw_header: str | None = field(default=None, repr=False)

    def summary(self) -> Summary:
        if self._summary is None:
            if self.batch is not None:
                data = self.batch.summary(self.info.uid)
            else:
                data = self.store.summary(self.user, self.mailbox, self.info.uid)
            self._summary = load_summary(data)
        return self._summary

    def _open(self) -> BinaryIO:
        if self.batch is not None:
            return self.batch.open(self.info.uid)
        return self.store.open_message(self.user, self.mailbox, self.info.uid)

    def header(self) -> list[tuple[str, str]]:
        if self._header is None:
            info = self.info
            key = (self.user, self.mailbox, info.uid, info.size, info.internal_date)
            cached = HEADER_CACHE.get(key)
            if cached is not None:
                self._header = cached
                return cached
            end = self.summary().root.body_start
            with self._open() as fh:
                raw = fh.read(end)
            fields: list[tuple[str, str]] = []
            raws: list[tuple[str, bytes]] = []
            for line in raw.splitlines():
                if line[:1] in (b" ", b"\t") and fields:
                    prev_name, prev_value = fields[-1]
                    fields[-1] = (prev_name, prev_value + " " + decode_words(line))
                    raws[-1] = (prev_name, raws[-1][1] + b" " + line)
                    continue
                name, colon, value = line.partition(b":")
                if colon:
                    field_name = name.strip().decode("ascii", "replace").lower()
                    fields.append((field_name, decode_words(value)))
                    raws.append((field_name, value))
            for field_name, value in raws:
                if field_name in _ADDRESS_KEYS:
                    # SEARCH FROM/TO/CC/BCC match each parsed address, comments removed
                    # (as Dovecot): "\0from" entries hold them, one per address.
                    fields += [
                        (ADDRESS_PREFIX + field_name, decode_words(to_bytes(form)))
                        for form in search_forms(to_text(value))
                    ]
            self._header = fields
            HEADER_CACHE.put(key, fields)
        return self._header

    def header_text(self) -> str:
        if self._raw_header is None:
            self._raw_header = "\n".join(
                f"{k}: {v}" for k, v in self.header() if not k.startswith(ADDRESS_PREFIX)
            ).casefold()
        return self._raw_header

    def mime(self) -> str:
        """The header fields of the parts and attached messages, decoded (TEXT only)."""
        if self._mime is None:
            texts: list[str] = []
            budget = MAX_BODY_SCAN
            with self._open() as fh:
                for start, end in _inner_headers(self.summary().root):
                    if budget <= 0:
                        break
                    fh.seek(start)
                    raw = fh.read(min(max(0, end - start), budget))
                    budget -= len(raw)
                    texts.append(decode_words(raw))
            self._mime = "\n".join(texts).casefold()
        return self._mime

    def body(self) -> str:
        if self._body is None:
            texts: list[str] = []
            budget = MAX_BODY_SCAN
            with self._open() as fh:
                for part in _leaves(self.summary().root):
                    if part.type not in ("text", "message") or budget <= 0:
                        continue
                    fh.seek(part.body_start)
                    raw = fh.read(min(part.body_size, budget))
                    budget -= len(raw)
                    try:
                        data = decode_part(part, raw)
                    except ImapError:
                        data = raw
                    texts.append(_decode_text(data, part.param("charset")))
            self._body = "\n".join(texts).casefold()
        return self._body


def _decode_text(data: bytes, charset: str | None) -> str:
    """A body part's text for SEARCH. 8-bit bytes in a part labelled US-ASCII (or not
    labelled) are read as UTF-8, which is what such mail carries in practice (Dovecot
    matches them too); an unknown charset falls back to UTF-8."""
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    if codec == "ascii":
        codec = "utf-8"
    return data.decode(codec, "replace")


def _inner_headers(part: Part) -> Iterable[tuple[int, int]]:
    """(start, end) of every part header below the message's own (MIME headers of the
    parts, headers of attached messages), in file order."""
    for child in part.children:
        yield child.header_start, child.body_start
        yield from _inner_headers(child)
    if part.message is not None:
        inner = part.message.part
        yield inner.header_start, inner.body_start
        yield from _inner_headers(inner)


def _leaves(part: Part) -> Iterable[Part]:
    if part.children:
        for child in part.children:
            yield from _leaves(child)
    elif part.message is not None:
        yield from _leaves(part.message.part)
    else:
        yield part


def _utc_date(stamp: float) -> int:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).date().toordinal()


def _sent_date(msg: _Message) -> int:
    """RFC 9051 6.4.4: the Date header's date, disregarding time and timezone."""
    value = next((v for k, v in msg.header() if k == "date"), None)
    parsed = parsedate_tz(value) if value else None
    if parsed is not None:
        try:
            return dt.date(parsed[0], parsed[1], parsed[2]).toordinal()
        except ValueError:
            pass
    return _utc_date(msg.info.internal_date)


class Matcher:
    def __init__(self, count: int, max_uid: int, now: float | None = None) -> None:
        self.count = count
        self.max_uid = max_uid
        self.now = time.time() if now is None else now

    def match(self, key: SearchKey, c: Candidate, msg: _Message) -> bool:
        name = key.name
        info = c.info
        if name == "ALL":
            return True
        if name == "AND":
            return all(self.match(k, c, msg) for k in key.children)
        if name == "OR":
            return self.match(key.children[0], c, msg) or self.match(key.children[1], c, msg)
        if name == "NOT":
            return not self.match(key.children[0], c, msg)
        if name == "FLAG":
            return normalize_flag(key.text) in info.flags
        if name == "UNFLAG":
            return normalize_flag(key.text) not in info.flags
        if name == "NEW":
            return c.recent and "\\Seen" not in info.flags
        if name == "OLD":
            return not c.recent
        if name == "RECENT":
            return c.recent
        if name == "SEQ":
            return _in_set(c.seq, key.seqset, self.count)
        if name == "UID":
            return _in_set(info.uid, key.seqset, self.max_uid)
        if name == "LARGER":
            return info.size > key.number
        if name == "SMALLER":
            return info.size < key.number
        if name == "MODSEQ":  # RFC 7162 3.1.5
            return info.modseq >= key.number
        if name == "OLDER":  # RFC 5032
            return self.now - info.internal_date > key.number
        if name == "YOUNGER":
            return self.now - info.internal_date <= key.number
        if name in ("BEFORE", "ON", "SINCE"):
            return _compare(name, _utc_date(info.internal_date), key.number)
        if name in ("SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"):  # RFC 8514 4.3
            return _compare(name[5:], _utc_date(save_date(info)), key.number)
        if name == "SAVEDATESUPPORTED":  # RFC 8514 4.3: every mailbox keeps save dates
            return True
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            return _compare(name[4:], _sent_date(msg), key.number)
        if name in _HEADER_KEYS or name == "HEADER":
            field_name = _HEADER_KEYS.get(name) or key.text.lower()
            if field_name in _ADDRESS_KEYS and name != "HEADER":
                field_name = ADDRESS_PREFIX + field_name
            needle = (key.text if name != "HEADER" else key.value).casefold()
            return any(k == field_name and needle in v.casefold() for k, v in msg.header())
        if name == "BODY":
            return key.text.casefold() in msg.body()
        if name == "TEXT":  # RFC 9051 6.4.4: "the header (including MIME header fields)"
            needle = key.text.casefold()
            return needle in msg.header_text() or needle in msg.body() or needle in msg.mime()
        raise ImapError(f"Unsupported search key {name}", status="BAD")


def _compare(op: str, day: int, wanted: int) -> bool:
    if op == "BEFORE":
        return day < wanted
    if op == "ON":
        return day == wanted
    return day >= wanted  # SINCE


def search(
    store: MailStore,
    user: str,
    mailbox: str,
    candidates: list[Candidate],
    key: SearchKey,
    matcher: Matcher,
) -> list[Candidate]:
    """The candidates matching ``key`` (blocking; messages gone meanwhile never match)."""
    out = []
    batch: _Batch | None = None
    for i, c in enumerate(candidates):
        if i % SEARCH_BATCH == 0:
            uids = [x.info.uid for x in candidates[i : i + SEARCH_BATCH]]
            batch = _Batch(store, user, mailbox, uids)
        msg = _Message(store, user, mailbox, c.info, batch)
        try:
            if matcher.match(key, c, msg):
                out.append(c)
        except (StoreError, SummaryError, OSError):
            continue
    return out


# ------------------------------------------------------------------ SORT


def _summaries(
    store: MailStore, user: str, mailbox: str, found: list[Candidate]
) -> dict[int, Summary | None]:
    out: dict[int, Summary | None] = {}
    try:
        raw = store.summaries(user, mailbox, [c.info.uid for c in found])
    except (StoreError, OSError):
        raw = {}
    for c in found:
        data = raw.get(c.info.uid)
        try:
            out[c.info.uid] = load_summary(data) if data is not None else None
        except SummaryError:
            out[c.info.uid] = None
    return out


def sort(
    store: MailStore,
    user: str,
    mailbox: str,
    found: list[Candidate],
    criteria: tuple[tuple[str, bool], ...],
) -> list[Candidate]:
    """RFC 5256 3 / RFC 5957: order by the criteria, ties by sequence number."""
    sums = _summaries(store, user, mailbox, found)

    def value(c: Candidate, key: str) -> float | str | int:
        s = sums.get(c.info.uid)
        x = s.extras if s else None
        if key == "ARRIVAL":
            return c.info.internal_date
        if key == "SIZE":
            return c.info.size
        if key == "DATE":  # RFC 5256 3: sent date, else internal date
            return x.date if x and x.date is not None else c.info.internal_date
        # RFC 5256 3 / RFC 4790 9.2: i;ascii-casemap folds to upper case, so "[" and "_"
        # sort after the letters (as Dovecot answers).
        if key == "SUBJECT":
            return x.subject.upper() if x else ""
        if key in ("FROM", "TO", "CC"):
            pair = getattr(x, {"FROM": "from_", "TO": "to", "CC": "cc"}[key]) if x else None
            return pair[1].upper() if pair else ""
        pair = (x.from_ if key == "DISPLAYFROM" else x.to) if x else None
        return pair[0].upper() if pair else ""

    ordered = sorted(found, key=lambda c: c.seq)
    for key, reverse in reversed(criteria):
        ordered.sort(key=lambda c, k=key: value(c, k), reverse=reverse)  # type: ignore[misc]
    return ordered


# ------------------------------------------------------------------ THREAD


@dataclass
class _Node:
    mid: str
    seq: int | None = None
    date: float = 0.0
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)
    subject: str = ""  # RFC 5256 base subject
    reply: bool = False  # the subject had a Re:/Fwd: leader

    def ancestor_of(self, other: _Node) -> bool:
        node: _Node | None = other
        for _ in range(10000):
            if node is None:
                return False
            if node is self:
                return True
            node = node.parent
        return True

    def sort_key(self) -> tuple[float, int]:
        """RFC 5256 REFERENCES step 4: by sent date, ties by mailbox order; a dummy
        takes its first (earliest) child's date and, for ties, its sequence number."""
        if self.seq is not None or not self.children:
            return self.date, self.seq or 0
        return min(c.sort_key() for c in self.children)


def _link(parent: _Node, child: _Node) -> None:
    if child.parent is not None or child is parent or child.ancestor_of(parent):
        return
    child.parent = parent
    parent.children.append(child)


def thread(
    store: MailStore,
    user: str,
    mailbox: str,
    found: list[Candidate],
    algorithm: str,
) -> str:
    """The THREAD response text (without ``* THREAD``)."""
    sums = _summaries(store, user, mailbox, found)

    def sent(c: Candidate) -> float:
        s = sums.get(c.info.uid)
        return s.extras.date if s and s.extras.date is not None else c.info.internal_date

    if algorithm == "ORDEREDSUBJECT":  # RFC 5256 4
        groups: dict[str, list[Candidate]] = {}
        for c in sorted(found, key=lambda c: (sent(c), c.seq)):
            s = sums.get(c.info.uid)
            groups.setdefault(s.extras.subject if s else "", []).append(c)
        roots = []
        for members in groups.values():
            root = _Node(str(members[0].seq), members[0].seq, sent(members[0]))
            for m in members[1:]:
                root.children.append(_Node(str(m.seq), m.seq, sent(m), root))
            roots.append(root)
        return _render(sorted(roots, key=lambda n: (n.date, n.seq or 0)))
    table: dict[str, _Node] = {}
    for c in sorted(found, key=lambda c: c.seq):  # RFC 5256 4 REFERENCES step 1
        s = sums.get(c.info.uid)
        mid = s.extras.message_id if s and s.extras.message_id else None
        if mid is None or (mid in table and table[mid].seq is not None):
            mid = f"<pillarbox-unique-{c.info.uid}>"
        node = table.setdefault(mid, _Node(mid))
        node.seq, node.date = c.seq, sent(c)
        if s is not None:
            node.subject = s.extras.subject
            raw = decode_words((s.message.envelope.subject or "").encode("utf-8", "replace"))
            node.reply = extract_subject(raw)[1]  # RFC 5256 2.1: Re:/Fwd: removed
        refs = list(s.extras.references) if s else []
        if not refs and s and s.extras.in_reply_to:
            refs = [s.extras.in_reply_to]
        previous: _Node | None = None
        for ref in refs:
            ref_node = table.setdefault(ref, _Node(ref))
            if previous is not None and ref_node.parent is None:
                _link(previous, ref_node)
            previous = ref_node
        if node.parent is not None and previous is not None and node.parent is not previous:
            node.parent.children.remove(node)
            node.parent = None
        if previous is not None and node.parent is None:
            _link(previous, node)
    roots = [n for n in table.values() if n.parent is None]
    roots = _merge_subjects(_prune(roots, None))
    return _render(_sorted(roots))


def _merge_subjects(roots: list[_Node]) -> list[_Node]:
    """RFC 5256 REFERENCES step 5: gather threads whose roots share a base subject."""

    def subject_of(node: _Node) -> tuple[str, bool]:
        if node.seq is None and node.children:
            return node.children[0].subject, node.children[0].reply
        return node.subject, node.reply

    table: dict[str, _Node] = {}
    for node in roots:
        subject, reply = subject_of(node)
        if not subject:
            continue
        old = table.get(subject)
        if old is None:
            table[subject] = node
        elif (node.seq is None and old.seq is not None) or (
            old.seq is not None and subject_of(old)[1] and not reply
        ):
            table[subject] = node  # RFC 5256 5.B: prefer an empty container, then a non-reply
    out: list[_Node] = []
    for node in roots:
        if node.parent is not None:  # already moved under a new dummy
            continue
        subject, reply = subject_of(node)
        target = table.get(subject) if subject else None
        if target is None or target is node:
            out.append(node)
            continue
        if target.seq is None and node.seq is None:  # both dummies: merge the children
            for child in node.children:
                child.parent = target
            target.children += node.children
        elif target.seq is None or (reply and not target.reply):
            node.parent = target
            target.children.append(node)
        else:  # siblings under a new dummy that takes the table entry's place
            dummy = _Node(f"<subject:{subject}>", children=[target, node])
            dummy.children[0].parent = dummy.children[1].parent = dummy
            dummy.subject = subject
            table[subject] = dummy
            if target in out:
                out = [dummy if n is target else n for n in out]
            else:
                out.append(dummy)
    return out


def _prune(nodes: list[_Node], parent: _Node | None) -> list[_Node]:
    """RFC 5256 REFERENCES step 3: drop empty containers, promote their children."""
    out: list[_Node] = []
    for node in nodes:
        node.children = _prune(node.children, node)
        if node.seq is not None:
            out.append(node)
        elif node.children and (parent is not None or len(node.children) == 1):
            for child in node.children:
                child.parent = parent
            out += node.children
        elif node.children:
            out.append(node)
    return out


def _sorted(nodes: list[_Node]) -> list[_Node]:
    for node in nodes:
        node.children = _sorted(node.children)
    return sorted(nodes, key=lambda n: n.sort_key())


def _render(roots: list[_Node]) -> str:
    return "".join("(" + _chain(r) + ")" for r in roots)


def _chain(node: _Node) -> str:
    words: list[str] = []
    current = node
    while True:
        if current.seq is not None:
            words.append(str(current.seq))
        if len(current.children) == 1 and current.seq is not None:
            current = current.children[0]
            continue
        if current.children:
            words.append("".join("(" + _chain(c) + ")" for c in _sorted(current.children)))
        break
    return " ".join(words)
