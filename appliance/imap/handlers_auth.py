"""Any-state and connection-level commands: CAPABILITY NOOP LOGOUT ID STARTTLS LOGIN
AUTHENTICATE ENABLE COMPRESS IDLE."""

from __future__ import annotations

import logging

from appliance import __version__, sasl
from appliance.imap import wire
from appliance.imap.commands import Authenticate, Command, Compress, Enable, Id, Login
from appliance.imap.errors import ImapError, bad
from appliance.imap.session import MAX_FAILED_LOGINS, PREAUTH_COMMAND_MAX, Session
from appliance.store.base import StoreError

log = logging.getLogger(__name__)
ENABLEABLE = ("CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2")


async def capability(s: Session, cmd: Command) -> str:
    s.send(("* CAPABILITY " + " ".join(s.capabilities()) + "\r\n").encode())
    return "CAPABILITY completed"


async def noop(s: Session, cmd: Command) -> str:
    return "NOOP completed"  # RFC 9051 6.1.2: the dispatcher sends pending updates


async def check(s: Session, cmd: Command) -> str:
    return "CHECK completed"


async def logout(s: Session, cmd: Command) -> str:
    s.send(b"* BYE Logging out\r\n")
    s.state = "logout"
    return "LOGOUT completed"


async def id_(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Id)
    if cmd.params:
        shown = " ".join(f"{k}={v}" for k, v in cmd.params if k.lower() in ("name", "version"))
        log.info("client_id=%s", shown[:200] or "-")
    s.send(b'* ID ("name" "Pillarbox" "version" ' + wire.string(__version__) + b")\r\n")
    return "ID completed"


async def starttls(s: Session, cmd: Command) -> str | None:
    if s.conn.tls:
        raise bad("TLS is already active")
    s.send(f"{cmd.tag} OK Begin TLS negotiation now\r\n".encode())
    await s.conn.flush()
    await s.conn.start_tls(s.deps.tls.context, float(s.config.limits.command_timeout))
    log.info("event=starttls")
    return None


def _failed(s: Session) -> None:
    """Count a failed login; the last one allowed ends the connection after its NO, so a
    guesser pays a new connection (and TLS handshake) every MAX_FAILED_LOGINS tries."""
    s.failed_logins += 1
    if s.failed_logins >= MAX_FAILED_LOGINS:
        log.info("event=too-many-failed-logins failures=%d", s.failed_logins)
        s.bye_after = "Too many failed logins"


async def _login_user(s: Session, login: str, password: str) -> str:
    result = await s.deps.auth.authenticate(login, password, s.conn.peer_ip)
    if result.user is None:
        _failed(s)
        if result.retry_after > 0:
            raise ImapError("Too many failed logins, try again later", "UNAVAILABLE")
        raise ImapError("Authentication failed", "AUTHENTICATIONFAILED")
    user = result.user
    try:
        await s.run_blocking(s.deps.store.ensure_user, user.email)
    except StoreError as exc:
        log.error("user=%s ensure_user_failed=%r", user.email, exc)
        raise ImapError("Mail storage unavailable", "UNAVAILABLE") from exc
    s.user = user.email
    s.quota_bytes = user.quota_bytes or s.config.limits.default_quota
    s.state = "auth"
    log.info("event=login user=%s", user.email)
    return f"{s.capability_code()} Logged in"


async def login(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Login)
    if not s.conn.tls:  # RFC 9051 6.2.3: LOGINDISABLED until TLS
        raise ImapError("Use STARTTLS first", "PRIVACYREQUIRED")
    return await _login_user(s, cmd.user, cmd.password)


async def authenticate(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Authenticate)
    if cmd.mechanism != "PLAIN":
        raise ImapError("Unsupported mechanism", "CANNOT")
    if not s.conn.tls:
        raise ImapError("Use STARTTLS first", "PRIVACYREQUIRED")
    response = cmd.initial
    if response is None:  # RFC 9051 6.2.2: empty challenge, then the client's response
        s.send(b"+ \r\n")
        await s.conn.flush()
        # The response is part of the command: the same pre-login bound applies.
        line = await s.conn.read_line(PREAUTH_COMMAND_MAX)
        response = line.decode("ascii", "replace").strip()
    if response == "*":
        raise bad("Authentication cancelled")
    try:
        creds = sasl.parse_plain(sasl.decode_response(response))
    except sasl.SaslError:
        _failed(s)
        raise bad("Malformed PLAIN response") from None
    if not sasl.acts_as_self(creds):  # RFC 4616 2: no proxy logins
        _failed(s)
        raise ImapError("Not authorized to act as another user", "AUTHORIZATIONFAILED")
    return await _login_user(s, creds.authcid, creds.password)


async def enable(s: Session, cmd: Command) -> str:
    assert isinstance(cmd, Enable)
    enabled: list[str] = []
    for cap in cmd.capabilities:
        if cap not in ENABLEABLE:
            continue  # RFC 5161 3.1: unknown capabilities are ignored
        if cap == "CONDSTORE" and not s.condstore:
            s.enable_condstore()  # RFC 7162 3.1: HIGHESTMODSEQ first when selected
        elif cap == "QRESYNC" and not s.qresync:
            s.enable_condstore()  # RFC 7162 3.2.3: QRESYNC implies CONDSTORE
            s.qresync = True
        elif cap == "UTF8=ACCEPT" and not s.utf8:
            s.utf8 = True
        elif cap == "IMAP4REV2" and not s.rev2:
            s.rev2 = True
        else:
            continue
        enabled.append("IMAP4rev2" if cap == "IMAP4REV2" else cap)
    s.send(("* ENABLED " + " ".join(enabled)).rstrip().encode() + b"\r\n")
    return "ENABLE completed"


async def compress(s: Session, cmd: Command) -> str | None:
    assert isinstance(cmd, Compress)
    if cmd.mechanism != "DEFLATE":
        raise bad("Unknown compression mechanism")
    if s.conn.compressed:
        raise ImapError("Compression is already active", "COMPRESSIONACTIVE")
    s.send(f"{cmd.tag} OK DEFLATE active\r\n".encode())
    await s.conn.flush()
    s.conn.start_compress()  # RFC 4978 3: compression starts after the tagged OK
    return None


async def idle(s: Session, cmd: Command) -> str | None:
    return await s.idle(cmd.tag)
