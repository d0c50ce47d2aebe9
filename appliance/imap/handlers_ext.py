"""Selected-state extension handlers: ESORT (RFC 5267 3) and the SEARCHRES ``$``
(RFC 5182) for SEARCH, SORT and THREAD.

SEARCH and THREAD keep their handlers in :mod:`handlers_message`; the wrappers here
replace ``$`` in the search program by the saved result and reset that result before a
SEARCH that saves, so a failing one leaves it empty (RFC 5182 2.1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from appliance.imap import context, search, searchres
from appliance.imap import handlers_message as hmsg
from appliance.imap.commands import Command, Search, Sort, Thread
from appliance.imap.errors import ImapError
from appliance.imap.selected import SelectedMailbox

if TYPE_CHECKING:
    from appliance.imap.session import Session


def _selected(s: Session) -> SelectedMailbox:
    assert s.selected is not None
    return s.selected


async def search_(s: Session, cmd: Command) -> str | None:
    assert isinstance(cmd, Search)
    sel = _selected(s)
    cmd = dataclasses.replace(cmd, key=searchres.expand(cmd.key, sel.saved))
    # RFC 5267 4: PARTIAL, CONTEXT and UPDATE are answered by imap.context
    handler = context.search_ if context.uses_context(cmd.returns) else hmsg.search_
    if not searchres.wants_save(cmd.returns):
        return await handler(s, cmd)
    try:
        return await handler(s, cmd)
    except ImapError:
        sel.saved = frozenset()  # RFC 5182 2.1: a failed SEARCH ... SAVE empties "$"
        raise


async def thread_(s: Session, cmd: Command) -> str | None:
    assert isinstance(cmd, Thread)
    sel = _selected(s)
    return await hmsg.thread_(s, dataclasses.replace(cmd, key=searchres.expand(cmd.key, sel.saved)))


def ordered_set(numbers: Sequence[int]) -> str:
    """A sequence-set in the given order: runs of consecutive ascending numbers become
    ranges, nothing is reordered (RFC 5267 3.2: ALL lists the sort order)."""
    parts: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts)


def esort_line(
    tag: str,
    uid: bool,
    numbers: Sequence[int],
    returns: tuple[str, ...],
    modseqs: Sequence[int] | None = None,
) -> bytes:
    """RFC 5267 3.2: ``* ESEARCH (TAG "t") [UID] MIN .. MAX .. ALL .. COUNT ..`` where MIN
    and MAX are the first and last message in sort order. RETURN () means ALL. With
    ``modseqs`` (a MODSEQ search key, in sort order), MODSEQ is the highest of the
    messages returned (RFC 7162 3.1.5, RFC 4731 3.2), as for SEARCH."""
    wanted = tuple(r for r in returns if r != "SAVE") or ("ALL",)
    parts = [f'* ESEARCH (TAG "{tag}")']
    if uid:
        parts.append("UID")
    if numbers and "MIN" in wanted:
        parts.append(f"MIN {numbers[0]}")
    if numbers and "MAX" in wanted:
        parts.append(f"MAX {numbers[-1]}")
    if numbers and "ALL" in wanted:
        parts.append(f"ALL {ordered_set(numbers)}")
    if "COUNT" in wanted:
        parts.append(f"COUNT {len(numbers)}")
    if modseqs:
        shown = list(modseqs)
        if not {"ALL", "COUNT"} & set(wanted):
            shown = ([modseqs[0]] if "MIN" in wanted else []) + (
                [modseqs[-1]] if "MAX" in wanted else []
            )
        if shown:
            parts.append(f"MODSEQ {max(shown)}")
    return " ".join(parts).encode() + b"\r\n"


async def sort_(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Sort)
    sel = _selected(s)
    context.check_sort_returns(cmd.returns)
    key = searchres.expand(cmd.key, sel.saved)
    save = searchres.wants_save(cmd.returns)
    if save:
        sel.saved = frozenset()  # RFC 5182 2.1: empty unless this SORT succeeds
    search.check_charset(cmd.charset, s.utf8)  # RFC 6855 3: UTF8=ACCEPT allows only UTF-8
    modseq = hmsg._uses_modseq(key)
    if modseq:
        s.enable_condstore()  # RFC 7162 3.1: SORT with MODSEQ enables CONDSTORE
    found = await hmsg._run_search(s, key)
    ordered = await s.run_blocking(search.sort, s.deps.store, s.user, sel.name, found, cmd.criteria)
    numbers = [c.info.uid if cmd.uid else c.seq for c in ordered]
    modseqs = [c.info.modseq for c in ordered] if modseq else None
    if cmd.returns is None:
        line = "* SORT" + "".join(f" {n}" for n in numbers)
        if modseqs:  # RFC 7162 3.1.5: (MODSEQ highest) after the numbers, as Dovecot
            line += f" (MODSEQ {max(modseqs)})"
        s.send(line.encode() + b"\r\n")
    else:
        if save:  # RFC 5267 3.2 / RFC 5182: MIN/MAX save the first/last in sort order
            sel.saved = searchres.to_save([c.info.uid for c in ordered], cmd.returns)
        if not searchres.only_save(cmd.returns):
            s.send(esort_line(cmd.tag, cmd.uid, numbers, cmd.returns, modseqs))
    return f"{'UID ' if cmd.uid else ''}SORT completed"
