"""One POP3 connection: RFC 1939 states and commands, RFC 2449 CAPA and response
codes, RFC 5034 SASL PLAIN, RFC 2595 STLS.

Replies are produced here and only here; the store and the authenticator raise or
return typed results. Plaintext logins (USER/PASS, AUTH PLAIN) need TLS from every
address, loopback too, like IMAP and SMTP AUTH (a local proxy would put the password
on the wire in cleartext). Command lines are limited to ``MAX_LINE`` octets;
every read waits at most the configured command timeout (RFC 1939 3: the autologout
timer), after which the connection closes without the UPDATE state.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from appliance import sasl
from appliance.accounts import Authenticator
from appliance.pop3.maildrop import Maildrop, NoSuchMessage, WireEncoder
from appliance.store.base import MailStore, MessageNotFound, StoreError

log = logging.getLogger(__name__)

# RFC 2449 4: command lines are at most 255 octets; AUTH responses (RFC 5034 4) may
# be longer, so lines up to this many octets are accepted.
MAX_LINE = 1024
MAX_ERRORS = 10  # unknown or malformed commands before the connection is closed
MAX_AUTH_FAILURES = 3
READ_CHUNK = 65536
MESSAGE_CHUNK = 65536


class State(Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"


class _Close(Exception):
    """End the session (after the reply, if any, was sent)."""


class MaildropLocks:
    """RFC 1939 8: one session per maildrop at a time (within this daemon)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[str] = set()

    def acquire(self, user: str) -> bool:
        with self._lock:
            if user in self._users:
                return False
            self._users.add(user)
            return True

    def release(self, user: str) -> None:
        with self._lock:
            self._users.discard(user)

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)


@dataclass(frozen=True)
class SessionEnv:
    store: MailStore
    auth: Authenticator
    tls_context: ssl.SSLContext
    locks: MaildropLocks
    timeout: float
    loopback_plaintext: bool = False  # tests of command semantics only; never the product


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _number(arg: str) -> int | None:
    return int(arg) if arg.isascii() and arg.isdigit() else None


class Pop3Session:
    def __init__(
        self,
        env: SessionEnv,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cid: str,
        ip: str,
        tls: bool,
    ) -> None:
        self.env = env
        self.reader = reader
        self.writer = writer
        self.cid = cid
        self.ip = ip
        self.tls = tls
        self.state = State.AUTHORIZATION
        self.login_name: str | None = None  # from USER
        self.user: str | None = None
        self.maildrop: Maildrop | None = None
        self.errors = 0
        self.auth_failures = 0
        self.idle = False  # waiting for the next command: safe to end on shutdown
        self._buf = bytearray()
        self._handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "CAPA": self.cmd_capa,
            "QUIT": self.cmd_quit,
            "STLS": self.cmd_stls,
            "USER": self.cmd_user,
            "PASS": self.cmd_pass,
            "AUTH": self.cmd_auth,
            "STAT": self.cmd_stat,
            "LIST": self.cmd_list,
            "RETR": self.cmd_retr,
            "TOP": self.cmd_top,
            "DELE": self.cmd_dele,
            "NOOP": self.cmd_noop,
            "RSET": self.cmd_rset,
            "UIDL": self.cmd_uidl,
        }

    # ------------------------------------------------------------ plumbing

    @property
    def plaintext_ok(self) -> bool:
        # RFC 2595 2.1: no cleartext passwords over an unprotected network; loopback is no
        # exception (RFC 8314 4.1: the same rule as IMAP's LOGINDISABLED and SMTP AUTH).
        return self.tls or (self.env.loopback_plaintext and _is_loopback(self.ip))

    async def send(self, line: str) -> None:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await asyncio.wait_for(self.writer.drain(), self.env.timeout)

    async def send_lines(self, first: str, lines: list[str]) -> None:
        body = "".join(f"{line}\r\n" for line in lines)
        self.writer.write(f"{first}\r\n{body}.\r\n".encode())
        await asyncio.wait_for(self.writer.drain(), self.env.timeout)

    async def read_line(self) -> bytes | None:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                if len(line) > MAX_LINE:
                    await self.send("-ERR Line too long")
                    raise _Close
                return line
            if len(self._buf) > MAX_LINE:
                await self.send("-ERR Line too long")
                raise _Close
            self.idle = not self._buf
            try:
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK), self.env.timeout)
            except TimeoutError:
                self.idle = False
                log.info("pop3=timeout")
                await self.send("-ERR [SYS/TEMP] Autologout; idle for too long")
                raise _Close from None
            self.idle = False
            if not data:
                return None
            self._buf += data

    async def run(self) -> None:
        try:
            await self.send("+OK Pillarbox POP3 server ready")
            while True:
                raw = await self.read_line()
                if raw is None:
                    log.info("pop3=disconnected state=%s", self.state.value)
                    return
                await self.dispatch(raw)
        except _Close:
            return
        except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
            log.info("pop3=connection-lost error=%r", exc)
        except asyncio.CancelledError:
            if self.idle:  # shutdown between commands: say so (no UPDATE state)
                with contextlib.suppress(Exception):
                    self.writer.write(b"-ERR [SYS/TEMP] Server shutting down\r\n")
            raise
        finally:
            if self.user is not None:
                self.env.locks.release(self.user)

    async def dispatch(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            await self.error("-ERR Invalid characters in command")
            return
        command, _, arg = line.partition(" ")
        command = command.upper()
        handler = self._handlers.get(command)
        if handler is None:
            log.info("pop3=unknown-command command=%.20r", command)
            await self.error("-ERR Unknown command")
            return
        if command not in ("PASS", "AUTH", "USER"):
            log.debug("pop3=command command=%s arg=%s", command, arg)
        await handler(arg)

    async def error(self, reply: str) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            await self.send("-ERR Too many errors, closing connection")
            raise _Close
        await self.send(reply)

    def _need(self, state: State) -> bool:
        return self.state is state

    # ------------------------------------------------------------ any state

    async def cmd_capa(self, arg: str) -> None:
        # RFC 2449 5: capabilities valid now; USER/SASL only where plaintext is allowed.
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            if not self.tls:
                caps.append("STLS")
            if self.plaintext_ok:
                caps += ["USER", "SASL PLAIN"]
        caps.append("IMPLEMENTATION Pillarbox")
        await self.send_lines("+OK Capability list follows", caps)

    async def cmd_quit(self, arg: str) -> None:
        if self.state is State.TRANSACTION and self.maildrop is not None:
            # RFC 1939 6: UPDATE state, remove the messages marked as deleted.
            try:
                removed = await asyncio.to_thread(self.maildrop.commit, self.env.store)
            except StoreError as exc:
                log.error("pop3=update-failed user=%s error=%r", self.user, exc)
                await self.send("-ERR [SYS/TEMP] Some deleted messages were not removed")
                raise _Close from None
            log.info("pop3=quit user=%s deleted=%d", self.user, len(removed))
            await self.send(f"+OK Logging out, {len(removed)} messages deleted")
        else:
            await self.send("+OK Logging out")
        raise _Close

    # ------------------------------------------------------------ authorization

    async def cmd_stls(self, arg: str) -> None:
        if self.state is not State.AUTHORIZATION or self.tls:
            await self.error("-ERR STLS not allowed now")
            return
        pending = getattr(self.reader, "_buffer", None)  # StreamReader's own buffer
        if self._buf or pending:
            # RFC 2595 4 / CVE-2011-0411: nothing sent before the handshake may be
            # read as a command afterwards.
            log.warning("pop3=stls-pipelined-discarded")
            self._buf.clear()
            if isinstance(pending, bytearray):
                pending.clear()
        # No await between the reply and start_tls: the loop must not read the client's
        # ClientHello into the plaintext StreamReader first.
        self.writer.write(b"+OK Begin TLS negotiation\r\n")
        try:
            await self.writer.start_tls(
                self.env.tls_context, ssl_handshake_timeout=self.env.timeout
            )
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("pop3=stls-failed error=%r", exc)
            raise _Close from None
        self.tls = True
        self.login_name = None
        log.info("pop3=stls")

    async def _plaintext_refused(self) -> bool:
        if self.plaintext_ok:
            return False
        await self.error(
            "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections"
        )
        return True

    async def cmd_user(self, arg: str) -> None:
        if not self._need(State.AUTHORIZATION):
            await self.error("-ERR Already logged in")
            return
        if await self._plaintext_refused():
            return
        if not arg.strip():
            await self.error("-ERR Missing user name")
            return
        self.login_name = arg.strip()
        await self.send("+OK Send your password")

    async def cmd_pass(self, arg: str) -> None:
        if not self._need(State.AUTHORIZATION):
            await self.error("-ERR Already logged in")
            return
        if await self._plaintext_refused():
            return
        if self.login_name is None:
            await self.error("-ERR USER first")
            return
        login, self.login_name = self.login_name, None
        await self.login(login, arg)  # RFC 1939 7: the password may contain spaces

    async def cmd_auth(self, arg: str) -> None:
        if not self._need(State.AUTHORIZATION):
            await self.error("-ERR Already logged in")
            return
        mech, _, initial = arg.strip().partition(" ")
        if not mech:
            # Pre-RFC 5034 clients list mechanisms with a bare AUTH.
            await self.send_lines("+OK", ["PLAIN"] if self.plaintext_ok else [])
            return
        if mech.upper() != "PLAIN":
            await self.error("-ERR Unsupported authentication mechanism")
            return
        if await self._plaintext_refused():
            return
        if not initial:
            await self.send("+ ")  # RFC 5034 4: empty challenge
            raw = await self.read_line()
            if raw is None:
                raise _Close
            initial = raw.decode("ascii", "replace").strip()
            if initial == "*":
                await self.error("-ERR Authentication cancelled")
                return
        try:
            # RFC 5034 4: "=" is an empty initial response.
            creds = sasl.parse_plain(sasl.decode_response(initial))
        except sasl.SaslError:
            await self.error("-ERR Invalid SASL PLAIN response")
            return
        if not sasl.acts_as_self(creds):  # RFC 4616 2: no proxy logins
            await self.error("-ERR [AUTH] Authorization identity not permitted")
            return
        await self.login(creds.authcid, creds.password)

    async def login(self, login: str, password: str) -> None:
        result = await self.env.auth.authenticate(login, password, self.ip)
        if result.retry_after > 0:
            # RFC 3206 4: a temporary condition, not a credentials problem.
            await self.error("-ERR [SYS/TEMP] Too many failed logins, try again later")
            return
        if result.user is None:
            self.auth_failures += 1
            await self.error("-ERR [AUTH] Authentication failed")
            if self.auth_failures >= MAX_AUTH_FAILURES:
                raise _Close
            return
        user = result.user.email
        if not self.env.locks.acquire(user):
            # RFC 2449 8: IN-USE, the maildrop is locked by another session.
            log.info("pop3=in-use user=%s", user)
            await self.error("-ERR [IN-USE] Mailbox is locked by another POP3 session")
            return
        try:
            self.maildrop = await asyncio.to_thread(Maildrop.load, self.env.store, user)
        except StoreError as exc:
            self.env.locks.release(user)
            log.error("pop3=maildrop-failed user=%s error=%r", user, exc)
            await self.error("-ERR [SYS/TEMP] Mailbox unavailable, try again later")
            return
        self.user = user
        self.state = State.TRANSACTION
        count, size = self.maildrop.stat()
        log.info("pop3=login user=%s messages=%d tls=%s", user, count, self.tls)
        await self.send(f"+OK Logged in, {count} messages ({size} octets)")

    # ------------------------------------------------------------ transaction

    async def _drop(self) -> Maildrop | None:
        if self.state is not State.TRANSACTION or self.maildrop is None:
            await self.error("-ERR Not logged in")
            return None
        return self.maildrop

    async def _message_arg(self, drop: Maildrop, arg: str) -> int | None:
        number = _number(arg)
        if number is None:
            await self.error("-ERR Invalid message number")
            return None
        try:
            drop.get(number)
        except NoSuchMessage:
            await self.send("-ERR No such message")
            return None
        return number

    async def cmd_stat(self, arg: str) -> None:
        if (drop := await self._drop()) is None:
            return
        count, size = drop.stat()
        await self.send(f"+OK {count} {size}")

    async def cmd_list(self, arg: str) -> None:
        if (drop := await self._drop()) is None:
            return
        if arg.strip():
            if (n := await self._message_arg(drop, arg.strip())) is not None:
                await self.send(f"+OK {n} {drop.get(n).size}")
            return
        count, size = drop.stat()
        lines = [f"{e.number} {e.size}" for e in drop.visible()]
        await self.send_lines(f"+OK {count} messages ({size} octets)", lines)

    async def cmd_uidl(self, arg: str) -> None:
        if (drop := await self._drop()) is None:
            return
        if arg.strip():
            if (n := await self._message_arg(drop, arg.strip())) is not None:
                await self.send(f"+OK {n} {drop.get(n).uidl}")
            return
        await self.send_lines("+OK", [f"{e.number} {e.uidl}" for e in drop.visible()])

    async def cmd_dele(self, arg: str) -> None:
        if (drop := await self._drop()) is None:
            return
        if (n := await self._message_arg(drop, arg.strip())) is not None:
            drop.mark(n)
            await self.send(f"+OK Message {n} marked for deletion")

    async def cmd_noop(self, arg: str) -> None:
        if await self._drop() is not None:
            await self.send("+OK")

    async def cmd_rset(self, arg: str) -> None:
        if (drop := await self._drop()) is None:
            return
        drop.reset()
        count, size = drop.stat()
        await self.send(f"+OK Maildrop has {count} messages ({size} octets)")

    async def cmd_retr(self, arg: str) -> None:
        if (drop := await self._drop()) is None:
            return
        if (n := await self._message_arg(drop, arg.strip())) is not None:
            entry = drop.get(n)
            await self.send_message(entry.uid, f"+OK {entry.size} octets", None, drop)

    async def cmd_top(self, arg: str) -> None:
        if (drop := await self._drop()) is None:
            return
        parts = arg.split()
        lines = _number(parts[1]) if len(parts) == 2 else None
        if lines is None:
            await self.error("-ERR Usage: TOP message lines")
            return
        if (n := await self._message_arg(drop, parts[0])) is not None:
            await self.send_message(drop.get(n).uid, "+OK Top of message follows", lines, drop)

    async def send_message(
        self, uid: int, first: str, body_lines: int | None, drop: Maildrop
    ) -> None:
        assert self.user is not None
        try:
            fh = await asyncio.to_thread(drop.open, self.env.store, uid)
        except MessageNotFound:
            await self.send("-ERR Message was removed by another session")
            return
        except StoreError as exc:
            log.error("pop3=open-failed uid=%d error=%r", uid, exc)
            await self.send("-ERR [SYS/TEMP] Message unavailable, try again later")
            return
        try:
            self.writer.write(first.encode() + b"\r\n")
            encoder = WireEncoder(body_lines)
            while not encoder.done:
                lines = await asyncio.to_thread(fh.readlines, MESSAGE_CHUNK)
                if not lines:
                    break
                self.writer.write(encoder.encode(lines))
                await asyncio.wait_for(self.writer.drain(), self.env.timeout)
            self.writer.write(b".\r\n")
            await asyncio.wait_for(self.writer.drain(), self.env.timeout)
        except OSError as exc:
            if isinstance(exc, ConnectionError):
                raise
            # A read error in the middle of a multi-line reply cannot be reported.
            log.error("pop3=read-failed uid=%d error=%r", uid, exc)
            raise _Close from exc
        finally:
            with contextlib.suppress(OSError):
                fh.close()
