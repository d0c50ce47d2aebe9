"""The old provider's IMAP server, read with imaplib: folders, message metadata, bodies.

One connection at a time (no parallel sessions: providers count them). Bodies are
fetched in batches bounded by count and bytes (``UID FETCH`` on UID sets). A server
that answers NO or BYE with ``[LIMIT]``, ``[UNAVAILABLE]`` or ``[INUSE]`` (RFC 5530)
raises :class:`ServerBusy`, a dropped connection :class:`ConnectionLost`: the engine
pauses, reconnects and resumes from its saved state.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from appliance import mutf7

Security = Literal["tls", "starttls", "plain"]

# RFC 5530 3: response codes that mean "try again later", not "never"
BUSY_CODES = ("[LIMIT]", "[UNAVAILABLE]", "[INUSE]", "[THROTTLED]")
# XLIST (Gmail's pre-RFC 6154 command) attributes -> RFC 6154 ones
XLIST_ATTRS = {"\\spam": "\\Junk", "\\allmail": "\\All", "\\starred": "\\Flagged"}
SPECIAL_ATTRS = ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged")


class SourceError(Exception):
    """The source refused or failed in a way a retry will not fix (clear text)."""


class ConnectionLost(Exception):
    """The connection dropped or timed out: reconnect and resume."""


class ServerBusy(Exception):
    """NO/BYE with a rate-limit response code: pause, reconnect and resume."""


class FolderGone(Exception):
    """SELECT of a listed folder failed: it was deleted or renamed meanwhile."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    security: Security = "tls"
    verify: bool = True
    timeout: float = 60.0


@dataclass(frozen=True)
class RemoteFolder:
    name: str  # decoded, with "/" as separator
    raw: bytes  # the name as the server sends it (modified UTF-7), for SELECT
    attributes: frozenset[str]  # lower-case attributes from LIST/XLIST
    delimiter: str

    @property
    def selectable(self) -> bool:
        return "\\noselect" not in self.attributes and "\\nonexistent" not in self.attributes

    @property
    def special_use(self) -> str | None:
        for attr in SPECIAL_ATTRS:
            if attr.lower() in self.attributes:
                return attr
        return None


@dataclass(frozen=True)
class RemoteMessage:
    uid: int
    size: int
    flags: frozenset[str]
    internal_date: float | None
    message_id: str
    gm_msgid: str = ""

    def key(self) -> str:
        """Identity across folders: Gmail's message id, else Message-ID and size."""
        return f"gm:{self.gm_msgid}" if self.gm_msgid else f"{self.message_id}|{self.size}"


@dataclass(frozen=True)
class FolderInfo:
    uidvalidity: int
    exists: int
    uidnext: int = 0


_LIST_RE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?P<delim>"(?:\\.|[^"\\])*"|NIL) ?(?P<name>.*)$')
_UID_RE = re.compile(rb"\bUID (\d+)")
_SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS_RE = re.compile(rb"\bFLAGS \(([^)]*)\)")
_DATE_RE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_GM_RE = re.compile(rb"\bX-GM-MSGID (\d+)")
_MSGID_RE = re.compile(rb"^Message-ID:[ \t]*(.*?)\r?$", re.I | re.M)


def _unquote(raw: bytes) -> bytes:
    if raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2:
        return re.sub(rb"\\(.)", rb"\1", raw[1:-1])
    return raw


def parse_internal_date(text: str) -> float | None:
    """RFC 3501 date-time: ``"17-Jul-1996 02:44:25 -0700"`` (day may be space-padded)."""
    try:
        return datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    except ValueError:
        return None


def message_id_of(header_block: bytes) -> str:
    """The Message-ID field's value (unfolded, angle brackets kept), or ""."""
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", header_block)
    m = _MSGID_RE.search(unfolded)
    return m.group(1).strip().decode("utf-8", "replace") if m else ""


def _groups(data: Sequence[Any]) -> Iterator[tuple[bytes, list[bytes]]]:
    """imaplib's FETCH data as (response text without literals, literals) per message."""
    text = b""
    literals: list[bytes] = []
    started = False
    for item in data:
        head = item[0] if isinstance(item, tuple) else item
        if not isinstance(head, bytes):
            continue
        if head[:1].isdigit() and started:
            yield text, literals
            text, literals = b"", []
        started = True
        text += head
        if isinstance(item, tuple):
            literals.append(item[1])
    if started:
        yield text, literals


def uid_set(uids: Iterable[int]) -> str:
    """Ascending UIDs as an IMAP sequence set of ranges (RFC 3501 9: sequence-set)."""
    out: list[str] = []
    run: list[int] = []
    for uid in sorted(uids):
        if run and uid == run[-1] + 1:
            run.append(uid)
            continue
        if run:
            out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [uid]
    if run:
        out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


class ImapSource:
    def __init__(self, settings: ImapSettings) -> None:
        self.s = settings
        self.conn: imaplib.IMAP4 | None = None
        self.capabilities: frozenset[str] = frozenset()
        self.selected: bytes | None = None

    # -------------------------------------------------------------- connection

    def connect(self) -> None:
        s = self.s
        ctx = ssl.create_default_context()
        if not s.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            if s.security == "tls":
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.host, s.port, ssl_context=ctx, timeout=s.timeout
                )
            else:
                conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
                if s.security == "starttls":
                    conn.starttls(ssl_context=ctx)  # RFC 9051 6.2.1
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"the certificate of {s.host} is not trusted ({exc.verify_message}); "
                "check the host name"
            ) from None
        except (socket.gaierror, ConnectionRefusedError, TimeoutError) as exc:
            raise SourceError(f"cannot connect to {s.host} port {s.port}: {_oserr(exc)}") from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise SourceError(f"cannot connect to {s.host} port {s.port}: {_oserr(exc)}") from None
        try:
            # RFC 9051 6.2.3: the user name as a quoted string (imaplib quotes only the password)
            conn.login('"' + s.user.replace("\\", "\\\\").replace('"', '\\"') + '"', s.password)
        except imaplib.IMAP4.abort as exc:
            raise ConnectionLost(f"{s.host} closed the connection at login: {exc}") from None
        except imaplib.IMAP4.error as exc:
            text = _text(exc)
            if any(code in text for code in BUSY_CODES):
                raise ServerBusy(text) from None
            raise SourceError(
                f"{s.host} refused the login for {s.user}: {text} "
                "(check the password; many providers need an app password)"
            ) from None
        except OSError as exc:
            raise ConnectionLost(f"connection to {s.host} lost at login: {_oserr(exc)}") from None
        self.conn = conn
        self.selected = None
        self.capabilities = frozenset(c.upper() for c in conn.capabilities)

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.logout()
        except Exception:
            with contextlib.suppress(Exception):
                conn.shutdown()

    @property
    def gmail(self) -> bool:
        return "X-GM-EXT-1" in self.capabilities

    def _call(self, name: str, *args: Any) -> list[Any]:
        """Run one command; typed errors for the outcomes the engine handles."""
        if self.conn is None:
            raise ConnectionLost("not connected")
        try:
            typ, data = getattr(self.conn, name)(*args)
        except imaplib.IMAP4.abort as exc:
            self.conn = None
            text = _text(exc)
            if any(code in text for code in BUSY_CODES):
                raise ServerBusy(text) from None
            raise ConnectionLost(f"{self.s.host} dropped the connection: {text}") from None
        except imaplib.IMAP4.error as exc:
            text = _text(exc)
            if any(code in text for code in BUSY_CODES):
                raise ServerBusy(text) from None
            raise SourceError(f"{self.s.host}: {name.upper()} failed: {text}") from None
        except OSError as exc:
            self.conn = None
            raise ConnectionLost(f"connection to {self.s.host} lost: {_oserr(exc)}") from None
        if typ != "OK":
            text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            if any(code in text for code in BUSY_CODES):
                raise ServerBusy(text)
            raise SourceError(f"{self.s.host}: {name.upper()} failed: {text}")
        return list(data)

    # -------------------------------------------------------------- folders

    def folders(self) -> list[RemoteFolder]:
        assert self.conn is not None
        if "SPECIAL-USE" in self.capabilities:
            # RFC 6154 5.1: ask for the special-use attributes explicitly
            data = self._list_command("LIST", '""', "*", "RETURN", "(SPECIAL-USE)")
        elif "XLIST" in self.capabilities:
            data = self._list_command("XLIST", '""', "*")
        else:
            data = self._call("list", '""', "*")
        out: list[RemoteFolder] = []
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):
                line, name_raw = item[0], item[1]
            else:
                line, name_raw = item, None
            m = _LIST_RE.match(line)
            if m is None:
                continue
            attrs = frozenset(a.lower() for a in m.group("attrs").decode().split())
            attrs = frozenset(XLIST_ATTRS.get(a, a).lower() for a in attrs)
            delim_raw = m.group("delim")
            delim = "" if delim_raw == b"NIL" else _unquote(delim_raw).decode()
            raw = name_raw if name_raw is not None else _unquote(m.group("name").strip())
            try:
                decoded = mutf7.decode(raw.decode("ascii", "strict"))
            except (UnicodeDecodeError, ValueError):
                decoded = raw.decode("utf-8", "replace")
            if decoded.upper() == "INBOX":
                decoded = "INBOX"
            parts = decoded.split(delim) if delim else [decoded]
            name = "/".join(p.replace("/", "_") for p in parts if p)
            if "\\inbox" in attrs:
                name = "INBOX"
            out.append(RemoteFolder(name, raw, attrs, delim))
        return out

    def _list_command(self, cmd: str, *args: str) -> list[Any]:
        assert self.conn is not None
        if cmd not in imaplib.Commands:
            imaplib.Commands[cmd] = ("AUTH", "SELECTED")
        try:
            typ, data = self.conn._simple_command(cmd, *args)
            typ, data = self.conn._untagged_response(typ, data, cmd)
        except imaplib.IMAP4.abort as exc:
            self.conn = None
            raise ConnectionLost(f"{self.s.host} dropped the connection: {_text(exc)}") from None
        except imaplib.IMAP4.error as exc:
            raise SourceError(f"{self.s.host}: {cmd} failed: {_text(exc)}") from None
        except OSError as exc:
            self.conn = None
            raise ConnectionLost(f"connection to {self.s.host} lost: {_oserr(exc)}") from None
        if typ != "OK":
            raise SourceError(f"{self.s.host}: {cmd} failed")
        return list(data)

    def select(self, folder: RemoteFolder) -> FolderInfo:
        assert self.conn is not None
        quoted = b'"' + folder.raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        try:
            data = self._call("select", quoted.decode("utf-8", "replace"), True)  # EXAMINE
        except SourceError as exc:
            raise FolderGone(f"folder {folder.name!r} cannot be opened any more: {exc}") from None
        exists = int(data[0]) if data and data[0] else 0
        _, uv = self.conn.response("UIDVALIDITY")
        uidvalidity = int(uv[0]) if uv and uv[0] else 0
        _, un = self.conn.response("UIDNEXT")
        uidnext = int(un[0]) if un and un[0] else 0
        self.selected = folder.raw
        return FolderInfo(uidvalidity, exists, uidnext)

    def count(self, folder: RemoteFolder) -> int:
        """Messages in a folder without selecting it (RFC 9051 6.3.11 STATUS)."""
        quoted = b'"' + folder.raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        try:
            data = self._call("status", quoted.decode("utf-8", "replace"), "(MESSAGES)")
        except SourceError:
            return 0
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            m = re.search(rb"MESSAGES (\d+)", line or b"")
            if m:
                return int(m.group(1))
        return 0

    # -------------------------------------------------------------- messages

    def metadata(self, after_uid: int, uidnext: int, window: int = 2000) -> Iterator[RemoteMessage]:
        """Every message of the selected folder with UID > ``after_uid``, ascending, fetched
        in UID windows of ``window`` (bounded responses); ``uidnext`` 0 = unknown."""
        items = "(UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
        items += " X-GM-MSGID)" if self.gmail else ")"
        low = after_uid + 1
        while uidnext == 0 or low < uidnext:
            # "n:*" when UIDNEXT is unknown (RFC 3501 6.4.8: * is the highest UID)
            high = "*" if uidnext == 0 else str(min(uidnext - 1, low + window - 1))
            data = self._call("uid", "FETCH", f"{low}:{high}", items)
            got = sorted((m for m in self._parse_meta(data) if m.uid >= low), key=lambda m: m.uid)
            yield from got
            if high == "*":
                return
            low = int(high) + 1

    @staticmethod
    def _parse_meta(data: Sequence[Any]) -> Iterator[RemoteMessage]:
        for text, literals in _groups(data):
            uid = _UID_RE.search(text)
            size = _SIZE_RE.search(text)
            if uid is None or size is None:
                continue  # an unsolicited FETCH (flag change by another session)
            flags = _FLAGS_RE.search(text)
            date = _DATE_RE.search(text)
            gm = _GM_RE.search(text)
            yield RemoteMessage(
                uid=int(uid.group(1)),
                size=int(size.group(1)),
                flags=frozenset(flags.group(1).decode("utf-8", "replace").split())
                if flags
                else frozenset(),
                internal_date=parse_internal_date(date.group(1).decode()) if date else None,
                message_id=message_id_of(literals[0]) if literals else "",
                gm_msgid=gm.group(1).decode() if gm else "",
            )

    def bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """BODY.PEEK[] of the given UIDs of the selected folder (missing ones left out)."""
        data = self._call("uid", "FETCH", uid_set(uids), "(UID BODY.PEEK[])")
        out: dict[int, bytes] = {}
        for text, literals in _groups(data):
            uid = _UID_RE.search(text)
            if uid is not None and literals:
                out[int(uid.group(1))] = literals[0]
        return out


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg)


def _oserr(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
