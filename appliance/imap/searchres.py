"""SEARCHRES (RFC 5182): ``SEARCH RETURN (SAVE)`` keeps a result, ``$`` refers to it.

The parser turns a ``$`` sequence set into :data:`SAVED`; the selected mailbox keeps the
saved UIDs (``SelectedMailbox.saved``) and resolves :data:`SAVED` against them, so
expunged messages drop out on their own (RFC 5182 2.1). Search programs get ``$``
replaced by the saved UIDs before they run (:func:`expand`).
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.imap.commands import SearchKey, SeqSet

# RFC 5182 3: seq-last-command = "$". Not a valid set of its own (-1 is no message), so a
# place that does not resolve it matches nothing rather than something.
SAVED: SeqSet = ((-1, -1),)


def is_saved(seqset: SeqSet | None) -> bool:
    return seqset == SAVED


def wants_save(returns: tuple[str, ...] | None) -> bool:
    return returns is not None and "SAVE" in returns


def only_save(returns: tuple[str, ...] | None) -> bool:
    """RFC 5182 2.1: SAVE alone returns no ESEARCH response."""
    return bool(returns) and all(r == "SAVE" for r in returns or ())


def to_save(uids: Sequence[int], returns: tuple[str, ...]) -> frozenset[int]:
    """The UIDs to keep, ``uids`` in result order (ascending for SEARCH, sort order for
    SORT). RFC 5182 2.1 / RFC 5267 3.2: with MIN and/or MAX only those are saved."""
    if not uids:
        return frozenset()
    if "MIN" in returns or "MAX" in returns:
        kept = set()
        if "MIN" in returns:
            kept.add(uids[0])
        if "MAX" in returns:
            kept.add(uids[-1])
        return frozenset(kept)
    return frozenset(uids)


def _ranges(uids: frozenset[int]) -> SeqSet:
    ordered = sorted(uids)
    out: list[tuple[int | None, int | None]] = []
    for uid in ordered:
        if out and out[-1][1] == uid - 1:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return tuple(out)


def uses_saved(key: SearchKey) -> bool:
    return (key.name in ("SEQ", "UID") and is_saved(key.seqset)) or any(
        uses_saved(k) for k in key.children
    )


def expand(key: SearchKey, saved: frozenset[int]) -> SearchKey:
    """``$`` (as a sequence set or after UID) -> the saved UIDs (RFC 5182 2.1: both mean
    the same messages). An empty saved result matches nothing."""
    if not uses_saved(key):
        return key
    if key.name in ("SEQ", "UID") and is_saved(key.seqset):
        if not saved:
            return SearchKey("NOT", (SearchKey("ALL"),))
        return SearchKey("UID", seqset=_ranges(saved))
    return SearchKey(
        key.name,
        tuple(expand(k, saved) for k in key.children),
        key.text,
        key.value,
        key.number,
        key.seqset,
    )
