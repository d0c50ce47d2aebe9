"""Mailbox commands: SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB
NAMESPACE STATUS APPEND GETQUOTA GETQUOTAROOT."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.imap import catenate, wire
from appliance.imap.commands import (
    Append,
    Command,
    ListCommand,
    MailboxCommand,
    Rename,
    Select,
    Status,
)
from appliance.imap.errors import ImapError, bad, from_store
from appliance.imap.listing import (
    MAX_PATTERNS,
    ListEntry,
    ListOptionError,
    ListRequest,
    check_options,
    list_entries,
)
from appliance.imap.notify import inferiors, publish_list_change
from appliance.imap.selected import SelectedMailbox, compress_uids
from appliance.mime.binary import rewrite_file_without_nul
from appliance.store import reserve
from appliance.store.base import (
    INBOX,
    SEPARATOR,
    SPECIAL_USE,
    MailboxNotFound,
    MailboxStatus,
    NewMessage,
    StoreError,
)
from appliance.store.names import canonical_mailbox, normalize_flag, valid_flag

if TYPE_CHECKING:
    from appliance.imap.session import Session

STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "SIZE",
        "HIGHESTMODSEQ",
        "DELETED",
        "APPENDLIMIT",
    }
)


# ------------------------------------------------------------------ SELECT / EXAMINE


async def select(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Select)
    readonly = cmd.name == "EXAMINE"
    if cmd.qresync is not None and not s.qresync:
        raise bad("QRESYNC is not enabled")  # RFC 7162 3.2.5
    name = s.mailbox_in(cmd.mailbox)
    if s.selected is not None:
        s.deselect()
        if s.condstore or s.rev2:
            s.send(b"* OK [CLOSED] Previous mailbox closed\r\n")  # RFC 7162 3.2.11
    if cmd.condstore:
        s.condstore = True  # RFC 7162 3.1.8: SELECT (CONDSTORE) enables CONDSTORE
    subscription = s.deps.bus.subscribe(s.user, name)
    try:
        snapshot = await s.run_blocking(
            s.deps.store.snapshot, s.user, name, claim_recent=not readonly
        )
    except MailboxNotFound:
        subscription.close()
        raise ImapError("Mailbox does not exist", "NONEXISTENT") from None
    except StoreError:
        subscription.close()
        raise
    sel = SelectedMailbox(name, snapshot, readonly, subscription)
    s.select(sel)
    st = snapshot.status
    for line in sel.flags_lines():
        s.send(line)
    s.send(b"* %d EXISTS\r\n" % len(sel))
    if not s.rev2:
        # RFC 3501 6.3.1/6.3.2: SELECT claims \Recent; EXAMINE reports the messages no
        # session has claimed yet without claiming them.
        s.send(b"* %d RECENT\r\n" % len(sel.recent))
        first_unseen = next(
            (i + 1 for i, uid in enumerate(sel.uids) if "\\Seen" not in sel.info[uid].flags), None
        )
        if first_unseen is not None:
            s.send(b"* OK [UNSEEN %d] First unseen message\r\n" % first_unseen)
    s.send(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % st.uidvalidity)
    s.send(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % st.uidnext)
    s.send(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % st.highest_modseq)  # RFC 7162 3.1.2.1
    if cmd.qresync is not None and cmd.qresync.uidvalidity == st.uidvalidity:
        await _qresync(s, sel, cmd)
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    return f"[{mode}] {cmd.name} completed"


async def _qresync(s: Session, sel: SelectedMailbox, cmd: Select) -> None:
    """RFC 7162 3.2.5.2: VANISHED (EARLIER) and FETCH for what changed since modseq."""
    params = cmd.qresync
    assert params is not None
    changes = await s.run_blocking(s.deps.store.changes, s.user, sel.name, params.modseq)
    vanished = list(changes.expunged)
    if params.known_uids:
        top = max(vanished, default=0)
        vanished = [
            u
            for u in vanished
            if any(
                (lo or top) <= u <= (hi or top) or (hi or top) <= u <= (lo or top)
                for lo, hi in params.known_uids
            )
        ]
    if vanished:
        s.send(b"* VANISHED (EARLIER) " + compress_uids(vanished).encode() + b"\r\n")
    for info in changes.changed:
        if info.uid in sel.info:
            s.send(sel.flags_response(info.uid, True))


# ------------------------------------------------------------------ CREATE DELETE RENAME ...


async def create(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, MailboxCommand)
    name = s.mailbox_in(cmd.mailbox).rstrip(SEPARATOR)  # RFC 9051 6.3.4: trailing separator
    special = None
    if cmd.use:
        if len(cmd.use) > 1 or cmd.use[0] not in SPECIAL_USE:
            raise ImapError("Unsupported special-use attribute", "USEATTR")  # RFC 6154 3
        special = cmd.use[0]
    try:
        await s.run_blocking(s.deps.store.create_mailbox, s.user, name, special)
    except StoreError as exc:
        raise from_store(exc) from exc
    publish_list_change(s, "create", name)  # RFC 5465 5.4: MailboxName
    return "CREATE completed"


async def delete(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, MailboxCommand)
    name = s.mailbox_in(cmd.mailbox)
    if name == INBOX:
        raise ImapError("INBOX cannot be deleted", "CANNOT")
    if s.selected is not None and s.selected.name == name:
        s.deselect()
    await s.run_blocking(s.deps.store.delete_mailbox, s.user, name)
    publish_list_change(s, "delete", name)  # RFC 5465 5.4: MailboxName
    return "DELETE completed"


async def rename(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Rename)
    old, new = s.mailbox_in(cmd.old), s.mailbox_in(cmd.new)
    moving = [] if old == INBOX else [old, *await inferiors(s, old)]
    await s.run_blocking(s.deps.store.rename_mailbox, s.user, old, new)
    # RFC 5465 5.4: MailboxName for the mailbox and each inferior (renaming INBOX creates
    # the new name, INBOX stays)
    if old == INBOX:
        publish_list_change(s, "create", new)
    for name in moving:
        publish_list_change(s, "rename", new + name[len(old) :], name)
    sel = s.selected
    if sel is not None and old != INBOX and (sel.name == old or sel.name.startswith(old + "/")):
        # The selected mailbox moved with its messages and UIDs: follow it.
        sel.subscription.close()
        sel.name = new + sel.name[len(old) :]
        sel.subscription = s.deps.bus.subscribe(s.user, sel.name)
    return "RENAME completed"


async def subscribe(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, MailboxCommand)
    name = s.mailbox_in(cmd.mailbox)
    subscribed = cmd.name == "SUBSCRIBE"
    await s.run_blocking(s.deps.store.subscribe, s.user, name, subscribed)
    publish_list_change(s, cmd.name.lower(), name)  # RFC 5465 5.5: SubscriptionChange
    return f"{cmd.name} completed"


async def namespace(s: Session, cmd: Command) -> str:
    s.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n')  # RFC 2342 5: one personal namespace
    return "NAMESPACE completed"


# ------------------------------------------------------------------ LIST / LSUB


def _list_patterns(s: Session, cmd: ListCommand) -> tuple[str, ...]:
    """reference + pattern as store names. A name that is not valid modified UTF-7 can
    match no mailbox: it lists nothing (Dovecot answers OK with no LIST response)."""
    try:
        reference = s.mailbox_in(cmd.reference) if cmd.reference else ""
    except ImapError:
        return ()
    out = []
    for pattern in cmd.patterns:
        try:
            out.append(canonical_mailbox(reference + s.mailbox_in(pattern)))
        except ImapError:
            continue
    return tuple(out)


def _list_blocking(s: Session, req: ListRequest) -> list[ListEntry]:
    boxes = s.deps.store.list_mailboxes(s.user)
    return list_entries(boxes, s.deps.store.subscriptions(s.user), req)


async def list_(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, ListCommand)
    lsub = cmd.name == "LSUB"
    try:
        check_options(cmd.selection, cmd.returns, lsub)  # RFC 5258 3, 3.1
    except ListOptionError as exc:
        raise bad(str(exc)) from None
    if lsub and cmd.extended:
        raise bad("LSUB takes one mailbox pattern")
    if len(cmd.patterns) > MAX_PATTERNS:
        raise bad("Too many mailbox patterns")
    if set(cmd.status_items) - STATUS_ITEMS:
        raise bad("Unknown STATUS item")
    if not lsub and not cmd.extended and cmd.patterns == ("",):
        # RFC 9051 6.3.9: an empty pattern asks for the separator and root
        s.send(b'* LIST (\\Noselect) "/" ""\r\n')
        return "LIST completed"
    req = ListRequest(
        patterns=_list_patterns(s, cmd),
        lsub=lsub,
        extended=cmd.extended,
        selection=frozenset(cmd.selection),
        returns=frozenset(cmd.returns),
    )
    entries = await s.run_blocking(_list_blocking, s, req) if req.patterns else []
    word = b"LSUB" if lsub else b"LIST"
    for entry in entries:
        line = b"* " + word + b" (" + " ".join(entry.attributes).encode() + b') "/" '
        line += s.mailbox_out(entry.name)
        if entry.childinfo:  # RFC 5258 3.5 (written as Dovecot writes it)
            line += b" (CHILDINFO (" + " ".join(f'"{c}"' for c in entry.childinfo).encode()
            line += b"))"
        s.send(line + b"\r\n")
        if cmd.status_items and entry.selectable:  # RFC 5819 2: LIST-STATUS
            try:
                st = await s.run_blocking(s.deps.store.status, s.user, entry.name)
            except StoreError:
                continue
            s.send(_status_line(s, entry.name, st, cmd.status_items))
    return f"{cmd.name} completed"


# ------------------------------------------------------------------ STATUS


def _recent(s: Session, name: str, st: MailboxStatus) -> int:
    """RFC 3501 6.3.10: STATUS RECENT counts the \\Recent messages: those no session has
    claimed; for the selected mailbox, also the ones this session shows \\Recent (as
    Dovecot answers)."""
    sel = s.selected
    if sel is None or sel.name != name:
        return st.recent
    if sel.readonly:  # this session's \Recent ones are unclaimed: counted in st.recent
        return max(st.recent, len(sel.recent))
    return len(sel.recent) + st.recent  # unclaimed arrivals become ours at the next sync


def _status_line(s: Session, name: str, st: MailboxStatus, items: tuple[str, ...]) -> bytes:
    values = {
        "MESSAGES": st.messages,
        "RECENT": _recent(s, name, st) if "RECENT" in items else 0,
        "UIDNEXT": st.uidnext,
        "UIDVALIDITY": st.uidvalidity,
        "UNSEEN": st.unseen,
        "SIZE": st.size,  # RFC 8438
        "HIGHESTMODSEQ": st.highest_modseq,  # RFC 7162 3.1.6
        "DELETED": st.deleted,  # RFC 9051 6.3.11
        "APPENDLIMIT": s.config.limits.max_message_size,  # RFC 7889 4
    }
    if "HIGHESTMODSEQ" in items:
        s.enable_condstore()  # RFC 7162 3.1: sends HIGHESTMODSEQ first when selected
    body = " ".join(f"{item} {values[item]}" for item in items)
    return b"* STATUS " + s.mailbox_out(name) + b" (" + body.encode() + b")\r\n"


async def status(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Status)
    unknown = set(cmd.items) - STATUS_ITEMS
    if unknown:
        raise bad(f"Unknown STATUS item {sorted(unknown)[0]}")
    name = s.mailbox_in(cmd.mailbox)
    try:
        st = await s.run_blocking(s.deps.store.status, s.user, name)
    except MailboxNotFound:
        raise ImapError("Mailbox does not exist", "NONEXISTENT") from None
    s.send(_status_line(s, name, st, cmd.items))
    return "STATUS completed"


# ------------------------------------------------------------------ APPEND


def _write_temp(data: bytes) -> Path:
    fd, name = tempfile.mkstemp(prefix="imap-append-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(name)


async def append(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Append)
    name = s.mailbox_in(cmd.mailbox)
    limit = s.config.limits.max_message_size
    batch: list[NewMessage] = []
    messages = list(cmd.messages)
    for i, message in enumerate(messages):
        if message.parts:  # RFC 4469: a CATENATE message is built (spooled) first
            message = messages[i] = await catenate.build(s, message)
        if message.literal.size > limit:
            raise ImapError("Message too large", "TOOBIG")  # RFC 7889 3
        flags = [normalize_flag(f) for f in message.flags if f.upper() != "\\RECENT"]
        if not all(valid_flag(f) for f in flags):
            raise bad("Invalid flag")
        path = message.literal.path
        if path is None:
            path = await s.run_blocking(_write_temp, message.literal.data or b"")
            s.temp_files.append(str(path))
        # RFC 9051 4.3: NUL octets (a literal8, RFC 3516 4.4) are stored re-encoded (base64)
        await s.run_blocking(rewrite_file_without_nul, path)
        batch.append(NewMessage(path, frozenset(flags), message.date))
    cfg = s.config
    try:
        # The disk keeps its free-space reserve (appliance/store/reserve.py). RFC 5530 3
        # OVERQUOTA, as Dovecot 2.3 answers for ENOSPC (its lib-storage maps ENOSPC and
        # EDQUOT to MAIL_ERROR_NOQUOTA, "Not enough disk quota").
        incoming = sum(m.literal.size for m in messages)
        await s.run_blocking(reserve.guard(cfg.mail_dir).check, cfg.limits.disk_reserve, incoming)
    except reserve.InsufficientStorage:
        raise ImapError("Not enough disk space", "OVERQUOTA") from None
    except OSError:
        raise ImapError("Temporary storage failure, try again later", "UNAVAILABLE") from None
    try:
        # RFC 3502 3: MULTIAPPEND stores every message or none; RFC 9208 4.3.1: NO
        # [OVERQUOTA] when they do not all fit the quota (the store decides atomically).
        appended = await s.run_blocking(
            s.deps.store.append_many, s.user, name, batch, quota_bytes=s.quota_bytes
        )
    except StoreError as exc:
        raise from_store(exc, trycreate=True) from exc  # RFC 9051 6.3.12: TRYCREATE
    uids = [a.uid for a in appended]
    uidvalidity = appended[-1].uidvalidity if appended else 0
    # RFC 4315 3: APPENDUID uidvalidity uid-set
    return f"[APPENDUID {uidvalidity} {compress_uids(uids)}] APPEND completed"


# ------------------------------------------------------------------ QUOTA (RFC 9208)

QUOTA_ROOT = "User quota"


async def _quota_line(s: Session) -> bytes:
    # The same usage the store decides APPEND/COPY and delivery with (index totals).
    usage = await s.run_blocking(s.deps.store.usage, s.user)
    used_kib = (usage.bytes + 1023) // 1024
    limit_kib = s.quota_bytes // 1024
    return (
        b"* QUOTA "
        + wire.string(QUOTA_ROOT)
        + b" (STORAGE %d %d)\r\n" % (used_kib, limit_kib)  # RFC 9208 5.1: units of 1024
    )


async def getquotaroot(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, MailboxCommand)
    name = s.mailbox_in(cmd.mailbox)
    await s.run_blocking(s.deps.store.status, s.user, name)  # NONEXISTENT check
    if not s.quota_bytes:
        s.send(b"* QUOTAROOT " + s.mailbox_out(name) + b"\r\n")  # no quota applies
        return "GETQUOTAROOT completed"
    s.send(b"* QUOTAROOT " + s.mailbox_out(name) + b" " + wire.string(QUOTA_ROOT) + b"\r\n")
    s.send(await _quota_line(s))
    return "GETQUOTAROOT completed"


async def getquota(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, MailboxCommand)
    if cmd.mailbox != QUOTA_ROOT or not s.quota_bytes:
        raise ImapError("No such quota root", "NONEXISTENT")
    s.send(await _quota_line(s))
    return "GETQUOTA completed"
