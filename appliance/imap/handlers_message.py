"""Selected-state commands: FETCH STORE COPY MOVE EXPUNGE CLOSE UNSELECT SEARCH SORT
THREAD (and their UID forms)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Literal

from appliance.filters import learning
from appliance.imap import fetch, search, searchres
from appliance.imap.commands import (
    Command,
    CopyMove,
    Expunge,
    Fetch,
    FetchAtt,
    Search,
    SearchKey,
    Store,
    Thread,
)
from appliance.imap.errors import ImapError, bad, from_store
from appliance.imap.selected import SelectedMailbox, compress_uids
from appliance.store.base import StorageFull, StoreError
from appliance.store.names import normalize_flag, valid_flag

if TYPE_CHECKING:
    from appliance.imap.session import Session

_SETS_SEEN = frozenset({"RFC822", "RFC822.TEXT"})
FETCH_BATCH = 32  # messages rendered per worker-thread hop


def _selected(s: Session) -> SelectedMailbox:
    assert s.selected is not None
    return s.selected


def _writable(sel: SelectedMailbox) -> None:
    if sel.readonly:
        raise ImapError("Mailbox is read-only", "READ-ONLY")


# ------------------------------------------------------------------ FETCH


async def fetch_(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Fetch)
    sel = _selected(s)
    uids = sel.resolve(cmd.seqset, cmd.uid)
    atts = list(cmd.atts)
    if any(a.name == "MODSEQ" for a in atts) or cmd.changed_since is not None:
        s.enable_condstore()  # RFC 7162 3.1: using CONDSTORE features enables it
    if cmd.vanished:
        if not s.qresync:
            raise bad("QRESYNC is not enabled")
        assert cmd.changed_since is not None
        changes = await s.run_blocking(s.deps.store.changes, s.user, sel.name, cmd.changed_since)
        top = max(changes.expunged, default=0)
        gone = [u for u in changes.expunged if search._in_set(u, cmd.seqset, top)]
        if gone:  # RFC 7162 3.2.6: VANISHED (EARLIER) before the FETCH responses
            s.send(b"* VANISHED (EARLIER) " + compress_uids(gone).encode() + b"\r\n")
    if cmd.changed_since is not None:
        uids = [u for u in uids if sel.info[u].modseq > cmd.changed_since]
    sets_seen = any(
        (a.section is not None and not a.peek and a.name == "BODY")
        or (a.name == "BINARY" and not a.peek)
        or a.name in _SETS_SEEN
        for a in atts
    )
    if sets_seen and not sel.readonly:  # RFC 9051 6.4.5: BODY[...] sets \Seen
        unseen = [u for u in uids if "\\Seen" not in sel.info[u].flags]
        result = None
        if unseen:
            # A full disk must not stop reading: the data goes out without \Seen.
            with contextlib.suppress(StorageFull):
                result = await s.run_blocking(
                    s.deps.store.store_flags, s.user, sel.name, unseen, "add", ["\\Seen"]
                )
        if result is not None:
            for line in sel.update(result.updated):  # RFC 9051 7.3.5: FLAGS first
                s.send(line)
            if not any(a.name == "FLAGS" for a in atts):
                atts.append(FetchAtt("FLAGS"))
    req = fetch.FetchRequest(
        tuple(atts),
        utf8=s.utf8,
        with_modseq=cmd.changed_since is not None
        or (s.condstore and any(a.name == "FLAGS" for a in atts)),
        with_uid=cmd.uid,
    )
    items = [(sel.seq_of(u), sel.info[u], sel.visible_flags(u)) for u in uids if u in sel.info]
    if not fetch.needs_disk(atts):  # index data only: no thread hop
        for seq, info, flags in items:
            done = fetch.build(s.deps.store, s.user, sel.name, seq, info, flags, req)
            await s.send_pieces(done.pieces)
        return f"{'UID ' if cmd.uid else ''}FETCH completed"
    for start in range(0, len(items), FETCH_BATCH):
        batch = await s.run_blocking(
            fetch.build_many,
            s.deps.store,
            s.user,
            sel.name,
            items[start : start + FETCH_BATCH],
            req,
        )
        try:
            for fetched in batch:
                await s.send_pieces(fetched.pieces)
                fetched.close()
        finally:
            for fetched in batch:
                fetched.close()
    return f"{'UID ' if cmd.uid else ''}FETCH completed"


# ------------------------------------------------------------------ STORE


async def store(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Store)
    sel = _selected(s)
    _writable(sel)
    uids = sel.resolve(cmd.seqset, cmd.uid)
    flags = [normalize_flag(f) for f in cmd.flags if f.upper() != "\\RECENT"]
    if not all(valid_flag(f) for f in flags):
        raise bad("Invalid flag")
    if cmd.unchanged_since is not None:
        s.enable_condstore()  # RFC 7162 3.1
    result = await s.run_blocking(
        s.deps.store.store_flags,
        s.user,
        sel.name,
        uids,
        cmd.mode,
        flags,
        cmd.unchanged_since,
    )
    # RFC 9051 7.3.5: a new keyword grows FLAGS before the FETCH showing it; FLAGS never
    # shrinks while selected (a client may still see another message holding a keyword).
    for line in sel.update(result.updated):
        s.send(line)
    failed = set(result.failed_modseq)
    changed = {i.uid for i in result.updated}
    for uid in uids:
        if uid in failed or uid not in sel.info:
            continue
        if not cmd.silent:
            s.send(sel.flags_response(uid, s.condstore))
        elif s.condstore and uid in changed:  # RFC 7162 3.1.3: MODSEQ even when .SILENT
            s.send(sel.flags_response(uid, True, with_flags=False))
    if failed:  # RFC 7162 3.1.3: MODIFIED with the refused messages
        shown = failed if cmd.uid else {sel.seq_of(u) for u in failed if u in sel.info}
        return f"[MODIFIED {compress_uids(shown)}] Conditional STORE failed"
    return f"{'UID ' if cmd.uid else ''}STORE completed"


# ------------------------------------------------------------------ COPY / MOVE / EXPUNGE


async def copy_move(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, CopyMove)
    sel = _selected(s)
    move = cmd.name == "MOVE"
    if move:
        _writable(sel)
    uids = sel.resolve(cmd.seqset, cmd.uid)
    dest = s.mailbox_in(cmd.mailbox)
    if not uids:
        return f"{cmd.name} completed (no messages)"
    try:
        if move:  # RFC 6851: usage is unchanged by a move, so quota never refuses it
            copied = await s.run_blocking(s.deps.store.move, s.user, sel.name, uids, dest)
        else:  # RFC 9208 4.3.1: NO [OVERQUOTA] and nothing copied when the copies do not fit
            copied = await s.run_blocking(
                s.deps.store.copy, s.user, sel.name, uids, dest, quota_bytes=s.quota_bytes
            )
    except StoreError as exc:
        raise from_store(exc, trycreate=True) from exc  # RFC 9051 6.4.7: TRYCREATE
    if copied.pairs:
        _learn_from(s, sel.name, dest, [b for _, b in copied.pairs])
    code = ""
    if copied.pairs:  # RFC 4315 3: COPYUID uidvalidity source-uids dest-uids
        pairs = sorted(copied.pairs)
        src = ",".join(str(a) for a, _ in pairs)
        dst = ",".join(str(b) for _, b in pairs)
        code = f"[COPYUID {copied.uidvalidity} {src} {dst}] "
    if not move:
        return f"{code}COPY completed"
    if code:  # RFC 6851 4.3: COPYUID in an untagged OK before the expunges
        s.send(f"* OK {code}Moved\r\n".encode())
    for line in sel.expunge_responses([a for a, _ in copied.pairs] or uids, s.qresync):
        s.send(line)
    return "MOVE completed"


LEARN_MAX = 100  # messages trained per COPY/MOVE; a mass move is not a training corpus
_learning: set[asyncio.Task[None]] = set()


def _learn_from(s: Session, src: str, dst: str, uids: list[int]) -> None:
    """A user moving mail into Junk marks it spam; out of Junk (not to Trash), ham.

    Training runs in the background (rspamd's controller may be slow); the COPY/MOVE
    answer does not wait for it and a failure only costs the lesson."""
    if not s.config.filters.rspamd:
        return
    store, user, cfg = s.deps.store, s.user, s.config

    async def train() -> None:
        boxes = await asyncio.to_thread(store.list_mailboxes, user)
        roles = {m.name: m.special_use for m in boxes}
        into, out_of = roles.get(dst), roles.get(src)
        kind: Literal["spam", "ham"]
        if into == "\\Junk" and out_of != "\\Junk":
            kind = "spam"
        elif out_of == "\\Junk" and into not in ("\\Junk", "\\Trash"):
            kind = "ham"
        else:
            return
        for uid in uids[:LEARN_MAX]:
            try:
                path = await asyncio.to_thread(store.message_path, user, dst, uid)
            except StoreError:
                continue
            await learning.learn(cfg, kind, path)

    task = asyncio.get_running_loop().create_task(train())
    _learning.add(task)
    task.add_done_callback(_learning.discard)


async def expunge(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Expunge)
    sel = _selected(s)
    _writable(sel)
    wanted = sel.resolve(cmd.seqset, True) if cmd.seqset is not None else None
    if wanted is not None and not wanted:
        return "UID EXPUNGE completed"
    removed = await s.run_blocking(s.deps.store.expunge, s.user, sel.name, wanted)
    for line in sel.expunge_responses(removed, s.qresync):
        s.send(line)
    return f"{'UID ' if cmd.uid else ''}EXPUNGE completed"


async def close(s: Session, cmd: Command) -> str:
    sel = _selected(s)
    if cmd.name == "CLOSE" and not sel.readonly:
        # RFC 9051 6.4.1: CLOSE expunges silently
        await s.run_blocking(s.deps.store.expunge, s.user, sel.name, None)
    s.deselect()
    return f"{cmd.name} completed"


# ------------------------------------------------------------------ SEARCH / SORT / THREAD


def _uses_modseq(key: SearchKey) -> bool:
    return key.name == "MODSEQ" or any(_uses_modseq(k) for k in key.children)


async def _run_search(s: Session, key: SearchKey) -> list[search.Candidate]:
    sel = _selected(s)
    candidates = [
        search.Candidate(i + 1, sel.info[uid], uid in sel.recent) for i, uid in enumerate(sel.uids)
    ]
    matcher = search.Matcher(len(sel.uids), sel.uids[-1] if sel.uids else 0, time.time())
    return await s.run_blocking(
        search.search, s.deps.store, s.user, sel.name, candidates, key, matcher
    )


async def search_(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Search)
    search.check_charset(cmd.charset, s.utf8)  # RFC 6855 3: UTF8=ACCEPT allows only UTF-8
    modseq = _uses_modseq(cmd.key)
    if modseq:
        s.enable_condstore()  # RFC 7162 3.1
    found = await _run_search(s, cmd.key)
    numbers = [c.info.uid if cmd.uid else c.seq for c in found]
    top_modseq = max((c.info.modseq for c in found), default=0)
    if cmd.returns is not None and searchres.wants_save(cmd.returns):  # RFC 5182 2.1
        _selected(s).saved = searchres.to_save([c.info.uid for c in found], cmd.returns)
    if searchres.only_save(cmd.returns):
        pass  # RFC 5182 2.1: SAVE alone, no ESEARCH response
    elif cmd.returns is None and not s.rev2:
        line = "* SEARCH" + "".join(f" {n}" for n in numbers)
        if modseq and found:  # RFC 7162 3.1.5: (MODSEQ highest) after the numbers
            line += f" (MODSEQ {top_modseq})"
        s.send(line.encode() + b"\r\n")
    else:  # RFC 4731 3.1: ESEARCH response
        returns = cmd.returns or ("ALL",)
        parts = [f'* ESEARCH (TAG "{cmd.tag}")']
        if cmd.uid:
            parts.append("UID")
        if numbers and "MIN" in returns:
            parts.append(f"MIN {min(numbers)}")
        if numbers and "MAX" in returns:
            parts.append(f"MAX {max(numbers)}")
        if numbers and "ALL" in returns:
            parts.append(f"ALL {compress_uids(numbers)}")
        if "COUNT" in returns:
            parts.append(f"COUNT {len(numbers)}")
        if modseq and found:
            # RFC 7162 3.1.5 / RFC 4731 3.2: the highest modseq of the messages returned:
            # MIN and MAX return one each, ALL and COUNT every match (as Dovecot 2.3).
            shown = found
            if "ALL" not in returns and "COUNT" not in returns:
                ends = {min(numbers) if "MIN" in returns else 0}
                ends.add(max(numbers) if "MAX" in returns else 0)
                shown = [c for c, n in zip(found, numbers, strict=True) if n in ends]
            if shown:
                parts.append(f"MODSEQ {max(c.info.modseq for c in shown)}")
        s.send(" ".join(parts).encode() + b"\r\n")
    return f"{'UID ' if cmd.uid else ''}SEARCH completed"


async def thread_(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Thread)
    search.check_charset(cmd.charset, s.utf8)  # RFC 6855 3: UTF8=ACCEPT allows only UTF-8
    sel = _selected(s)
    found = await _run_search(s, cmd.key)
    if cmd.uid:  # UID THREAD: the tree holds UIDs
        found = [search.Candidate(c.info.uid, c.info, c.recent) for c in found]
    text = await s.run_blocking(search.thread, s.deps.store, s.user, sel.name, found, cmd.algorithm)
    s.send(("* THREAD " + text).rstrip().encode() + b"\r\n")
    return f"{'UID ' if cmd.uid else ''}THREAD completed"
