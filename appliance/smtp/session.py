"""One SMTP connection: aiosmtpd's SMTP class with Pillarbox's DATA, AUTH and EHLO.

DATA is read line by line (RFC 5321 4.5.2 dot-unstuffing) into a spool file, never
whole into memory, with the size limit enforced while reading; BDAT chunks (RFC 3030
CHUNKING) go through the same line checks without dot-unstuffing. Peak heap while
receiving a 20 MB message: about 2 MB (tests/protocol/smtp/test_smtp_data.py).

SMTP smuggling defence: the only end of data is <CR><LF>.<CR><LF> (a line that is
exactly ".\\r\\n"), and a message containing a bare CR or a bare LF anywhere is
REJECTED (550 5.5.2) after its end, never normalised: the sequences other servers
mistake for the end of data (<LF>.<LF>, <CR>.<CR>, <LF>.<CR><LF>, <CR><LF>.<LF> ...)
stay message text here, so the "smuggled" commands behind them are never executed,
and the message carrying them is neither stored nor relayed to a server that could
read them differently.

AUTH (PLAIN, LOGIN) is offered only on submission listeners and only under TLS; the
password check is the shared async Authenticator (throttled). Replies get enhanced
status codes (RFC 2034) once the client has sent EHLO. On submission the header From
and Sender must be the user's own (appliance.smtp.identity), checked at the end of
the message.

On port 25 the banner waits ``[smtp] greet_wait`` seconds; a client that talks before
it (spam bots do, to save time) is refused with 554 and dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, syntax

from appliance import sasl
from appliance.delivery.errors import DeliveryFailed, local_failure
from appliance.delivery.pipeline import Outcome, Pipeline
from appliance.delivery.recipients import Recipient
from appliance.filters.base import InboundMessage
from appliance.log import new_conn_id
from appliance.mailauth.results import strip_forged
from appliance.smtp import identity
from appliance.smtp.address import AddressError, parse_path
from appliance.smtp.body import BodySink, Chunked, ChunkLines
from appliance.smtp.policy import NULL_PATH, POSTMASTER, Hooks, Transaction, session_user
from appliance.smtp.received import TlsInfo, protocol_name, received_header, submission_headers
from appliance.smtp.reply import with_enhanced
from appliance.smtp.spool import SpoolWriter
from appliance.smtp.state import ListenerKind, ServerState
from appliance.store.quota import MessageQuota

log = logging.getLogger(__name__)

# aiosmtpd's private members this module overrides or uses; aiosmtpd is pinned exactly
# in pyproject.toml and tests/protocol/smtp/test_aiosmtpd_contract.py checks each name
# against the installed version (README, "Design notes").
AIOSMTPD_OVERRIDES = (
    "_create_envelope",
    "_getaddr",
    "_handle_client",
    "_set_post_data_state",
    "_timeout_cb",
)
AIOSMTPD_USES = ("_auth_required", "_reader", "_reset_timeout", "_set_rset_state", "_tls_protocol")
MAX_AUTH_FAILURES = 3
COMMAND_LIMIT = 1024  # MAIL/RCPT with a 256-octet path and parameters (RFC 5321 4.5.3.1.4)
READ_BLOCK = 65536  # DATA is taken from the reader in blocks of at most this many octets
_SASL_REPLIES: dict[sasl.Problem, str] = {
    "base64": "501 5.5.2 Cannot decode base64",
    "split": "501 5.5.2 Cannot split PLAIN response",
    "utf8": "501 5.5.2 PLAIN response is not UTF-8",
}


def _unread(reader: asyncio.StreamReader, data: bytes) -> None:
    """Put octets read past the end of data back in front of the reader's buffer.

    StreamReader has no public way to do this; aiosmtpd, which owns this reader, already
    works on the same ``_buffer`` attribute (it clears it after STARTTLS).
    """
    reader._buffer[:0] = data  # type: ignore[attr-defined]


class DataProblem(Exception):
    """Why a message was refused after its end was read."""


class PillarboxSMTP(SMTP):
    def __init__(self, state: ServerState, kind: ListenerKind) -> None:
        cfg = state.config  # this connection keeps the config in force when it came
        deps = state.deps
        self.state = state
        self.config = cfg
        self.kind = kind
        self.pipeline = Pipeline(deps.delivery, cfg)
        self._ip = "?"
        self._admitted = False
        self._busy = False
        self._auth_failures = 0
        self._max_size = cfg.limits.max_message_size
        super().__init__(
            Hooks(cfg, deps.delivery, kind),
            data_size_limit=None,  # enforced here, with enhanced codes
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=cfg.hostname,
            ident="ESMTP Pillarbox",
            tls_context=deps.tls.context if kind.starttls else None,
            require_starttls=kind.submission and kind.starttls,
            timeout=cfg.limits.command_timeout,
            auth_required=kind.submission,
            auth_require_tls=True,  # our smtp_AUTH checks TLS itself (implicit TLS too)
            auth_exclude_mechanism=None if kind.submission else ["LOGIN", "PLAIN"],
        )
        # aiosmtpd keeps these limits in a class-wide dict; give each session its own.
        self.command_size_limits = collections.defaultdict(lambda: COMMAND_LIMIT)

    # ------------------------------------------------------------ connection

    @property
    def tls_active(self) -> bool:
        return self.kind.implicit_tls or self._tls_protocol is not None

    def _tls_info(self) -> TlsInfo | None:
        if not self.tls_active or self.transport is None:
            return None
        return TlsInfo.of(self.transport.get_extra_info("ssl_object"))

    def _create_envelope(self) -> Transaction:
        return Transaction()

    def _txn(self) -> Transaction:
        assert isinstance(self.envelope, Transaction)
        return self.envelope

    async def _handle_client(self) -> None:
        new_conn_id(self.kind.name)
        peer: Any = self.session.peer if self.session else None
        self._ip = str(peer[0]) if isinstance(peer, tuple) else "?"
        refusal = self.state.admit(self._ip)
        if refusal is not None:
            log.info("smtp=refused ip=%s reason=%s", self._ip, refusal)
            self.shutdown(f"421 4.7.0 {self.hostname} {refusal}")
            return
        self._admitted = True
        self.state.sessions.add(self)
        log.info("smtp=connect ip=%s listener=%s tls=%s", self._ip, self.kind.name, self.tls_active)
        wait = self.config.smtp.greet_wait
        if not self.kind.submission and wait > 0 and await self._talks_first(wait):
            return
        await super()._handle_client()

    async def _talks_first(self, wait: float) -> bool:
        """Hold the banner for ``wait`` seconds; True when the client spoke meanwhile (it
        was refused and the connection is closing) or went away."""
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:  # aiosmtpd cancels the handler on EOF: close too
            if self.transport is not None:
                self.transport.close()
            raise
        transport = self.transport
        if transport is None or transport.is_closing():
            return True
        if self._reader._buffer:  # type: ignore[attr-defined]
            # RFC 5321 3.1, 4.3.1: the client waits for the 220 greeting before it
            # sends anything; one that does not is a bot. Refused like postscreen's
            # pregreet test, and closed at once rather than waiting for a QUIT.
            self.state.stats["early_talkers"] += 1
            log.info("smtp=early-talker ip=%s", self._ip)
            self.shutdown(f"554 5.5.1 {self.hostname} Protocol error: talked before the greeting")
            return True
        return False

    def connection_lost(self, error: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self.state.release(self._ip)
            self.state.sessions.discard(self)
            log.info("smtp=disconnect ip=%s", self._ip)
        txn = self.envelope
        if isinstance(txn, Transaction) and txn.chunks is not None:
            self._set_post_data_state()  # drop a half-received BDAT message
        super().connection_lost(error)

    def shutdown(self, reply: str) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]
            transport.close()

    def _timeout_cb(self) -> None:
        if self._busy:  # the pipeline is working; the client is waiting for our reply
            self._reset_timeout()
            return
        log.info("smtp=timeout ip=%s", self._ip)
        # RFC 5321 4.5.3.2: the server may close an idle connection; say why first.
        self.shutdown(f"421 4.4.2 {self.hostname} Timeout, closing connection")

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and self.session is not None and self.session.extended_smtp:
            status = with_enhanced(status)  # RFC 2034 3: every reply after EHLO
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        text = arg.strip()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # RFC 6531 3.3: paths are UTF-8; invalid octets arrive as surrogate escapes
            # (found by tests/protocol/smtp/test_smtp_fuzz.py: was a 451 and a traceback)
            log.info("smtp=bad-path reason=invalid UTF-8")
            return None, None
        if text[:12].lower() == "<postmaster>":
            return POSTMASTER, text[12:].strip()
        try:
            path = parse_path(text, utf8=True, allow_null=True)
        except AddressError as exc:
            log.info("smtp=bad-path reason=%s", exc)
            return None, None
        if path.mailbox is None:
            return NULL_PATH, path.params
        return str(path.mailbox), path.params

    # ------------------------------------------------------------ commands

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()  # type: ignore[no-untyped-call]
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [
            self.hostname,
            "PIPELINING",  # RFC 2920
            f"SIZE {self._max_size}",  # RFC 1870
            "8BITMIME",  # RFC 6152
            "SMTPUTF8",  # RFC 6531
            "ENHANCEDSTATUSCODES",  # RFC 2034
            "CHUNKING",  # RFC 3030
        ]
        if self.tls_context and not self.tls_active:
            lines.append("STARTTLS")  # RFC 3207
        if self.kind.submission and self.tls_active:
            lines.append("AUTH PLAIN LOGIN")  # RFC 4954, only under TLS
        text = "\r\n".join(
            f"250{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines)
        )
        await super().push(text.encode())

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if self.tls_active:
            await self.push("503 5.5.1 TLS already active")
            return
        if self._txn().mail_from:
            # RFC 3207 4: STARTTLS is not a transaction command
            await self.push("503 5.5.1 STARTTLS not allowed in a mail transaction")
            return
        await super().smtp_STARTTLS(arg)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str | None) -> None:
        if not self.kind.submission:
            await self.push("502 5.5.1 AUTH not available on this port")
            return
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None
        if not self.tls_active:
            # RFC 4954 4 / RFC 8314: never accept a password in clear text
            await self.push("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if self.session.authenticated:
            await self.push("503 5.5.1 Already authenticated")
            return
        if self._txn().mail_from:
            await self.push("503 5.5.1 AUTH not allowed in a mail transaction")  # RFC 4954 4
            return
        args = (arg or "").split()
        if not args or len(args) > 2:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        mechanism = args[0].upper()
        initial = args[1] if len(args) == 2 else None
        if mechanism == "PLAIN":
            creds = await self._auth_plain(initial)
        elif mechanism == "LOGIN":
            creds = await self._auth_login(initial)
        else:
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        if creds is None:
            return  # the reply was sent
        await self._check_password(*creds)

    async def _response(self, initial: str | None, challenge: str) -> bytes | None:
        if initial is not None:
            try:
                return sasl.decode_response(initial)  # RFC 4954 4: "=" is empty
            except sasl.SaslError:
                await self.push("501 5.5.2 Cannot decode base64")
                return None
        answer = await self.challenge_auth(challenge)
        return None if answer is MISSING else bytes(answer)

    async def _auth_plain(self, initial: str | None) -> tuple[str, str] | None:
        blob = await self._response(initial, "")
        if blob is None:
            return None
        try:
            creds = sasl.parse_plain(blob)
        except sasl.SaslError as exc:
            await self.push(_SASL_REPLIES[exc.problem])
            return None
        if not sasl.acts_as_self(creds):
            # RFC 4616 2: acting for another identity is not supported
            await self.push("535 5.7.8 Authentication credentials invalid")
            return None
        return creds.authcid, creds.password

    async def _auth_login(self, initial: str | None) -> tuple[str, str] | None:
        user = await self._response(initial, "Username:")
        if user is None:
            return None
        password = await self._response(None, "Password:")
        if password is None:
            return None
        try:
            return sasl.utf8(user), sasl.utf8(password)
        except sasl.SaslError:
            await self.push("501 5.5.2 LOGIN response is not UTF-8")
            return None

    async def _check_password(self, login: str, password: str) -> None:
        assert self.session is not None
        result = await self.state.deps.auth.authenticate(login, password, self._ip)
        if result.user is not None:
            self.session.authenticated = True
            self.session.auth_data = result.user  # type: ignore[assignment]
            log.info("smtp=auth-ok user=%s", result.user.email)
            await self.push("235 2.7.0 Authentication successful")
            return
        if result.retry_after > 0:
            await self.push("454 4.7.0 Too many failed logins, try again later")
            return
        self._auth_failures += 1
        await self.push("535 5.7.8 Authentication credentials invalid")
        if self._auth_failures >= MAX_AUTH_FAILURES:
            self.shutdown("421 4.7.0 Too many failed logins, closing connection")

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        txn = self._txn()
        if not txn.recipients:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if txn.chunks is not None:
            await self.push("503 5.5.1 DATA not allowed after BDAT")  # RFC 3030 2
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        with self.state.transaction():
            try:
                spool = await self._open_spool(txn)
            except OSError as exc:
                log.error("smtp=spool-failed error=%r", exc)
                await self.push(local_failure().line)
                return
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                problem = await self._receive(spool)
            except BaseException:
                await asyncio.shield(spool.discard())
                raise
            if problem is not None:
                await spool.discard()
                self.state.stats["rejected"] += 1
                log.info("data=refused reason=%s", problem)
                await self.push(problem)
            else:
                await self.push(await self._deliver(txn, spool))
        self._set_post_data_state()

    @syntax("BDAT chunk-size [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        parts = (arg or "").split()
        if (
            not 1 <= len(parts) <= 2
            or not parts[0].isdigit()
            or (len(parts) == 2 and parts[1].upper() != "LAST")
        ):
            await self.push("501 5.5.4 Syntax: BDAT chunk-size [LAST]")
            return
        size, last = int(parts[0]), len(parts) == 2
        assert self.session is not None
        txn = self._txn()
        refusal = None
        if not self.session.host_name:
            refusal = "503 5.5.1 Error: send EHLO first"
        elif self._auth_required and not self.session.authenticated:
            refusal = "530 5.7.0 Authentication required"
        elif not txn.recipients:
            refusal = "503 5.5.1 Error: need RCPT command"
        if refusal is not None:
            await self._read_chunk(size, None)  # RFC 3030 2: the chunk is read even so
            await self.push(refusal)
            return
        with self.state.transaction():
            if txn.chunks is None:
                try:
                    spool = await self._open_spool(txn)
                except OSError as exc:
                    log.error("smtp=spool-failed error=%r", exc)
                    await self._read_chunk(size, None)
                    await self.push(local_failure().line)
                    self._set_post_data_state()
                    return
                txn.chunks = Chunked(spool, BodySink(spool, self._max_size), ChunkLines())
            chunks = txn.chunks
            await self._read_chunk(size, chunks)
            if chunks.lines.too_long:
                chunks.sink.too_long = True
            if last:
                tail = chunks.lines.finish()
                if tail and chunks.sink.add(tail):
                    await chunks.sink.flush()
            problem = chunks.sink.reply()
            if problem is None and not last:
                await self.push(f"250 2.0.0 {size} octets received")
                return
            txn.chunks = None
            if problem is not None:
                await chunks.spool.discard()
                self.state.stats["rejected"] += 1
                log.info("bdat=refused reason=%s", problem)
                await self.push(problem)  # the transaction ends; later chunks get 503
            else:
                await self.push(await self._deliver(txn, chunks.spool))
        self._set_post_data_state()

    async def _read_chunk(self, size: int, chunks: Chunked | None) -> None:
        """Read exactly ``size`` octets of BDAT data, into the spool when ``chunks``."""
        loop = asyncio.get_running_loop()
        last_reset = loop.time()
        remaining = size
        while remaining > 0:
            data = await self._reader.read(min(remaining, 65536))
            if not data:
                raise ConnectionResetError("connection closed inside a BDAT chunk")
            remaining -= len(data)
            if chunks is not None:
                for line in chunks.lines.feed(data):
                    # RFC 3030 2: no dot-stuffing in chunks
                    if chunks.sink.add(line):
                        await chunks.sink.flush()
            now = loop.time()
            if now - last_reset > 1.0:
                self._reset_timeout()
                last_reset = now

    def _set_post_data_state(self) -> None:
        old = self.envelope
        if isinstance(old, Transaction) and old.chunks is not None:
            task = asyncio.get_running_loop().create_task(old.chunks.spool.discard())
            self.state.track(task)
            old.chunks = None
        super()._set_post_data_state()  # type: ignore[no-untyped-call]

    async def _open_spool(self, txn: Transaction) -> SpoolWriter:
        assert self.session is not None
        user = session_user(self.session)
        prefix_fn = None
        if self.kind.submission:
            add_headers = submission_headers(self.hostname)

            def prefix_fn(section: bytes) -> bytes:
                txn.header = section  # for the From check at the end (not when too big)
                return add_headers(section)

        hostname = self.hostname
        spool = await SpoolWriter.create(
            self.state.spool_dir,
            b"",
            prefix_fn,
            # RFC 8601 5: results claiming to come from this host are forgeries.
            rewrite=lambda section: strip_forged(section, hostname),
        )
        queue_id = spool.path.stem
        spool.set_prefix(
            received_header(
                helo=self.session.host_name or "",
                client_ip=self._ip,
                hostname=self.hostname,
                protocol=protocol_name(
                    self.session.extended_smtp, self.tls_active, user is not None, txn.smtp_utf8
                ),
                queue_id=queue_id,
                tls=self._tls_info(),
                recipients=tuple(txn.rcpt_tos),
            )
        )
        return spool

    async def _receive(self, spool: SpoolWriter) -> str | None:
        """Read DATA to its end; returns a refusal reply, or None when the spool is good.

        The data is taken in blocks of whole lines, not a line at a time: the checks
        (bare CR/LF, line length, end of data, dot-unstuffing) are done on each block with
        bytes methods, which made receiving a 100 KB message several times cheaper. Octets
        read past the end of data (pipelined commands) go back to the reader.
        """
        reader = self._reader
        limit = self.line_length_limit  # longest line without its CRLF, as aiosmtpd reads
        clock = asyncio.get_running_loop().time
        sink = BodySink(spool, self._max_size)
        carry = b""  # the incomplete last line of what has been read
        mid_line = False  # the start of the current line was dropped (overlong)
        next_reset = clock() + 1.0
        while True:
            chunk = await reader.read(READ_BLOCK)
            if not chunk:
                raise asyncio.IncompleteReadError(carry, None)
            data = carry + chunk if carry else chunk
            cut = data.rfind(b"\r\n")
            if cut < 0:
                carry = data
            else:
                block, carry = data[: cut + 2], data[cut + 2 :]
                if mid_line:  # the tail of an overlong line, never the end of data
                    block = block[block.index(b"\r\n") + 2 :]
                    mid_line = False
                # RFC 5321 4.1.1.4: the only end of mail data is a line that is exactly "."
                if block[:3] == b".\r\n":
                    eod = 0
                else:
                    found = block.find(b"\r\n.\r\n")
                    eod = found + 2 if found >= 0 else -1
                if eod >= 0:
                    rest = block[eod + 3 :] + carry
                    if rest:
                        _unread(reader, rest)  # pipelined commands after the data
                    if sink.add_data(block[:eod], limit):
                        await sink.flush()
                    return sink.reply()
                if sink.add_data(block, limit):
                    await sink.flush()
            if len(carry) > limit + 1:  # an overlong line without its end yet: drop it
                sink.too_long = mid_line = True
                carry = b"\r" if carry.endswith(b"\r") else b""
            if clock() > next_reset:  # a slow but steady sender is not idle
                self._reset_timeout()
                next_reset = clock() + 1.0

    async def _deliver(self, txn: Transaction, spool: SpoolWriter) -> str:
        assert self.session is not None
        try:
            path = await spool.finish()
        except OSError as exc:
            log.error("smtp=spool-failed error=%r", exc)
            await asyncio.shield(spool.discard())
            return local_failure().line
        user = session_user(self.session)
        if self.kind.submission:
            assert user is not None
            try:
                refusal = await asyncio.to_thread(
                    identity.check,
                    self.state.deps.delivery.accounts,
                    user.email,
                    txn.header,
                    self.config.smtp.identities_for(user.email),
                )
            except Exception:  # the accounts database failing: try again later
                log.exception("smtp=author-check-failed")
                refusal = local_failure().line
            if refusal is not None:
                await asyncio.shield(spool.discard())
                self.state.stats["rejected"] += 1
                return refusal
        msg = InboundMessage(
            path=path,
            mail_from=txn.sender,
            rcpt_to=tuple(txn.rcpt_tos),
            client_ip=self._ip,
            client_name="",
            helo=self.session.host_name or "",
            authenticated_user=user.email if user else None,
            tls=self.tls_active,
            size=spool.written,
            id=path.stem,
        )
        task: asyncio.Task[Outcome] = asyncio.create_task(
            self._run_pipeline(msg, tuple(txn.recipients), spool, txn.quota)
        )
        self.state.track(task)
        self._busy = True
        try:
            outcome = await asyncio.shield(task)
        except DeliveryFailed as exc:
            self.state.stats["rejected" if not exc.temporary else "deferred"] += 1
            log.info("smtp=not-accepted id=%s reply=%s", path.stem, exc.line)
            return exc.line
        except Exception:
            log.exception("smtp=delivery-crashed")
            self.state.stats["deferred"] += 1
            return local_failure().line
        finally:
            self._busy = False
            self._reset_timeout()
        self.state.stats["discarded" if outcome.discarded else "accepted"] += 1
        log.info(
            "smtp=accepted id=%s from=<%s> rcpts=%s size=%s queue_id=%s",
            path.stem,
            txn.sender,
            len(txn.rcpt_tos),
            spool.size,
            outcome.queue_id or "-",
        )
        return f"250 2.0.0 Ok: queued as {path.stem}"

    async def _run_pipeline(
        self,
        msg: InboundMessage,
        recipients: tuple[Recipient, ...],
        spool: SpoolWriter,
        quota: MessageQuota | None,
    ) -> Outcome:
        try:
            return await self.pipeline.run(msg, recipients, quota)
        finally:
            await spool.discard()
