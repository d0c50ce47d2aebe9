"""One outbound SMTP transaction to one host: TLS negotiation, AUTH, MAIL/RCPT/DATA.

TLS levels, tried in order on fresh connections until one gets through:

* ``verified``: STARTTLS (or implicit TLS) with certificate and host name checked;
* ``unverified``: STARTTLS without checks (opportunistic, RFC 3207 4.1);
* ``none``: plain text (only when the server offers no STARTTLS or TLS failed and
  the policy allows it).

The result records which level carried the transaction so the queue can store it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib

log = logging.getLogger(__name__)

TlsLevel = Literal["verified", "unverified", "none"]
TlsPolicy = Literal["opportunistic", "verified", "implicit", "none"]


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


@dataclass(frozen=True)
class Target:
    """Where to connect: ``name`` is checked against the certificate, ``address`` is
    what the socket connects to."""

    name: str
    address: str
    port: int = 25
    # opportunistic: verified > unverified > none; verified: verified TLS or nothing;
    # implicit: TLS from the first byte (SMTPS), verified; none: plain text only.
    tls: TlsPolicy = "opportunistic"
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class Outcome:
    """The answer to each recipient of one transaction."""

    host: str
    tls: TlsLevel
    replies: dict[str, Reply]


class SessionError(Exception):
    """The host could not take the message (connection, TLS, greeting, AUTH). The queue
    tries the next host; ``permanent`` errors fail the recipients."""

    def __init__(self, text: str, permanent: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent


class TlsRequired(SessionError):
    """The policy wanted (verified) TLS and the host did not provide it."""


ContextFactory = Callable[[bool], ssl.SSLContext]


def _reply(exc: aiosmtplib.SMTPResponseException) -> Reply:
    return Reply(exc.code, " ".join(exc.message.split()))


class SmtpClient:
    def __init__(
        self,
        local_hostname: str,
        context_factory: ContextFactory,
        timeout: float = 300.0,
        connect_timeout: float = 30.0,
    ) -> None:
        self.local_hostname = local_hostname
        self.context_factory = context_factory
        self.timeout = timeout  # per command (RFC 5321 4.5.3.2 suggests minutes)
        self.connect_timeout = min(connect_timeout, timeout)

    def _levels(self, target: Target) -> list[TlsLevel]:
        if target.tls == "opportunistic":
            return ["verified", "unverified", "none"]
        if target.tls == "none":
            return ["none"]
        return ["verified"]

    async def send(
        self,
        target: Target,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        log_id: str,
    ) -> Outcome:
        """Run one transaction. Raises SessionError when the host took nothing."""
        levels = self._levels(target)
        last: SessionError | None = None
        for level in levels:
            try:
                return await self._attempt(
                    target, level, "none" in levels, sender, recipients, data, log_id
                )
            except _TlsFailed as exc:
                log.info(
                    "queue_id=%s host=%s tls=%s event=tls-failed error=%s",
                    log_id,
                    target.name,
                    level,
                    exc,
                )
                last = TlsRequired(f"TLS with {target.name} failed: {exc}")
            except _NoStartTls:
                raise TlsRequired(f"{target.name} does not offer STARTTLS") from None
        assert last is not None
        raise last

    async def _attempt(
        self,
        target: Target,
        level: TlsLevel,
        allow_plain: bool,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        log_id: str,
    ) -> Outcome:
        implicit = target.tls == "implicit"
        context = self.context_factory(level == "verified")
        smtp = aiosmtplib.SMTP(
            hostname=target.address,
            port=target.port,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=False,
            start_tls=False,
            tls_context=context,
        )
        try:
            await self._connect(smtp, target, implicit, context)
            if not implicit and level != "none" and not smtp.supports_extension("starttls"):
                if not allow_plain:
                    raise _NoStartTls()
                level = "none"  # RFC 3207 4: STARTTLS not offered; plain text is allowed
            if not implicit and level != "none":
                try:
                    await smtp.starttls(server_hostname=target.name, tls_context=context)
                    await smtp.ehlo()
                except (ssl.SSLError, aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                    raise _TlsFailed(str(exc) or exc.__class__.__name__) from exc
                except aiosmtplib.SMTPResponseException as exc:
                    raise _TlsFailed(str(_reply(exc))) from exc
            encrypted = implicit or level != "none"
            if target.username:
                # Credentials only ever travel over TLS.
                if not encrypted:
                    raise SessionError("refusing to send credentials without TLS")
                try:
                    await self._login(smtp, target)
                except aiosmtplib.SMTPResponseException as exc:
                    raise SessionError(f"authentication failed: {_reply(exc)}") from exc
                log.info("queue_id=%s host=%s event=auth-ok", log_id, target.name)
            replies = await self._transaction(smtp, sender, recipients, data)
            return Outcome(target.name, level, replies)
        except aiosmtplib.SMTPResponseException as exc:
            raise SessionError(str(_reply(exc)), _reply(exc).permanent) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SessionError(str(exc) or exc.__class__.__name__) from exc
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit(timeout=10)
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def _login(self, smtp: aiosmtplib.SMTP, target: Target) -> None:
        """One AUTH attempt with the best offered mechanism (PLAIN, else LOGIN)."""
        methods = smtp.supported_auth_methods
        if "plain" in methods:
            await smtp.auth_plain(target.username, target.password)
        elif "login" in methods:
            await smtp.auth_login(target.username, target.password)
        else:
            raise SessionError(f"{target.name} offers no AUTH PLAIN or LOGIN")

    async def _connect(
        self, smtp: aiosmtplib.SMTP, target: Target, implicit: bool, context: ssl.SSLContext
    ) -> None:
        if implicit:
            # Implicit TLS (RFC 8314 3.3): the name checked is the configured host name.
            smtp.use_tls = True
            try:
                await smtp.connect(
                    hostname=target.name, port=target.port, timeout=self.connect_timeout
                )
            except (ssl.SSLError, aiosmtplib.SMTPConnectError) as exc:
                raise _TlsFailed(str(exc)) from exc
        else:
            await smtp.connect(timeout=self.connect_timeout)
        await smtp.ehlo()

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, sender: str, recipients: Sequence[str], data: bytes
    ) -> dict[str, Reply]:
        options: list[str] = []
        if not data.isascii() and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6152 2
        utf8 = not (sender + "".join(recipients)).isascii()
        if utf8:
            if not smtp.supports_extension("smtputf8"):
                # RFC 6531 3.5: an internationalized address cannot go to this server.
                reply = Reply(553, "5.6.7 the receiving server does not support SMTPUTF8")
                return dict.fromkeys(recipients, reply)
            options.append("SMTPUTF8")
        encoding = "utf-8" if utf8 else "ascii"
        try:
            await smtp.mail(sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            reply = _reply(exc)
            return dict.fromkeys(recipients, reply)
        replies: dict[str, Reply] = {}
        accepted: list[str] = []
        for rcpt in recipients:
            try:
                await smtp.rcpt(rcpt, encoding=encoding)
            except aiosmtplib.SMTPResponseException as exc:
                replies[rcpt] = _reply(exc)  # RFC 5321 3.3: each RCPT gets its own answer
            else:
                accepted.append(rcpt)
        if not accepted:
            await smtp.rset()
            return replies
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        try:
            response = await smtp.data(data)
            final = Reply(response.code, " ".join(response.message.split()))
        except aiosmtplib.SMTPResponseException as exc:
            final = _reply(exc)
        for rcpt in accepted:
            replies[rcpt] = final
        return replies


class _TlsFailed(Exception):
    pass


class _NoStartTls(Exception):
    pass
