"""Which names LIST and LSUB return, with which attributes (pure; runs in a worker thread).

RFC 9051 6.3.9 / RFC 3501 6.3.9 (LIST, LSUB), RFC 5258 (LIST-EXTENDED: selection and
return options, \\NonExistent, CHILDINFO), RFC 6154 (SPECIAL-USE). The handler passes the
mailboxes and the subscription list the store reported; the subscription list may name
mailboxes that no longer exist (RFC 3501 6.3.6: a server never drops them on its own).
Checked against Dovecot 2.3 on the same hierarchy and commands.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from appliance.store.base import INBOX, SEPARATOR, MailboxInfo
from appliance.store.names import list_match

SELECTION_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"})
MAX_PATTERNS = 100  # mailbox patterns in one LIST command


class ListOptionError(ValueError):
    """Options the command may not combine: the session answers BAD."""


@dataclass(frozen=True)
class ListRequest:
    patterns: tuple[str, ...]  # reference + pattern, as store names
    lsub: bool = False
    extended: bool = False  # RFC 5258 syntax was used (options or a pattern list)
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ListEntry:
    name: str
    attributes: tuple[str, ...]
    selectable: bool  # an existing, selectable mailbox (LIST-STATUS asks only these)
    childinfo: tuple[str, ...] = ()  # RFC 5258 3.5: CHILDINFO selection criteria


def check_options(selection: Iterable[str], returns: Iterable[str], lsub: bool) -> None:
    """RFC 5258 3: unknown options are BAD; RECURSIVEMATCH alone (or with only REMOTE)
    is BAD (3.1). LSUB has no options."""
    chosen, wanted = set(selection), set(returns)
    if lsub and (chosen or wanted):
        raise ListOptionError("LSUB takes no options")
    unknown = chosen - SELECTION_OPTIONS
    if unknown:
        raise ListOptionError(f"Unknown LIST selection option {sorted(unknown)[0]}")
    if "RECURSIVEMATCH" in chosen and not chosen - {"RECURSIVEMATCH", "REMOTE"}:
        # RFC 5258 3.1: "MUST NOT occur as the only selection option (or only with REMOTE)"
        raise ListOptionError("RECURSIVEMATCH must not be the only selection option")
    unknown = wanted - RETURN_OPTIONS
    if unknown:
        raise ListOptionError(f"Unknown LIST return option {sorted(unknown)[0]}")


def _ancestors(name: str) -> Iterable[str]:
    parts = name.split(SEPARATOR)
    return (SEPARATOR.join(parts[:i]) for i in range(1, len(parts)))


def list_entries(
    boxes: Sequence[MailboxInfo], subscribed: Collection[str], req: ListRequest
) -> list[ListEntry]:
    """The LIST/LSUB responses for ``req``, INBOX first, then by name."""
    known = {b.name: b for b in boxes}
    by_subscription = req.lsub or "SUBSCRIBED" in req.selection
    special_only = not req.lsub and "SPECIAL-USE" in req.selection
    recursive = "RECURSIVEMATCH" in req.selection

    def matches(name: str) -> bool:
        return any(list_match(p, name) for p in req.patterns)

    def meets(name: str) -> bool:
        """The selection criteria (RFC 5258 3): without SUBSCRIBED, the existing names."""
        if by_subscription:
            if name not in subscribed:
                return False
        elif name not in known:
            return False
        return not special_only or (name in known and bool(known[name].special_use))

    candidates = set(known)
    if by_subscription:
        candidates.update(subscribed)
    # Names with a descendant that meets the criteria but is not matched by the pattern:
    # RFC 5258 3.5 CHILDINFO (RECURSIVEMATCH), RFC 3501 6.3.9 LSUB "\Noselect" parents.
    hidden_below: set[str] = set()
    if req.lsub or recursive:
        for name in candidates:
            if meets(name) and not matches(name):
                hidden_below.update(_ancestors(name))
        candidates.update(hidden_below)
    criteria = tuple(c for c in ("SUBSCRIBED", "SPECIAL-USE") if c in req.selection)
    out: list[ListEntry] = []
    for name in sorted(candidates, key=lambda n: (n != INBOX, n)):
        if not matches(name):
            continue
        selected = meets(name)
        parent_only = not selected and name in hidden_below
        if not selected and not parent_only:
            continue
        box = known.get(name)
        exists = box is not None and box.selectable
        if req.lsub:
            # RFC 3501 6.3.9: an unsubscribed parent of a subscribed name that "%" hid is
            # returned with \Noselect; subscribed names as they are (Dovecot: "()" even
            # for a name whose mailbox was deleted).
            noselect = parent_only or (box is not None and not box.selectable)
            out.append(ListEntry(name, ("\\Noselect",) if noselect else (), exists))
            continue
        attrs: list[str] = []
        if not exists:
            # RFC 5258 3: \NonExistent (implies \Noselect) must be accurate in extended
            # LIST; the plain LIST of RFC 3501 says \Noselect.
            attrs.append("\\NonExistent" if req.extended else "\\Noselect")
        prefix = name + SEPARATOR
        has_children = box.has_children if box else any(n.startswith(prefix) for n in known)
        attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
        if box is not None and box.special_use:
            attrs.append(box.special_use)  # RFC 6154 2
        if name in subscribed and ("SUBSCRIBED" in req.returns or by_subscription):
            attrs.append("\\Subscribed")  # RFC 5258 3.1: SUBSCRIBED implies the return option
        childinfo = criteria if recursive and name in hidden_below else ()
        out.append(ListEntry(name, tuple(attrs), exists, childinfo))
    return out
