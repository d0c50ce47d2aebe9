"""IMAP NOTIFY (RFC 5465): which events a session asked for, and sending them.

The grammar (:func:`parse_notify`) is pure; :class:`NotifyState` holds one session's
request, its user-wide :class:`~appliance.events.Subscription` and the last STATUS it
reported per mailbox. The session races the read of the next command line against
:meth:`NotifyState.wait` and calls :meth:`NotifyState.deliver` between commands (and
during IDLE), never inside a command's response or while a literal is read.

Mailbox list events (MailboxName, SubscriptionChange) come from this daemon's IMAP
sessions (:func:`publish_list_change`); mailboxes created or removed by other programs
are not reported. Message events for other mailboxes become ``* STATUS`` responses
(RFC 5465 5.2-5.4; the items Dovecot 2.3 sends), for the selected mailbox the usual
EXISTS / FETCH / EXPUNGE.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.events import MailboxChanged, Subscription
from appliance.imap.commands import Command, Fetch, FetchAtt
from appliance.imap.cursor import Cursor, ParseError
from appliance.imap.errors import ImapError
from appliance.store.base import INBOX, SEPARATOR, MailboxNotFound, MailboxStatus, StoreError

if TYPE_CHECKING:
    from appliance.imap.session import Session

log = logging.getLogger(__name__)

# RFC 5465 5: the events this server sends; the others are answered NO [BADEVENT].
SUPPORTED_EVENTS = (
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "MailboxName",
    "SubscriptionChange",
)
_KNOWN = {e.upper(): e for e in SUPPORTED_EVENTS}
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})
MAX_FILTER_MAILBOXES = 100  # mailbox names in one SUBTREE / MAILBOXES filter
MAX_GROUPS = 20  # event groups in one NOTIFY SET
MAX_TRACKED = 1000  # mailboxes whose last STATUS is remembered (more: any change is sent)
OVERFLOW = 100  # appliance.events keeps at most 100 pending events per subscription


@dataclass(frozen=True)
class Filter:
    kind: str  # SELECTED SELECTED-DELAYED INBOXES PERSONAL SUBSCRIBED SUBTREE MAILBOXES
    names: tuple[str, ...] = ()  # wire names (SUBTREE, MAILBOXES)
    events: frozenset[str] = frozenset()  # empty: NONE
    fetch_atts: tuple[FetchAtt, ...] = ()  # MessageNew's fetch-att (selected mailbox)


@dataclass(frozen=True)
class Notify(Command):
    status: bool = False
    filters: tuple[Filter, ...] | None = None  # None: NOTIFY NONE
    unsupported: tuple[str, ...] = ()  # events named that this server does not send


@dataclass(frozen=True)
class ListChange:
    """A mailbox list change made by an IMAP session (the ``origin`` of the event)."""

    kind: str  # "create" "delete" "rename" "subscribe" "unsubscribe"
    name: str
    old: str = ""  # rename: the old name


# ------------------------------------------------------------------ grammar


def parse_notify(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    """RFC 5465 8: "NOTIFY" SP ("SET" [SP "STATUS"] SP event-groups / "NONE")."""
    from appliance.imap.parser import fetch_att  # the parser imports this module

    cur.sp()
    word = cur.atom().upper()
    if word == "NONE":
        return Notify(tag, name)
    if word != "SET":
        raise ParseError("NOTIFY needs SET or NONE")
    cur.sp()
    status = False
    if cur.peek() != ord("("):
        if cur.atom().upper() != "STATUS":
            raise ParseError("NOTIFY SET: expected STATUS or an event group")
        status = True
        cur.sp()
    filters: list[Filter] = []
    unsupported: list[str] = []
    while True:
        filters.append(_event_group(cur, unsupported, lambda: fetch_att(cur)))
        if len(filters) > MAX_GROUPS:
            raise ParseError("too many NOTIFY event groups")
        if not cur.accept(b" "):
            break
    selected = [f for f in filters if f.kind.startswith("SELECTED")]
    if len(selected) > 1:  # Dovecot 2.3 answers BAD too
        raise ParseError("SELECTED given more than once")
    return Notify(
        tag,
        name,
        status=status,
        filters=tuple(filters),
        unsupported=tuple(dict.fromkeys(unsupported)),
    )


def _event_group(cur: Cursor, unsupported: list[str], fetch_att: Callable[[], FetchAtt]) -> Filter:
    cur.expect(b"(")
    kind = cur.atom().upper()
    names: tuple[str, ...] = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        cur.sp()
        if cur.peek() == ord("("):
            names = tuple(cur.paren_list(cur.mailbox, False))
        else:
            names = (cur.mailbox(),)
        if len(names) > MAX_FILTER_MAILBOXES:
            raise ParseError("too many mailboxes in a NOTIFY filter")
    elif kind not in ("SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED"):
        raise ParseError(f"unknown NOTIFY filter {kind}")
    cur.sp()
    events: set[str] = set()
    atts: list[FetchAtt] = []
    if cur.accept(b"("):
        while True:
            raw = cur.atom()
            event = _KNOWN.get(raw.upper())
            if event is None:
                unsupported.append(raw)
            else:
                events.add(event)
            if event == "MessageNew" and cur.line[cur.pos : cur.pos + 2] == b" (":
                cur.sp()
                atts = cur.paren_list(fetch_att, False)
            if cur.accept(b")"):
                break
            cur.sp()
    elif cur.atom().upper() != "NONE":
        raise ParseError("NOTIFY events must be a list or NONE")
    cur.expect(b")")
    # RFC 5465 5.1-5.3: MessageNew and MessageExpunge go together, and FlagChange (or
    # AnnotationChange) needs both; otherwise the command is BAD.
    if ("MessageNew" in events) != ("MessageExpunge" in events):
        raise ParseError("MessageNew and MessageExpunge must be given together")
    if "FlagChange" in events and "MessageNew" not in events:
        raise ParseError("FlagChange needs MessageNew and MessageExpunge")
    return Filter(kind, names, frozenset(events), tuple(atts))


# ------------------------------------------------------------------ command


async def notify_(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Notify)
    if cmd.unsupported:
        # RFC 5465 3.1/8: NO [BADEVENT (the events this server supports)]; the earlier
        # NOTIFY stays in force.
        code = "BADEVENT (" + " ".join(SUPPORTED_EVENTS) + ")"
        raise ImapError("Unsupported NOTIFY events: " + " ".join(cmd.unsupported), code)
    filters = tuple(
        Filter(f.kind, tuple(s.mailbox_in(n) for n in f.names), f.events, f.fetch_atts)
        for f in cmd.filters or ()
    )
    if s.notify is not None:
        s.notify.close()
        s.notify = None
    if not any(f.events for f in filters):  # NOTIFY NONE, or every group NONE
        return "NOTIFY completed"
    state = NotifyState(s, filters)
    s.notify = state
    await state.start(cmd.status)
    return "NOTIFY completed"


class NotifyState:
    """One session's NOTIFY request and what it has reported so far."""

    def __init__(self, s: Session, filters: tuple[Filter, ...]) -> None:
        self.s = s
        # UIDVALIDITY of each mailbox at NOTIFY SET: STATUS carries UIDVALIDITY only for
        # a mailbox whose UIDVALIDITY is not this one (created later), as Dovecot 2.3.
        self.uidvalidity: dict[str, int] = {}
        self.filters = filters
        selected = next((f for f in filters if f.kind.startswith("SELECTED")), None)
        # SELECTED / SELECTED-DELAYED with message events (SELECTED NONE: as if absent)
        self.selected = selected if selected and selected.events & MESSAGE_EVENTS else None
        self.others = tuple(f for f in filters if not f.kind.startswith("SELECTED"))
        self.sub: Subscription = s.deps.bus.subscribe(s.user)  # every mailbox of the user
        self.reported: dict[str, MailboxStatus] = {}  # the last STATUS per mailbox
        self.created: set[str] = set()  # created since NOTIFY SET, still empty
        self.subscriptions: frozenset[str] = frozenset()

    def close(self) -> None:
        self.sub.close()

    async def wait(self) -> list[MailboxChanged]:
        return await self.sub.wait()

    # -------------------------------------------------------------- which mailboxes

    def _events_for(self, name: str) -> frozenset[str]:
        """Events asked for a mailbox other than the selected one (union of filters)."""
        out: set[str] = set()
        for f in self.others:
            if _matches(f, name, self.subscriptions):
                out |= f.events
        return frozenset(out)

    def _is_selected(self, name: str) -> bool:
        sel = self.s.selected
        return sel is not None and sel.name == name

    async def start(self, send_status: bool) -> None:
        s = self.s
        store = s.deps.store
        self.subscriptions = await s.run_blocking(store.subscriptions, s.user)
        boxes = await s.run_blocking(store.list_mailboxes, s.user)
        # The selected mailbox too: once another is selected, its changes are STATUS.
        watched = [
            b.name for b in boxes if b.selectable and self._events_for(b.name) & MESSAGE_EVENTS
        ][:MAX_TRACKED]
        for name in watched:
            with contextlib.suppress(StoreError):
                status = await s.run_blocking(store.status, s.user, name)
                self.reported[name] = status
                # RFC 5465 3.1: STATUS indicator, one STATUS per mailbox now (not the
                # selected one: EXISTS and FETCH tell about it)
                if send_status and not self._is_selected(name):
                    s.send(self._status_line(status))
                self.uidvalidity[name] = status.uidvalidity

    # -------------------------------------------------------------- delivery

    async def deliver(self, events: list[MailboxChanged], idling: bool = False) -> None:
        """Send what ``events`` mean for this session (between commands or in IDLE)."""
        s = self.s
        if len(events) >= OVERFLOW:
            # RFC 5465 5.8: too much to report; NOTIFY is off until the client sets it again.
            s.send(b"* OK [NOTIFICATIONOVERFLOW] Too many changes, NOTIFY is now off\r\n")
            self.close()
            s.notify = None
            return
        names: list[str] = []
        selected_changed = False
        for event in events:
            change = event.origin
            if isinstance(change, ListChange):
                # Also the session's own changes, as Dovecot 2.3 does.
                self._list_change(change)
                continue
            if not event.mailbox:
                continue
            if self._is_selected(event.mailbox):
                selected_changed = True
            elif event.mailbox not in names:
                names.append(event.mailbox)
        if selected_changed and self.selected is not None:
            await self._selected(idling)
        for name in names:
            await self._other(name)

    async def _selected(self, idling: bool) -> None:
        s = self.s
        sel = s.selected
        assert sel is not None and self.selected is not None
        top = sel.uids[-1] if sel.uids else 0
        # RFC 5465 6: SELECTED-DELAYED holds EXPUNGE back until a command allows it
        # (IDLE does).
        await s.sync(idling or self.selected.kind == "SELECTED", force=True)
        sel = s.selected
        if sel is None or not self.selected.fetch_atts:
            return
        arrived = sel.uids[bisect.bisect_right(sel.uids, top) :]
        if arrived:  # RFC 5465 5.2: MessageNew with fetch-att: FETCH after the EXISTS
            from appliance.imap import handlers_message

            atts = tuple(_peek(a) for a in self.selected.fetch_atts)
            seqset = ((arrived[0], arrived[-1]),)
            fetch = Fetch("*", "FETCH", True, seqset, atts)
            with contextlib.suppress(ImapError, StoreError):
                await handlers_message.fetch_(s, fetch)

    async def _other(self, name: str) -> None:
        wanted = self._events_for(name) & MESSAGE_EVENTS
        if not wanted:
            return
        s = self.s
        try:
            now = await s.run_blocking(s.deps.store.status, s.user, name)
        except MailboxNotFound:
            self.reported.pop(name, None)
            return
        before = self.reported.get(name)
        if before is None and name in self.created:
            if now.messages == 0 and now.uidnext <= 1:
                return  # created after NOTIFY SET and nothing in it yet
            self.created.discard(name)  # its first message: MessageNew
        elif before is None and len(self.reported) < MAX_TRACKED:
            # Not seen before (made by another program): what changed is unknown, so
            # this is the baseline and nothing is sent.
            self.reported[name] = now
            return
        elif before is not None:
            if now.highest_modseq == before.highest_modseq and now.messages == before.messages:
                return
            counts = (now.messages, now.uidnext) != (before.messages, before.uidnext)
            if not counts and "FlagChange" not in wanted:
                return
        if before is not None or len(self.reported) < MAX_TRACKED:
            self.reported[name] = now
        s.send(self._status_line(now))

    def _status_line(self, st: MailboxStatus) -> bytes:
        # RFC 5465 5.1-5.3: MESSAGES and UIDNEXT (and UNSEEN), the items Dovecot 2.3
        # sends for MessageNew, MessageExpunge and FlagChange alike.
        items = b"MESSAGES %d UIDNEXT %d" % (st.messages, st.uidnext)
        if self.uidvalidity.get(st.name) != st.uidvalidity:
            items += b" UIDVALIDITY %d" % st.uidvalidity
        items += b" UNSEEN %d" % st.unseen
        if self.s.condstore:  # RFC 5465 5.1-5.3 / RFC 7162 3.1.2.1: with CONDSTORE on
            items += b" HIGHESTMODSEQ %d" % st.highest_modseq
        return b"* STATUS " + self.s.mailbox_out(st.name) + b" (" + items + b")\r\n"

    def _list_change(self, change: ListChange) -> None:
        s = self.s
        if change.kind in ("subscribe", "unsubscribe"):
            if change.kind == "subscribe":
                self.subscriptions |= {change.name}
            else:
                self.subscriptions -= {change.name}
            if "SubscriptionChange" not in self._events_for(change.name):
                return
            attrs = b"(\\Subscribed)" if change.kind == "subscribe" else b"()"
            s.send(b"* LIST " + attrs + b' "/" ' + s.mailbox_out(change.name) + b"\r\n")
            return
        if change.kind == "delete":
            self.reported.pop(change.name, None)
            self.created.discard(change.name)
        elif change.kind == "create" and len(self.created) < MAX_TRACKED:
            self.created.add(change.name)  # starts empty: its first message is MessageNew
        if "MailboxName" not in (
            self._events_for(change.name) | self._events_for(change.old or change.name)
        ):
            return
        line = b"* LIST "
        line += b"(\\NonExistent)" if change.kind == "delete" else b"()"
        line += b' "/" ' + s.mailbox_out(change.name)
        if change.kind == "rename":  # RFC 5465 5.4 / RFC 9051 9 (OLDNAME): ("OLDNAME" (old))
            line += b' ("OLDNAME" (' + s.mailbox_out(change.old) + b"))"
            if change.old in self.reported:
                self.reported[change.name] = self.reported.pop(change.old)
            if change.old in self.created:
                self.created.discard(change.old)
                self.created.add(change.name)
        s.send(line + b"\r\n")


def _peek(att: FetchAtt) -> FetchAtt:
    """Notifications never set \\Seen: BODY[...] and BINARY[...] are sent as .PEEK."""
    if att.section is not None:
        return FetchAtt(att.name, att.section, att.partial, True)
    if att.name in ("RFC822", "RFC822.TEXT"):
        from appliance.imap.commands import Section

        text = "" if att.name == "RFC822" else "TEXT"
        return FetchAtt("BODY", Section(text=text), None, True)
    return att


def _matches(f: Filter, name: str, subscribed: frozenset[str]) -> bool:
    kind = f.kind
    if kind == "PERSONAL":  # RFC 5465 6: every mailbox in the personal namespace
        return True
    if kind == "INBOXES":  # mailboxes that receive delivered mail: INBOX here
        return name == INBOX
    if kind == "SUBSCRIBED":
        return name in subscribed
    if kind == "MAILBOXES":
        return name in f.names
    if kind == "SUBTREE":
        return any(name == n or name.startswith(n + SEPARATOR) for n in f.names)
    return False


async def inferiors(s: Session, name: str) -> list[str]:
    """The mailboxes below ``name`` (a RENAME moves them too)."""
    boxes = await s.run_blocking(s.deps.store.list_mailboxes, s.user)
    return sorted(b.name for b in boxes if b.name.startswith(name + SEPARATOR))


def publish_list_change(s: Session, kind: str, name: str, old: str = "") -> None:
    """Tell the user's other sessions (NOTIFY MailboxName / SubscriptionChange)."""
    change = ListChange(kind, name, old)
    s.deps.bus.publish(MailboxChanged(s.user, "", origin=change))
