"""One ManageSieve connection (RFC 5804): capabilities, STARTTLS, AUTHENTICATE PLAIN,
and the script commands on the user's scripts in appliance.filters.sieve_store.

Replies are produced here and only here. Plaintext authentication needs TLS from every
address, loopback too, like IMAP and POP3: before STARTTLS the SASL capability is empty
and AUTHENTICATE answers NO (ENCRYPT-NEEDED). Bounds: a command line (without its
literals) is at most ``MAX_LINE`` octets; a literal at most ``PREAUTH_LITERAL_MAX``
octets before login and the script size quota after it, refused by its announced size
before a byte of it is read; every read waits at most the idle timeout
(``PREAUTH_TIMEOUT`` before login, ``[limits] command_timeout`` after).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from appliance import sasl
from appliance.accounts import Authenticator
from appliance.filters.sieve_eval import MAX_REDIRECTS
from appliance.filters.sieve_parse import SUPPORTED_EXTENSIONS, SieveSyntaxError
from appliance.filters.sieve_store import (
    BadScriptName,
    NoSuchScript,
    ScriptActive,
    ScriptExists,
    SieveStore,
    TooManyScripts,
    check_name,
    validate,
)
from appliance.managesieve.wire import (
    Atom,
    Str,
    WireError,
    announces_literal,
    parse_segment,
    response,
    string,
)

log = logging.getLogger(__name__)

MAX_LINE = 8192  # one line of a command, literals not counted
MAX_LITERALS = 4  # in one command (PUTSCRIPT has one); more closes the connection
PREAUTH_LITERAL_MAX = 4096  # before login (an AUTHENTICATE response sent as a literal)
MAX_DISCARD = 1024 * 1024  # an over-quota literal up to this size is read and dropped
PREAUTH_TIMEOUT = 60.0  # seconds idle before login (at most [limits] command_timeout)
MAX_ERRORS = 10  # bad or refused commands before the connection is closed
MAX_AUTH_FAILURES = 3
READ_CHUNK = 65536
IMPLEMENTATION = "Pillarbox"

Args = list[Atom | Str]


class State(Enum):
    NONAUTH = "non-authenticated"
    AUTH = "authenticated"


class _Close(Exception):
    """End the session (after the reply, if any, was sent)."""


class _Refused(Exception):
    """A command refused before it ran: the reply is ready."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class SessionEnv:
    scripts: SieveStore
    auth: Authenticator
    tls_context: ssl.SSLContext
    timeout: float  # [limits] command_timeout
    max_script_size: int  # [managesieve]
    max_scripts: int


def capabilities(tls: bool, user: str | None) -> list[tuple[str, str | None]]:
    """RFC 5804 1.7, in the order sent (``user``: the logged-in account, if any)."""
    return [
        ("IMPLEMENTATION", IMPLEMENTATION),
        # RFC 5804 2.1 / RFC 8314 4.1: no plaintext mechanism before TLS, loopback too.
        ("SASL", "PLAIN" if tls and user is None else ""),
        ("SIEVE", " ".join(sorted(SUPPORTED_EXTENSIONS))),
        *([("STARTTLS", None)] if not tls else []),
        ("MAXREDIRECTS", str(MAX_REDIRECTS)),
        ("UNAUTHENTICATE", None),  # RFC 5804 2.14.1
        ("VERSION", "1.0"),
        *([("OWNER", user)] if user is not None else []),  # RFC 5804 1.7: after login
    ]


def _syntax_reply(exc: SieveSyntaxError) -> bytes:
    return response("NO", "", f"line {exc.line}: {exc.message} (column {exc.column})")


class ManageSieveSession:
    def __init__(
        self,
        env: SessionEnv,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cid: str,
        ip: str,
    ) -> None:
        self.env = env
        self.reader = reader
        self.writer = writer
        self.cid = cid
        self.ip = ip
        self.tls = False
        self.state = State.NONAUTH
        self.user: str | None = None
        self.errors = 0
        self.auth_failures = 0
        self.idle = False  # waiting for the next command: safe to end on shutdown
        self._buf = bytearray()
        self._handlers: dict[str, Callable[[Args], Awaitable[None]]] = {
            "CAPABILITY": self.cmd_capability,
            "LOGOUT": self.cmd_logout,
            "NOOP": self.cmd_noop,
            "STARTTLS": self.cmd_starttls,
            "AUTHENTICATE": self.cmd_authenticate,
            "UNAUTHENTICATE": self.cmd_unauthenticate,
            "HAVESPACE": self.cmd_havespace,
            "PUTSCRIPT": self.cmd_putscript,
            "CHECKSCRIPT": self.cmd_checkscript,
            "LISTSCRIPTS": self.cmd_listscripts,
            "SETACTIVE": self.cmd_setactive,
            "GETSCRIPT": self.cmd_getscript,
            "DELETESCRIPT": self.cmd_deletescript,
            "RENAMESCRIPT": self.cmd_renamescript,
        }
        self._preauth = frozenset({"CAPABILITY", "LOGOUT", "NOOP", "STARTTLS", "AUTHENTICATE"})

    # ------------------------------------------------------------ plumbing

    @property
    def timeout(self) -> float:
        if self.state is State.NONAUTH:
            return min(PREAUTH_TIMEOUT, self.env.timeout)
        return self.env.timeout

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), self.env.timeout)

    async def _fill(self) -> None:
        self.idle = not self._buf
        try:
            data = await asyncio.wait_for(self.reader.read(READ_CHUNK), self.timeout)
        except TimeoutError:
            self.idle = False
            log.info("managesieve=timeout state=%s", self.state.value)
            await self.send(response("BYE", "", "Idle for too long"))
            raise _Close from None
        self.idle = False
        if not data:
            raise _Close
        self._buf += data

    async def read_line(self) -> bytes:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                if len(line) > MAX_LINE:
                    await self.send(response("BYE", "", "Line too long"))
                    raise _Close
                return line
            if len(self._buf) > MAX_LINE:
                await self.send(response("BYE", "", "Line too long"))
                raise _Close
            await self._fill()

    async def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def _literal(self, size: int) -> bytes:
        """A literal's octets, or a refusal by its announced size before reading it."""
        if self.state is State.NONAUTH:
            if size > PREAUTH_LITERAL_MAX:
                log.info("managesieve=preauth-literal-refused size=%d", size)
                await self.send(response("BYE", "", "Literal too large before login"))
                raise _Close
            return await self.read_exact(size)
        if size <= self.env.max_script_size:
            return await self.read_exact(size)
        if size > MAX_DISCARD:
            await self.send(response("BYE", "QUOTA/MAXSIZE", "Literal too large"))
            raise _Close
        left = size  # read and drop it, then refuse the command (RFC 5804 2.6)
        while left:
            left -= len(await self.read_exact(min(left, READ_CHUNK)))
        return b""  # not used: _read_command raises after the rest of the line

    async def read_command(self) -> Args:
        """The next command's tokens. Raises _Refused for a malformed or over-quota
        command, once its whole text has been read."""
        tokens: Args = []
        problem: bytes | None = None
        first = True
        literals = 0
        while True:
            line = await self.read_line()
            try:
                segment = parse_segment(line, first)
            except WireError as exc:
                if announces_literal(line):
                    # Its octets would follow unannounced: no safe way to read on.
                    await self.send(response("BYE", "", f"Syntax error: {exc}"))
                    raise _Close from None
                problem = problem or response("NO", "", f"Syntax error: {exc}")
                break
            tokens += segment.tokens
            if segment.literal is None:
                break
            first = False
            literals += 1
            if literals > MAX_LITERALS:
                await self.send(response("BYE", "", "Too many literals in one command"))
                raise _Close
            size = segment.literal
            if self.state is State.AUTH and size > self.env.max_script_size:
                problem = problem or response(
                    "NO", "QUOTA/MAXSIZE", f"Larger than {self.env.max_script_size} octets"
                )
            tokens.append(Str(await self._literal(size)))
        if problem is not None:
            raise _Refused(problem)
        return tokens

    async def run(self) -> None:
        try:
            await self.send_capabilities()
            while True:
                try:
                    args = await self.read_command()
                except _Refused as refused:
                    await self.error(refused.reply)
                    continue
                await self.dispatch(args)
        except _Close:
            return
        except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
            log.info("managesieve=connection-lost error=%r", exc)
        except asyncio.CancelledError:
            if self.idle:
                with contextlib.suppress(Exception):
                    self.writer.write(response("BYE", "", "Server shutting down"))
            raise

    async def dispatch(self, args: Args) -> None:
        head = args[0]
        assert isinstance(head, Atom)
        command = head.value.upper()
        handler = self._handlers.get(command)
        if handler is None:
            log.info("managesieve=unknown-command command=%.20r", command)
            await self.error(response("NO", "", "Unknown command"))
            return
        if self.state is State.NONAUTH and command not in self._preauth:
            await self.error(response("NO", "", "Authenticate first"))
            return
        if self.state is State.AUTH and command in ("STARTTLS", "AUTHENTICATE"):
            await self.error(response("NO", "", "Already authenticated"))
            return
        if command != "AUTHENTICATE":
            log.debug("managesieve=command command=%s", command)
        try:
            await handler(args[1:])
        except WireError as exc:
            await self.error(response("NO", "", f"Syntax error: {exc}"))
        except BadScriptName as exc:
            await self.error(response("NO", "", f"Bad script name: {exc}"))
        except (ConnectionError, TimeoutError, ssl.SSLError):
            raise
        except OSError as exc:  # the script store's disk; the detail goes to the log
            log.error("managesieve=store-failed command=%s error=%r", command, exc)
            await self.send(response("NO", "TRYLATER", "Scripts unavailable, try again later"))

    async def error(self, reply: bytes) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            await self.send(response("BYE", "", "Too many errors"))
            raise _Close
        await self.send(reply)

    async def send_capabilities(self) -> None:
        lines = b"".join(
            string(name) + (b" " + string(value) if value is not None else b"") + b"\r\n"
            for name, value in capabilities(self.tls, self.user)
        )
        await self.send(lines + response("OK", "", "Pillarbox ManageSieve ready"))

    # ------------------------------------------------------------ arguments

    @staticmethod
    def _strings(args: Args, count: int, usage: str) -> list[str]:
        if len(args) != count or not all(isinstance(a, Str) for a in args):
            raise WireError(f"usage: {usage}")
        return [a.text() for a in args if isinstance(a, Str)]

    def _user(self) -> str:
        assert self.user is not None
        return self.user

    # ------------------------------------------------------------ any state

    async def cmd_capability(self, args: Args) -> None:
        if args:
            raise WireError("usage: CAPABILITY")
        await self.send_capabilities()

    async def cmd_logout(self, args: Args) -> None:
        await self.send(response("OK", "", "Logout completed"))  # RFC 5804 2.3
        raise _Close

    async def cmd_noop(self, args: Args) -> None:
        if len(args) > 1 or (args and not isinstance(args[0], Str)):
            raise WireError("usage: NOOP [tag]")
        if args and isinstance(args[0], Str):
            # RFC 5804 2.12: the tag comes back in a TAG response code.
            tag = string(args[0].text()).decode("utf-8")
            await self.send(response("OK", f"TAG {tag}", "Done"))
            return
        await self.send(response("OK", "", "Done"))

    # ------------------------------------------------------------ non-authenticated

    async def cmd_starttls(self, args: Args) -> None:
        if args:
            raise WireError("usage: STARTTLS")
        if self.tls:
            await self.error(response("NO", "", "TLS is active already"))
            return
        pending = getattr(self.reader, "_buffer", None)  # StreamReader's own buffer
        if self._buf or pending:
            # RFC 5804 2.2 / CVE-2011-0411: nothing sent before the handshake may be
            # read as a command afterwards.
            log.warning("managesieve=starttls-pipelined-discarded")
            self._buf.clear()
            if isinstance(pending, bytearray):
                pending.clear()
        # No await between the reply and start_tls: the loop must not read the client's
        # ClientHello into the plaintext StreamReader first.
        self.writer.write(response("OK", "", "Begin TLS negotiation now"))
        try:
            await self.writer.start_tls(
                self.env.tls_context, ssl_handshake_timeout=self.env.timeout
            )
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("managesieve=starttls-failed error=%r", exc)
            raise _Close from None
        self.tls = True
        log.info("managesieve=starttls")
        # RFC 5804 2.2: the server re-issues its capabilities after the TLS handshake.
        await self.send_capabilities()

    async def cmd_authenticate(self, args: Args) -> None:
        if not args or len(args) > 2 or not all(isinstance(a, Str) for a in args):
            raise WireError('usage: AUTHENTICATE "PLAIN" [initial-response]')
        mech = args[0]
        assert isinstance(mech, Str)
        if mech.text().upper() != "PLAIN":
            await self.error(response("NO", "", "Unsupported mechanism"))
            return
        if not self.tls:
            # RFC 5804 1.3: ENCRYPT-NEEDED, use STARTTLS first.
            await self.error(response("NO", "ENCRYPT-NEEDED", "Authenticate after STARTTLS"))
            return
        blob: str | None
        if len(args) == 2:
            initial = args[1]
            assert isinstance(initial, Str)
            blob = initial.text()
        else:
            await self.send(b'""\r\n')  # RFC 5804 2.1: an empty challenge
            blob = await self._sasl_response()
            if blob is None:
                await self.error(response("NO", "", "Authentication cancelled"))
                return
        try:
            creds = sasl.parse_plain(sasl.decode_response(blob) if blob else b"")
        except sasl.SaslError:
            await self.error(response("NO", "", "Invalid SASL PLAIN response"))
            return
        if not sasl.acts_as_self(creds):  # RFC 4616 2: no proxy logins
            await self.error(response("NO", "", "Authorization identity not permitted"))
            return
        await self.login(creds.authcid, creds.password)

    async def _sasl_response(self) -> str | None:
        """The client's answer to a challenge: one string; "*" cancels (RFC 5804 2.1)."""
        tokens: Args = []
        first = True
        for _ in range(2):
            line = await self.read_line()
            if first and line.rstrip(b"\r\n") == b'"*"':
                return None
            if first:  # a string alone on a line: parse it as the argument of a command
                segment = parse_segment(b"X " + line, True)
                tokens += segment.tokens[1:]
            else:
                segment = parse_segment(line, False)
                tokens += segment.tokens
            first = False
            if segment.literal is None:
                break
            tokens.append(Str(await self._literal(segment.literal)))
        if len(tokens) != 1 or not isinstance(tokens[0], Str):
            raise WireError("the response is one string")
        return tokens[0].text()

    async def login(self, login: str, password: str) -> None:
        result = await self.env.auth.authenticate(login, password, self.ip)
        if result.retry_after > 0:
            # RFC 5804 1.3: TRYLATER, a temporary condition, not a credentials problem.
            await self.error(response("NO", "TRYLATER", "Too many failed logins, try again later"))
            return
        if result.user is None:
            self.auth_failures += 1
            if self.auth_failures >= MAX_AUTH_FAILURES:
                await self.send(response("BYE", "", "Authentication failed"))
                raise _Close
            await self.error(response("NO", "", "Authentication failed"))
            return
        self.user = result.user.email
        self.state = State.AUTH
        log.info("managesieve=login user=%s", self.user)
        await self.send(response("OK", "", "Logged in"))

    # ------------------------------------------------------------ authenticated

    async def cmd_unauthenticate(self, args: Args) -> None:
        if args:
            raise WireError("usage: UNAUTHENTICATE")
        if self.state is not State.AUTH:
            await self.error(response("NO", "", "Not authenticated"))
            return
        log.info("managesieve=unauthenticate user=%s", self.user)
        self.user = None
        self.state = State.NONAUTH
        await self.send(response("OK", "", "Unauthenticated"))

    def _quota_problem(self, name: str, size: int) -> bytes | None:
        if size > self.env.max_script_size:
            return response("NO", "QUOTA/MAXSIZE", f"Larger than {self.env.max_script_size} octets")
        names = [n for n, _ in self.env.scripts.list_scripts(self._user())]
        if name not in names and len(names) >= self.env.max_scripts:
            return response("NO", "QUOTA/MAXSCRIPTS", f"At most {self.env.max_scripts} scripts")
        return None

    async def cmd_havespace(self, args: Args) -> None:
        if len(args) != 2 or not isinstance(args[0], Str) or not isinstance(args[1], Atom):
            raise WireError("usage: HAVESPACE name size")
        name = args[0].text()
        size = args[1].number
        if size is None:
            raise WireError("usage: HAVESPACE name size")
        check_name(name)
        problem = await asyncio.to_thread(self._quota_problem, name, size)
        await self.send(problem or response("OK", "", "Putscript would succeed"))

    async def cmd_putscript(self, args: Args) -> None:
        name, text = self._strings(args, 2, "PUTSCRIPT name script")
        check_name(name)
        if len(text.encode("utf-8")) > self.env.max_script_size:
            await self.send(
                response("NO", "QUOTA/MAXSIZE", f"Larger than {self.env.max_script_size} octets")
            )
            return
        try:
            await asyncio.to_thread(
                self.env.scripts.put, self._user(), name, text, max_scripts=self.env.max_scripts
            )
        except SieveSyntaxError as exc:
            await self.send(_syntax_reply(exc))  # RFC 5804 2.6: the script is not stored
            return
        except TooManyScripts:
            await self.send(
                response("NO", "QUOTA/MAXSCRIPTS", f"At most {self.env.max_scripts} scripts")
            )
            return
        log.info("managesieve=put user=%s name=%r size=%d", self.user, name, len(text))
        await self.send(response("OK", "", "Stored"))

    async def cmd_checkscript(self, args: Args) -> None:
        [text] = self._strings(args, 1, "CHECKSCRIPT script")
        if len(text.encode("utf-8")) > self.env.max_script_size:
            await self.send(
                response("NO", "QUOTA/MAXSIZE", f"Larger than {self.env.max_script_size} octets")
            )
            return
        try:
            await asyncio.to_thread(validate, text)
        except SieveSyntaxError as exc:
            await self.send(_syntax_reply(exc))
            return
        await self.send(response("OK", "", "Script is valid"))

    async def cmd_listscripts(self, args: Args) -> None:
        if args:
            raise WireError("usage: LISTSCRIPTS")
        scripts = await asyncio.to_thread(self.env.scripts.list_scripts, self._user())
        lines = b"".join(
            string(name) + (b" ACTIVE" if active else b"") + b"\r\n" for name, active in scripts
        )
        await self.send(lines + response("OK", "", "Listscripts completed"))

    async def cmd_setactive(self, args: Args) -> None:
        [name] = self._strings(args, 1, "SETACTIVE name")
        try:
            # RFC 5804 2.8: the empty name deactivates every script.
            await asyncio.to_thread(self.env.scripts.set_active, self._user(), name or None)
        except NoSuchScript:
            await self.send(response("NO", "NONEXISTENT", "No such script"))
            return
        log.info("managesieve=setactive user=%s name=%r", self.user, name)
        await self.send(response("OK", "", "Active script set" if name else "Deactivated"))

    async def cmd_getscript(self, args: Args) -> None:
        [name] = self._strings(args, 1, "GETSCRIPT name")
        try:
            text = await asyncio.to_thread(self.env.scripts.read, self._user(), name)
        except NoSuchScript:
            await self.send(response("NO", "NONEXISTENT", "No such script"))
            return
        data = text.encode("utf-8")
        # RFC 5804 2.9: the script as a literal, CRLF, then OK.
        await self.send(b"{%d}\r\n" % len(data) + data + b"\r\n" + response("OK", "", ""))

    async def cmd_deletescript(self, args: Args) -> None:
        [name] = self._strings(args, 1, "DELETESCRIPT name")
        try:
            await asyncio.to_thread(self.env.scripts.delete, self._user(), name)
        except NoSuchScript:
            await self.send(response("NO", "NONEXISTENT", "No such script"))
            return
        except ScriptActive:
            # RFC 5804 2.10: the active script cannot be deleted.
            await self.send(response("NO", "ACTIVE", "Deactivate the script first"))
            return
        log.info("managesieve=delete user=%s name=%r", self.user, name)
        await self.send(response("OK", "", "Deleted"))

    async def cmd_renamescript(self, args: Args) -> None:
        old, new = self._strings(args, 2, "RENAMESCRIPT old new")
        check_name(new)
        try:
            await asyncio.to_thread(self.env.scripts.rename, self._user(), old, new)
        except NoSuchScript:
            await self.send(response("NO", "NONEXISTENT", "No such script"))
            return
        except ScriptExists:
            await self.send(response("NO", "ALREADYEXISTS", "A script has that name"))
            return
        log.info("managesieve=rename user=%s old=%r new=%r", self.user, old, new)
        await self.send(response("OK", "", "Renamed"))
