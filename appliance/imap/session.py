"""One IMAP connection: framing, state machine, dispatch, untagged updates, IDLE.

States (RFC 9051 3): not authenticated -> authenticated -> selected -> logout. Commands
are dispatched to the handlers in ``handlers_auth``, ``handlers_mailbox`` and
``handlers_message``; each returns the text of the tagged OK or raises
:class:`~appliance.imap.errors.ImapError`, rendered here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from appliance.accounts import Authenticator
from appliance.config import Config
from appliance.events import ChangeBus, MailboxChanged
from appliance.imap import context, wire
from appliance.imap.commands import Command, Literal
from appliance.imap.connection import LITERAL_PREFIX, Connection, ConnectionClosed, LineTooLong
from appliance.imap.errors import ImapError, bad, from_store
from appliance.imap.fetch import FileRange, Piece
from appliance.imap.parser import ParseError, Segment, literal_suffix, parse_command
from appliance.imap.selected import SelectedMailbox
from appliance.listeners import ServerTls
from appliance.log import new_conn_id
from appliance.store.base import MailboxNotFound, MailStore, StoreError
from appliance.store.names import canonical_mailbox

if TYPE_CHECKING:
    from appliance.imap.notify import NotifyState

log = logging.getLogger(__name__)
T = TypeVar("T")

# Bytes of one command (text lines and literals), bounded per state before anything is
# buffered, spooled or answered with "+" (issue 16; README "Security" lists them).
PREAUTH_COMMAND_MAX = 8 * 1024  # before login: a LOGIN or AUTHENTICATE fits in a few KB
PREAUTH_LITERAL_MAX = 4096  # before login, one literal (RFC 7888 4: the LITERAL- bound)
PREAUTH_LITERAL_COMMANDS = frozenset({"LOGIN", "AUTHENTICATE", "ID"})
MAX_LINE = 64 * 1024  # one text line after login
MAX_COMMAND = 1024 * 1024  # after login: one command but APPEND; APPEND adds one message
MAX_SMALL_LITERAL = 64 * 1024  # non-APPEND literals (strings in SEARCH, LOGIN ...)
MAX_LITERALS = 1000  # literals in one command (each may become a temporary file)
SPOOL_THRESHOLD = 1024 * 1024  # literals above this go to a temporary file ...
# ... and so does every literal once a command holds MAX_COMMAND bytes of them in memory,
# and every APPEND message (see _APPEND_STRING_LITERAL).
MAX_FAILED_LOGINS = 3  # failed LOGIN/AUTHENTICATE on one connection, then BYE
LINGER = 1.0  # seconds to drain input after a closing BYE, so the BYE is not lost to RST
STREAM_CHUNK = 64 * 1024
_TOO_LARGE_PREAUTH = "BAD [TOOBIG] Command too large before login"  # RFC 7888 4
_NO_LITERAL = "BAD Unexpected literal"
_NAME = re.compile(rb"[^ ]* (?:UID )?([A-Za-z0-9]+)", re.IGNORECASE)
# APPEND's messages (and CATENATE TEXT parts) always go to files under the data dir;
# only a mailbox name ("tag APPEND {n}") or a CATENATE URL ("URL {n}") given as a
# literal stays in memory.
_APPEND_STRING_LITERAL = re.compile(rb"(?:\A[^ ]* APPEND|[ (]URL) \{\d+\+?\}\Z", re.IGNORECASE)
_TAG = re.compile(rb"[!#$&'\x2c-\x5b\x5d-\x7a|}~-]+")  # RFC 9051 9: tag, no "+"


def command_name(line: bytes) -> str:
    """The command name in the first line of a command ("" when there is none)."""
    match = _NAME.match(line)
    return match.group(1).decode("ascii").upper() if match else ""


def _first(segments: list[Segment]) -> bytes:
    head = segments[0] if segments else b""
    return head if isinstance(head, bytes) else b""


def tag_of(segments: list[Segment]) -> str:
    """The tag to answer a command refused while reading ("*" when it has none)."""
    tag = _first(segments).split(b" ", 1)[0]
    return tag.decode("ascii") if _TAG.fullmatch(tag) else "*"


def _refusal(segments: list[Segment], refused: str) -> bytes:
    """``tag NO|BAD text`` for a command refused while it was read; without a valid
    tag, an untagged BAD (RFC 9051 7.1.3: the command cannot be identified)."""
    tag = tag_of(segments)
    if tag == "*" and refused.startswith("NO "):
        refused = "BAD " + refused[3:]
    return f"{tag} {refused}\r\n".encode()


def spool_dir(cfg: Config) -> Path:
    """Literals too large for memory go here (under the data dir, swept at start)."""
    return cfg.data_dir / "tmp" / "imap"


def clean_spool_dir(path: Path) -> int:
    """Remove spooled literals an earlier run left (blocking). Returns how many."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    removed = 0
    for entry in path.glob(LITERAL_PREFIX + "*"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed += 1
    return removed


@dataclass(frozen=True)
class ImapDeps:
    """What IMAP sessions use besides the config."""

    store: MailStore
    auth: Authenticator
    bus: ChangeBus  # mailbox changes, for IDLE and NOTIFY
    tls: ServerTls  # STARTTLS reads the current context at each upgrade


Handler = Callable[["Session", Any], Awaitable[str | None]]
NOT_AUTH = frozenset({"notauth"})
AUTH = frozenset({"auth", "selected"})
SELECTED = frozenset({"selected"})
ANY = frozenset({"notauth", "auth", "selected"})


class Session:
    def __init__(
        self,
        config: Config,
        deps: ImapDeps,
        conn: Connection,
        handlers: dict[str, tuple[frozenset[str], Handler]],
        implicit_tls: bool,
    ) -> None:
        self.config = config  # the config in force when the connection came
        self.deps = deps
        self.conn = conn
        self.handlers = handlers
        self.cid = new_conn_id("imap")  # every log line of this task carries conn=<id>
        self.state = "notauth"
        self.user = ""
        self.quota_bytes = 0
        self.implicit_tls = implicit_tls
        self.selected: SelectedMailbox | None = None
        self.utf8 = False  # RFC 6855 UTF8=ACCEPT enabled
        self.condstore = False  # RFC 7162 CONDSTORE enabled
        self.qresync = False
        self.rev2 = False  # RFC 9051 IMAP4rev2 enabled
        self.temp_files: list[str] = []
        self.spool_dir = spool_dir(config)
        self.closing = False
        self.failed_logins = 0
        self.bye_after: str | None = None  # set by a handler: BYE after its tagged reply
        self.notify: NotifyState | None = None  # RFC 5465 NOTIFY SET in force

    # ------------------------------------------------------------ helpers for handlers

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def send(self, data: bytes) -> None:
        self.conn.write(data)

    async def send_pieces(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if isinstance(piece, bytes):
                self.conn.write(piece)
                continue
            await self._stream(piece)

    async def _stream(self, rng: FileRange) -> None:
        def read_at(offset: int, size: int) -> bytes:
            rng.fh.seek(offset)
            return rng.fh.read(size)

        sent = 0
        while sent < rng.length:
            chunk = await asyncio.to_thread(
                read_at, rng.start + sent, min(STREAM_CHUNK, rng.length - sent)
            )
            if not chunk:  # the file shrank under us: pad to the promised length
                chunk = b" " * (rng.length - sent)
            self.conn.write(chunk)
            sent += len(chunk)
            await self.conn.flush()

    def mailbox_in(self, name: str) -> str:
        """Wire name -> store name (RFC 3501 5.1.3 modified UTF-7 unless UTF8=ACCEPT)."""
        if not self.utf8:
            try:
                name = wire.mutf7_decode(name)
            except ValueError:
                raise ImapError("Invalid mailbox name encoding", "CANNOT") from None
        return canonical_mailbox(name)

    def mailbox_out(self, name: str) -> bytes:
        if self.utf8:
            return wire.astring(name, utf8=True)
        return wire.astring(wire.mutf7_encode(name))

    def capabilities(self) -> list[str]:
        # RFC 7888 4: before login only LITERAL- (non-synchronizing literals up to 4096
        # bytes, PREAUTH_LITERAL_MAX); LITERAL+ once logged in.
        literal = "LITERAL-" if self.state == "notauth" else "LITERAL+"
        caps = ["IMAP4rev1", "IMAP4rev2", literal, "SASL-IR", "ENABLE", "ID"]
        if self.state == "notauth":
            if self.conn.tls:
                caps.append("AUTH=PLAIN")
            else:
                # RFC 9051 6.2.3: no plaintext passwords before TLS.
                caps += ["STARTTLS", "LOGINDISABLED"]
            return caps
        caps += [
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "SPECIAL-USE",
            "CREATE-SPECIAL-USE",
            "STATUS=SIZE",
            "ESEARCH",
            "ESORT",  # RFC 5267 3 (handlers_ext)
            "SEARCHRES",  # RFC 5182 (searchres)
            "PREVIEW",  # RFC 8970 (preview)
            "SAVEDATE",  # RFC 8514 (savedate)
            "CATENATE",  # RFC 4469 (catenate)
            "URL-PARTIAL",  # RFC 5550: ;PARTIAL= in CATENATE URLs (catenate)
            "CONTEXT=SEARCH",  # RFC 5267 4 (context)
            "WITHIN",
            "CONDSTORE",
            "QRESYNC",
            "NOTIFY",  # RFC 5465 (notify)
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "BINARY",
            "MULTIAPPEND",
            f"APPENDLIMIT={self.config.limits.max_message_size}",
            "UTF8=ACCEPT",
        ]
        if not self.conn.compressed:
            caps.append("COMPRESS=DEFLATE")
        return caps

    def capability_code(self) -> str:
        return "[CAPABILITY " + " ".join(self.capabilities()) + "]"

    # ------------------------------------------------------------ main loop

    async def run(self) -> None:
        log.info("event=connect ip=%s tls=%s", self.conn.peer_ip, self.conn.tls)
        try:
            self.send(f"* OK {self.capability_code()} Pillarbox IMAP ready\r\n".encode())
            await self.conn.flush()
            while not self.closing:
                if not await self._one_command():
                    break
        except (ConnectionClosed, ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("event=dropped reason=%s", type(exc).__name__)
        except Exception:  # a bug outside a command: drop this session, keep the server
            log.exception("event=session-failed")
        finally:
            if self.notify is not None:
                self.notify.close()
            self.deselect()
            self._cleanup_temp()
            await self.conn.close()
            log.info("event=close user=%s", self.user or "-")

    async def bye(self, text: str) -> None:
        """Server shutdown: say BYE and end the session (RFC 9051 7.1.5)."""
        self.closing = True
        with contextlib.suppress(Exception):
            self.send(f"* BYE {text}\r\n".encode())
            await asyncio.wait_for(self.conn.flush(), 2)

    def _idle_timeout(self) -> float:
        limits = self.config.limits
        if self.state == "notauth":
            return float(min(limits.command_timeout, limits.imap_idle_timeout))
        return float(max(limits.imap_idle_timeout, 60))  # RFC 9051 5.4: >= 30 min configured

    async def _one_command(self) -> bool:
        try:
            try:
                segments = await asyncio.wait_for(self._read_command(), self._idle_timeout())
            except TimeoutError:
                await self.bye("Autologout; idle for too long")
                return False
            except LineTooLong:
                self.send(b"* BAD Command line too long\r\n")
                await self.conn.flush()
                return True
            if segments is None:
                return self.state != "logout"
            try:
                # RFC 9051 9 (QUOTED-CHAR) / RFC 6855 3: UTF-8 in quoted strings once
                # IMAP4rev2 or UTF8=ACCEPT is enabled
                command = parse_command(segments, self.utf8 or self.rev2)
            except ParseError as exc:
                log.info("event=bad reason=%s", exc.text)
                self.send(f"{exc.tag} BAD {exc.text}\r\n".encode())
                await self.conn.flush()
                return True
            await self.dispatch(command)
        finally:
            self._cleanup_temp()  # spooled literals live no longer than their command
        if self.bye_after is not None:
            self.send(f"* BYE {self.bye_after}\r\n".encode())
            await self.conn.flush()
            self.state = "logout"
        return self.state != "logout"

    async def _read_command(self) -> list[Segment] | None:
        """Lines and literals of one command; None when it was refused while reading.

        Every literal is checked against the state's limits when it is announced, before
        a "+" is sent or a byte of it is kept (see _literal_refusal)."""
        limits = self.config.limits
        preauth = self.state == "notauth"
        line_max = PREAUTH_COMMAND_MAX if preauth else MAX_LINE
        segments: list[Segment] = []
        used = 0  # text and literal bytes of this command so far
        text = 0  # text bytes (always in memory)
        in_memory = 0  # literal bytes held in memory (the rest went to files)
        literals = 0
        refused: str | None = None
        line = await self._first_line(line_max)
        name = command_name(line)
        while True:
            segments.append(line)
            used += len(line) + 2
            text += len(line) + 2
            if refused is None and (text > MAX_COMMAND or used > self._command_max(name)):
                refused = _TOO_LARGE_PREAUTH if preauth else "BAD Command too long"
            found = literal_suffix(line)
            if found is None:
                break
            size, nonsync, _binary = found
            literals += 1
            if refused is None:
                refused = self._literal_refusal(name, size, used, literals)
            if refused is not None:
                if not nonsync:  # the client waits for "+": it will not send the literal
                    break
                if preauth:
                    # RFC 7888 4: a non-synchronizing literal the server will not take is
                    # answered BAD and the connection closed; reading it to skip it would
                    # let anyone make the box read without limit before login.
                    await self._refuse_and_close(segments, refused)
                    return None
                await asyncio.wait_for(self.conn.discard(size), limits.command_timeout)
                line = await self.conn.read_line(line_max)
                continue
            if not nonsync:  # RFC 9051 7.5: command continuation request
                self.send(b"+ Ready for literal data\r\n")
                await self.conn.flush()
            spool = (
                size > SPOOL_THRESHOLD
                or in_memory + size > MAX_COMMAND
                or (name == "APPEND" and not _APPEND_STRING_LITERAL.search(line))
            )
            literal = await asyncio.wait_for(
                self._read_literal(size, spool), limits.command_timeout
            )
            if literal.path is None:
                in_memory += size
            used += size
            segments.append(literal)
            line = await asyncio.wait_for(self.conn.read_line(line_max), limits.command_timeout)
        if refused is not None:
            self.send(_refusal(segments, refused))
            await self.conn.flush()
            return None
        return segments

    async def _first_line(self, line_max: int) -> bytes:
        """The first line of the next command. With NOTIFY set, mailbox events that
        arrive meanwhile are sent now (RFC 5465 1: at any time; here only between commands:
        never inside a response or while a literal is read)."""
        if self.notify is None:
            return await self.conn.read_line(line_max)
        reader = asyncio.ensure_future(self.conn.read_line(line_max))
        waiter: asyncio.Future[Any] | None = None
        try:
            while self.notify is not None:
                waiter = asyncio.ensure_future(self.notify.wait())
                done, _ = await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    events, waiter = waiter.result(), None
                    await self._notify_deliver(events)
                    if self.state == "logout":  # the selected mailbox was deleted: BYE sent
                        raise ConnectionClosed()
                if reader in done:
                    break
            return await reader
        finally:
            if waiter is not None:
                waiter.cancel()
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _notify_deliver(self, events: list[MailboxChanged], idling: bool = False) -> None:
        if self.notify is None:
            return
        try:
            await self.notify.deliver(events, idling)
        except (StoreError, ImapError) as exc:  # a mailbox vanished meanwhile: skip it
            log.info("event=notify-skipped reason=%r", exc)
        await self.conn.flush()

    def _literal_refusal(self, name: str, size: int, used: int, count: int) -> str | None:
        """The answer to a literal announced in command ``name``, or None to take it.

        Before login only LOGIN, AUTHENTICATE and ID take literals, within
        PREAUTH_LITERAL_MAX each and PREAUTH_COMMAND_MAX for the whole command. After
        login a literal is at most 64 KiB (APPEND: the message size limit), the command
        at most MAX_COMMAND bytes (APPEND: one maximum-size message plus MAX_COMMAND),
        with at most MAX_LITERALS literals."""
        if self.state == "notauth":
            if name not in PREAUTH_LITERAL_COMMANDS:
                entry = self.handlers.get(name)
                if entry is None:
                    return "BAD Unknown command"
                return "BAD Not authenticated" if "notauth" not in entry[0] else _NO_LITERAL
            if size > PREAUTH_LITERAL_MAX or used + size > PREAUTH_COMMAND_MAX:
                return _TOO_LARGE_PREAUTH
            return None
        max_message = self.config.limits.max_message_size
        if count > MAX_LITERALS:
            return "NO [LIMIT] Too many literals in one command"  # RFC 5530 3
        if size > (max_message if name == "APPEND" else MAX_SMALL_LITERAL):
            return "NO [TOOBIG] Literal too large"  # RFC 7889 3 (APPEND over APPENDLIMIT)
        if used + size > self._command_max(name):
            return "NO [TOOBIG] Command too large"
        return None

    def _command_max(self, name: str) -> int:
        """Text and literal bytes one command may carry in this state."""
        if self.state == "notauth":
            return PREAUTH_COMMAND_MAX
        if name == "APPEND":  # one maximum-size message (or several smaller) plus the rest
            return self.config.limits.max_message_size + MAX_COMMAND
        return MAX_COMMAND

    async def _refuse_and_close(self, segments: list[Segment], refused: str) -> None:
        log.info("event=literal-refused-closing command=%s", command_name(_first(segments)))
        self.send(_refusal(segments, refused))
        self.send(b"* BYE Literal refused before login, closing connection\r\n")
        await self.conn.flush()
        self.state = "logout"
        await self.conn.linger(LINGER)

    async def _read_literal(self, size: int, spool: bool) -> Literal:
        if spool:
            path = await self.conn.read_to_file(size, self.spool_dir)
            self.temp_files.append(str(path))
            return Literal(size, path=path)
        return Literal(size, data=await self.conn.read_exact(size))

    def _cleanup_temp(self) -> None:
        for name in self.temp_files:
            with contextlib.suppress(OSError):
                os.unlink(name)
        self.temp_files.clear()

    # ------------------------------------------------------------ dispatch

    async def dispatch(self, command: Command) -> None:
        tag = command.tag
        entry = self.handlers.get(command.name)
        if entry is None:
            self.send(f"{tag} BAD Unknown command\r\n".encode())
            await self.conn.flush()
            return
        states, handler = entry
        if self.state not in states:
            why = "Not authenticated" if self.state == "notauth" else "Not allowed now"
            self.send(f"{tag} BAD {why}\r\n".encode())
            await self.conn.flush()
            return
        try:
            text = await handler(self, command)
            if text is not None:
                allow_expunge = command.uid or command.name not in (
                    "FETCH",
                    "STORE",
                    "SEARCH",
                    "SORT",
                    "THREAD",
                )  # RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE, SEARCH
                if command.name not in ("LOGOUT", "SELECT", "EXAMINE"):
                    await self.sync(allow_expunge)
                    await context.refresh(self)  # RFC 5267 4.3: ADDTO/REMOVEFROM
                self.send(f"{tag} OK {text}\r\n".encode())
        except ImapError as exc:
            log.info(
                "cmd=%s result=%s code=%s",
                command.name,
                exc.status,
                exc.code or "-",
            )
            self.send(exc.render(tag))
        except StoreError as exc:
            log.warning("cmd=%s store_error=%r", command.name, exc)
            self.send(from_store(exc).render(tag))
        except (ConnectionClosed, ConnectionError, ssl.SSLError):
            raise
        except Exception:
            log.exception("cmd=%s event=server-bug", command.name)
            self.send(f"{tag} NO [SERVERBUG] Internal error\r\n".encode())
        await self.conn.flush()

    # ------------------------------------------------------------ selected mailbox

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 3.1: FETCH MODSEQ/CHANGEDSINCE, SEARCH
        MODSEQ, STORE UNCHANGEDSINCE, STATUS HIGHESTMODSEQ, ENABLE). The first one sent
        while a mailbox is selected is answered with that mailbox's HIGHESTMODSEQ before
        its own responses (RFC 7162 3.1; Dovecot 2.3 does the same)."""
        if self.condstore:
            return
        self.condstore = True
        if self.selected is not None:
            # The modseq this session caught up with: never above what it was shown.
            self.send(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % self.selected.modseq)

    def select(self, selected: SelectedMailbox) -> None:
        self.deselect()
        self.selected = selected
        self.state = "selected"

    def deselect(self) -> None:
        if self.selected is not None:
            self.selected.subscription.close()
            self.selected = None
        if self.state == "selected":
            self.state = "auth"

    async def sync(self, allow_expunge: bool, force: bool = False) -> None:
        """Send what other sessions and deliveries changed (EXISTS, FETCH, EXPUNGE)."""
        sel = self.selected
        if sel is None:
            return
        events = await sel.subscription.wait(0)
        if events or force:
            try:
                changes = await asyncio.to_thread(
                    self.deps.store.changes, self.user, sel.name, sel.modseq
                )
            except MailboxNotFound:
                # RFC 9051 7.1.5: the selected mailbox was deleted elsewhere; end the session.
                self.send(b"* BYE Selected mailbox no longer exists\r\n")
                self.deselect()
                self.state = "logout"
                return
            top = sel.uids[-1] if sel.uids else 0
            arrived = [i.uid for i in changes.changed if i.uid > top]
            if arrived:
                # RFC 3501 2.3.2: \Recent for the first session to see them; a read-only
                # session shows the unclaimed ones without claiming them (6.3.2).
                claimed = await asyncio.to_thread(
                    self.deps.store.claim_recent, self.user, sel.name, arrived, peek=sel.readonly
                )
                sel.recent |= claimed
            out = sel.apply(changes, allow_expunge, self.qresync, self.condstore)
            if arrived and not self.rev2:  # RFC 3501 7.3.2: RECENT follows the new EXISTS
                out.append(b"* %d RECENT\r\n" % len(sel.recent))
        elif allow_expunge and sel.pending_expunged:
            out = sel.expunge_responses(list(sel.pending_expunged), self.qresync)
        else:
            return
        for line in out:
            self.send(line)

    # ------------------------------------------------------------ IDLE (RFC 2177)

    async def idle(self, tag: str) -> str | None:
        self.send(b"+ idling\r\n")
        await self.conn.flush()
        await self.sync(True)
        await self.conn.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._idle_timeout()
        reader = asyncio.ensure_future(self.conn.read_line(MAX_LINE))
        waiter: asyncio.Future[Any] | None = None
        noticer: asyncio.Future[Any] | None = None  # RFC 5465: NOTIFY events while idling
        try:
            while True:
                # NOTIFY SELECTED reports the selected mailbox itself (with its fetch-att)
                notified = self.notify is not None and self.notify.selected is not None
                if waiter is None and self.selected is not None and not notified:
                    waiter = asyncio.ensure_future(self.selected.subscription.wait())
                if noticer is None and self.notify is not None:
                    noticer = asyncio.ensure_future(self.notify.wait())
                pending = {reader} | {w for w in (waiter, noticer) if w is not None}
                remaining = deadline - loop.time()
                if remaining <= 0 or self.closing:
                    await self.bye("Autologout; idle for too long")
                    self.state = "logout"
                    return None
                done, _ = await asyncio.wait(
                    pending, timeout=min(remaining, 60.0), return_when=asyncio.FIRST_COMPLETED
                )
                if waiter is not None and waiter in done:
                    waiter = None
                    await self.sync(True, force=True)
                    await context.refresh(self)
                    await self.conn.flush()
                if noticer is not None and noticer in done:
                    events, noticer = noticer.result(), None
                    await self._notify_deliver(events, idling=True)
                if reader in done:
                    line = reader.result()
                    if line.strip().upper() != b"DONE":
                        raise bad("Expected DONE")
                    return "IDLE terminated"
        finally:
            for future in (waiter, noticer):
                if future is not None:
                    future.cancel()
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
