"""CONTEXT=SEARCH (RFC 5267 4): SEARCH RETURN (PARTIAL / CONTEXT / UPDATE) and
CANCELUPDATE.

PARTIAL low:high returns that window of the result (positions from 1, RFC 5267 4.4).
CONTEXT is a hint and changes nothing. UPDATE keeps the search alive while the mailbox
stays selected: after each command (and while idling) the search runs again and the
difference goes out as ``* ESEARCH (TAG "t") [UID] ADDTO (0 set)`` / ``REMOVEFROM (0
set)`` (position 0: the result is unordered, as Dovecot 2.3 answers); a message
expunged from the result is announced by REMOVEFROM just before its EXPUNGE (hooked
into :meth:`SelectedMailbox.expunge_responses`), as Dovecot does. At most
:data:`MAX_UPDATES` live searches per session; one more gets ``* NO [NOUPDATE "tag"]``.

The live searches belong to the selected mailbox object, so SELECT, EXAMINE, CLOSE and
UNSELECT end them (RFC 5267 4.3).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from appliance.imap import handlers_message as hmsg
from appliance.imap import search, searchres
from appliance.imap.commands import CancelUpdate, Command, Search, SearchKey
from appliance.imap.errors import ImapError, bad
from appliance.imap.selected import SelectedMailbox, compress_uids

if TYPE_CHECKING:
    from appliance.imap.session import Session

MAX_UPDATES = 5  # live UPDATE searches per session (each re-runs after every change)
CONTEXT_OPTIONS = frozenset({"CONTEXT", "UPDATE"})


@dataclass
class _Live:
    tag: str
    uid: bool
    key: SearchKey
    result: set[int]  # UIDs


@dataclass
class _Registry:
    live: dict[str, _Live] = field(default_factory=dict)
    fingerprint: tuple[int, int, int] = (0, 0, 0)


_registries: weakref.WeakKeyDictionary[SelectedMailbox, _Registry] = weakref.WeakKeyDictionary()


def uses_context(returns: tuple[str, ...] | None) -> bool:
    return returns is not None and any(
        r in CONTEXT_OPTIONS or r.startswith("PARTIAL ") for r in returns
    )


def partial_of(returns: tuple[str, ...]) -> tuple[int, int] | None:
    for r in returns:
        if r.startswith("PARTIAL "):
            low, _, high = r[8:].partition(":")
            return int(low), int(high)
    return None


def _fingerprint(sel: SelectedMailbox) -> tuple[int, int, int]:
    top = max((info.modseq for info in sel.info.values()), default=0)
    return (len(sel.uids), sel.uids[-1] if sel.uids else 0, top)


def _line(tag: str, uid: bool, word: str, numbers: list[int]) -> bytes:
    prefix = f'* ESEARCH (TAG "{tag}"){" UID" if uid else ""}'
    return f"{prefix} {word} (0 {compress_uids(numbers)})\r\n".encode()


def _on_expunge(registry: _Registry, uid: int, seq: int) -> list[bytes]:
    # RFC 5267 4.3: the message leaves each live result before its EXPUNGE goes out
    out = []
    for live in registry.live.values():
        if uid in live.result:
            live.result.discard(uid)
            out.append(_line(live.tag, live.uid, "REMOVEFROM", [uid if live.uid else seq]))
    return out


def _registry(sel: SelectedMailbox) -> _Registry:
    registry = _registries.get(sel)
    if registry is None:
        registry = _registries[sel] = _Registry()
        ref = weakref.ref(registry)

        def hook(uid: int, seq: int) -> list[bytes]:
            alive = ref()
            return _on_expunge(alive, uid, seq) if alive is not None else []

        sel.on_expunge = hook
    return registry


def render(
    tag: str, uid: bool, numbers: list[int], returns: tuple[str, ...], modseq: int | None
) -> bytes:
    """RFC 4731 3.1 / RFC 5267 4.4: the ESEARCH response. With only CONTEXT/UPDATE/SAVE
    asked, nothing is returned but the tag (as Dovecot); RETURN (CONTEXT) alone means ALL."""
    wanted = set(returns) - {"SAVE"}
    if wanted <= {"CONTEXT"}:
        wanted = {"ALL"}
    parts = [f'* ESEARCH (TAG "{tag}")']
    if uid:
        parts.append("UID")
    if numbers and "MIN" in wanted:
        parts.append(f"MIN {numbers[0]}")
    if numbers and "MAX" in wanted:
        parts.append(f"MAX {numbers[-1]}")
    if numbers and "ALL" in wanted:
        parts.append(f"ALL {compress_uids(numbers)}")
    window = partial_of(returns)
    if window is not None:  # RFC 5267 4.4: PARTIAL (range set-or-NIL)
        low, high = window
        shown = numbers[low - 1 : high]
        parts.append(f"PARTIAL ({low}:{high} {compress_uids(shown) if shown else 'NIL'})")
    if "COUNT" in wanted:
        parts.append(f"COUNT {len(numbers)}")
    if modseq is not None:
        parts.append(f"MODSEQ {modseq}")
    return " ".join(parts).encode() + b"\r\n"


async def search_(s: Session, cmd: Search) -> str:
    """SEARCH with PARTIAL, CONTEXT or UPDATE in RETURN (``$`` already expanded)."""
    assert s.selected is not None and cmd.returns is not None
    sel = s.selected
    search.check_charset(cmd.charset)
    modseq = hmsg._uses_modseq(cmd.key)
    if modseq:
        s.enable_condstore()  # RFC 7162 3.1
    found = await hmsg._run_search(s, cmd.key)
    numbers = [c.info.uid if cmd.uid else c.seq for c in found]
    window = partial_of(cmd.returns)
    returned = found
    if window is not None:
        returned = found[window[0] - 1 : window[1]]
    elif found and not {"ALL", "COUNT"} & set(cmd.returns) and {"MIN", "MAX"} & set(cmd.returns):
        returned = [found[0], found[-1]]  # RFC 4731 3.2: MODSEQ of the messages returned
    top = max((c.info.modseq for c in returned), default=0) if modseq and returned else None
    if searchres.wants_save(cmd.returns):  # RFC 5182 2.1 (PARTIAL: the returned window)
        uids = [c.info.uid for c in (returned if window is not None else found)]
        sel.saved = searchres.to_save(uids, cmd.returns)
    if not searchres.only_save(cmd.returns):
        s.send(render(cmd.tag, cmd.uid, numbers, cmd.returns, top))
    if "UPDATE" in cmd.returns:
        registry = _registry(sel)
        if len(registry.live) >= MAX_UPDATES or cmd.tag in registry.live:
            # RFC 5267 4.2: the search is answered, but not kept up to date
            s.send(f'* NO [NOUPDATE "{cmd.tag}"] Too many updating searches\r\n'.encode())
        else:
            result = {c.info.uid for c in found}
            registry.live[cmd.tag] = _Live(cmd.tag, cmd.uid, cmd.key, result)
            registry.fingerprint = _fingerprint(sel)
    return f"{'UID ' if cmd.uid else ''}SEARCH completed"


async def refresh(s: Session) -> None:
    """Send ADDTO/REMOVEFROM for every live search whose result changed (RFC 5267 4.3)."""
    sel = s.selected
    registry = _registries.get(sel) if sel is not None else None
    if sel is None or registry is None or not registry.live:
        return
    fingerprint = _fingerprint(sel)
    if fingerprint == registry.fingerprint:
        return
    registry.fingerprint = fingerprint
    candidates = [
        search.Candidate(i + 1, sel.info[uid], uid in sel.recent) for i, uid in enumerate(sel.uids)
    ]
    matcher = search.Matcher(len(sel.uids), sel.uids[-1] if sel.uids else 0, time.time())
    for live in list(registry.live.values()):
        try:
            found = await s.run_blocking(
                search.search, s.deps.store, s.user, sel.name, candidates, live.key, matcher
            )
        except ImapError:
            continue
        now = {c.info.uid for c in found}
        known = {uid for uid in live.result if uid in sel.info}
        gone, new = known - now, now - known
        live.result = now
        if gone:
            numbers = sorted(gone) if live.uid else sorted(sel.seq_of(u) for u in gone)
            s.send(_line(live.tag, live.uid, "REMOVEFROM", numbers))
        if new:
            numbers = sorted(new) if live.uid else sorted(sel.seq_of(u) for u in new)
            s.send(_line(live.tag, live.uid, "ADDTO", numbers))


async def cancelupdate(s: Session, cmd: Command) -> str:
    """RFC 5267 4.3: CANCELUPDATE "tag" *(SP "tag"); an unknown tag is NO (as Dovecot)."""
    assert isinstance(cmd, CancelUpdate)
    sel = s.selected
    registry = _registries.get(sel) if sel is not None else None
    live = registry.live if registry is not None else {}
    if not all(tag in live for tag in cmd.tags):
        raise ImapError("Unknown tag")
    for tag in cmd.tags:
        del live[tag]
    return "Updates cancelled"


def check_sort_returns(returns: tuple[str, ...] | None) -> None:
    """CONTEXT=SORT is not offered: SORT takes the ESORT options only."""
    if uses_context(returns):
        raise bad("PARTIAL, CONTEXT and UPDATE are not supported with SORT")
