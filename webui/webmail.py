"""Webmail at /mail/: Roundcube behind the web front, without a second web server.

:class:`Mount` wraps the Flask app: a request below /mail/ goes to :class:`Gateway` while
``[webmail] enabled`` is true, else to Flask, whose ``webmail.off`` page says webmail is
off (with the dashboard setting for admins). The gateway

- serves Roundcube's static files itself from its public_html: only GET/HEAD, only the
  types in ``STATIC_TYPES`` (never .php, never a dotfile, a ``..`` segment or a skin's
  templates/ source), only files
  whose real path (symlinks followed) lies inside Roundcube's tree or the Debian
  JavaScript libraries it links to (``STATIC_ROOTS``); streamed in blocks, with
  Last-Modified/ETag and a long cache lifetime for Roundcube's versioned URLs (``?s=``);
- passes /mail/ and /mail/index.php to php-fpm over FastCGI (webui.fastcgi). The script
  is always public_html/index.php: the browser never chooses SCRIPT_FILENAME. Any other
  path is a static file or 404;
- throttles logins per browser address (:class:`LoginGate`): Roundcube logs in to IMAP
  from 127.0.0.1, so the daemon's per-IP budget cannot tell webmail users apart.

Roundcube sets its own cookies (path /mail/) and CSRF tokens and frames its own pages,
so the dashboard's CSP (webui.security) is not applied here; the gateway adds
``frame-ancestors 'self'``, nosniff and a same-origin referrer policy where Roundcube
did not set them.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote, unquote_plus

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance import config
from appliance.accounts import LoginThrottle
from appliance.webmail import PUBLIC_HTML
from webui import configedit, fastcgi, sizing
from webui.context import WebContext, web
from webui.helper import HelperError, in_words
from webui.httpd import WsgiApp
from webui.security import current_user

log = logging.getLogger(__name__)

PREFIX = "/mail/"
SCRIPT_NAME = "/mail/index.php"
STATIC_BLOCK = 64 * 1024
MAX_LOGIN_BODY = 64 * 1024  # a login form's body; a larger login POST is refused (413)
STATIC_MAX_AGE = 24 * 3600  # seconds, unversioned static files
VERSIONED_MAX_AGE = 365 * 24 * 3600  # seconds, URLs with Roundcube's ?s=<mtime>
STATIC_ROOTS = (
    Path("/var/lib/roundcube"),
    Path("/usr/share/roundcube"),
    Path("/usr/share/javascript"),
    Path("/usr/share/nodejs"),
)
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".ico": "image/vnd.microsoft.icon",
    ".webp": "image/webp",
    ".tiff": "image/tiff",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".eot": "application/vnd.ms-fontobject",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".pdf": "application/pdf",
    ".html": "text/html; charset=utf-8",  # watermark.html (empty frames); never templates/
}
SECURITY_HEADERS = (
    ("Content-Security-Policy", "frame-ancestors 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "same-origin"),
)
_ACTION_CHARS = re.compile(r"[^a-z0-9_.\-]+", re.IGNORECASE)  # Roundcube's asciiwords()

bp = Blueprint("webmail", __name__)


@bp.route("/mail/", endpoint="off")
@bp.route("/mail/<path:rest>", endpoint="off")
def off(rest: str = "") -> tuple[str, int]:
    """Reached only while webmail is off (Mount sends /mail/ to the gateway when on)."""
    return render_template("webmail_off.html"), 404


@dataclass(frozen=True)
class Status:
    """What the dashboard says about webmail."""

    on: bool
    fits: bool  # hardware sizing: the box has the memory for it
    ram: int
    need: int


def status(ctx: WebContext) -> Status:
    hw = ctx.measure(ctx.config().mail_dir)
    rec = sizing.recommend(hw)
    return Status(ctx.config().webmail.enabled, rec.webmail, hw.ram, sizing.WEBMAIL_RAM)


@bp.app_context_processor
def _link() -> dict[str, Any]:
    """``webmail_on`` for the pages that link to /mail/ (dashboard, My account, apps)."""
    try:
        return {"webmail_on": web().config().webmail.enabled}
    except (config.ConfigError, OSError):  # the error page for a broken config renders too
        return {"webmail_on": False}


@bp.route("/webmail/setting", methods=["POST"], endpoint="setting")
def setting() -> Response:
    """Turn webmail on or off (admins: not a self-service page)."""
    ctx = web()
    on = request.form.get("enabled") == "on"
    try:
        configedit.update(ctx.config_path, webmail={"enabled": on})
    except config.ConfigError as exc:
        log.warning("web=webmail-setting-invalid error=%s", exc)
        flash("Not saved: the box refused this setting.", "error")
        return redirect(url_for("dashboard.index") + "#webmail")
    log.info("web=webmail-set enabled=%s by=%s", on, current_user())
    flash(f"Webmail is {'on' if on else 'off'}. " + configedit.reload_daemon(ctx), "ok")
    if not ctx.config().dev:
        # On the box php-fpm is pillarbox-webmail.service: the root helper starts or stops it.
        try:
            ctx.helper.call("webmail.apply", enabled=on)
        except HelperError as exc:
            flash(in_words(exc, f"turn webmail {'on' if on else 'off'}"), "error")
    return redirect(url_for("dashboard.index") + "#webmail")


# ------------------------------------------------------------------ the form fields PHP sees


def _php_name(name: str) -> str | None:
    """PHP's variable name for a form field name; None for an array (not a string)."""
    name = name.lstrip(" ")
    if "[" in name and "]" in name.split("[", 1)[1]:
        return None
    return name.replace(" ", "_").replace(".", "_").replace("[", "_")


def _urlencoded(data: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in parse_qsl(data, keep_blank_values=True, encoding="utf-8"):
        php = _php_name(name)
        if php is not None:
            fields[php] = value  # PHP keeps the last of repeated names
    return fields


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    """The plain (non-file) fields of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    if not msg.is_multipart():
        return fields
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        php = _php_name(name)
        payload = part.get_payload(decode=True)
        if php is not None and isinstance(payload, bytes):
            fields[php] = payload.decode("utf-8", "replace")
    return fields


SCAN_BLOCK = 64 * 1024
SMALL_FIELD = 4096  # a field whose name (and, for _action/_user, value) fits in this


class _Suspect(Exception):
    """A large form field that could be a login's ``_action`` but is too long to read."""


def _large_form(content_type: str, stream: BinaryIO, length: int) -> dict[str, str]:
    """The small fields of a large form body read in blocks from a seekable stream
    (rewound after): no body is held whole in memory. Only fields that fit in
    SMALL_FIELD bytes are returned; a longer one whose name could be a login field
    raises :class:`_Suspect`."""
    start = stream.tell()
    try:
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            return _large_urlencoded(stream, length)
        if kind == "multipart/form-data":
            return _large_multipart(content_type, stream, length)
        return {}
    finally:
        stream.seek(start)


def _blocks(stream: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0 and (block := stream.read(min(SCAN_BLOCK, length))):
        length -= len(block)
        yield block


def _login_field(name: str) -> bool:
    php = _php_name(name)
    return php is None or php in ("_action", "_user") or "action" in php.lower()


def _large_urlencoded(stream: BinaryIO, length: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    field = bytearray()
    long_field = False

    def done() -> None:
        if not long_field:
            fields.update(_urlencoded(field.decode("latin-1")))
            return
        name = unquote_plus(bytes(field).split(b"=", 1)[0].decode("latin-1"))
        if b"=" not in field or _login_field(name):
            raise _Suspect(name[:40])

    for block in _blocks(stream, length):
        pieces = block.split(b"&")
        for i, piece in enumerate(pieces):
            if i:
                done()
                field.clear()
                long_field = False
            if len(field) < SMALL_FIELD:
                field += piece[: SMALL_FIELD - len(field) + 1]
            if len(field) > SMALL_FIELD:
                long_field = True
    done()
    return fields


def _large_multipart(content_type: str, stream: BinaryIO, length: int) -> dict[str, str]:
    """The small non-file parts: each part's head and a value of up to SMALL_FIELD bytes
    are read after its boundary; the parts' contents are skipped."""
    msg = email.message.EmailMessage(policy=email.policy.HTTP)
    msg["Content-Type"] = content_type
    boundary = msg.get_boundary()
    if not boundary:
        return {}
    delimiter = b"--" + boundary.encode("latin-1")
    # Where each part begins: after a delimiter at the start or after CRLF.
    starts: list[int] = []
    tail, offset = b"", 0
    for block in _blocks(stream, length):
        data = tail + block
        base = offset - len(tail)
        at = data.find(delimiter)
        while at >= 0:
            if (at == 0 and base == 0) or data[at - 2 : at] == b"\r\n":
                starts.append(base + at + len(delimiter))
            at = data.find(delimiter, at + 1)
        offset += len(block)
        tail = data[-(len(delimiter) + 2) :]
    starts = sorted(set(starts))
    fields: dict[str, str] = {}
    for i, pos in enumerate(starts):
        stream.seek(pos)
        end = starts[i + 1] - len(delimiter) if i + 1 < len(starts) else offset
        chunk = stream.read(min(end - pos, 2 * SMALL_FIELD + 2))
        whole = len(chunk) == end - pos
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        # after the rest of the delimiter's line: the part's head, a blank line, its value
        head, sep, value = chunk.partition(b"\r\n")[2].partition(b"\r\n\r\n")
        if not sep:
            if _login_field(head.decode("latin-1")):
                raise _Suspect("part head")
            continue
        part = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        if not whole:  # the value goes on past what was read
            if _login_field(name):
                raise _Suspect(name[:40])
            continue
        php = _php_name(name)
        if php is not None:
            fields[php] = value.removesuffix(b"\r\n").decode("utf-8", "replace")
    return fields


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in header.split(";"):
        name, sep, value = item.strip().partition("=")
        if sep:
            php = _php_name(name)
            if php is not None:
                out.setdefault(php, value)
    return out


@dataclass(frozen=True)
class LoginAttempt:
    user: str


def login_attempt(
    environ: dict[str, Any], body: bytes, form: dict[str, str] | None = None
) -> LoginAttempt | None:
    """The login a POST asks Roundcube for, or None. Roundcube reads ``_action`` from the
    query, then the form, then a cookie (the later wins) and strips it to
    ``[a-z0-9_.-]``; a visitor without a session is always on the login task, so the
    action alone decides."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    query = _urlencoded(environ.get("QUERY_STRING", ""))
    ctype = environ.get("CONTENT_TYPE", "")
    kind = ctype.split(";", 1)[0].strip().lower()
    if form is not None:  # the fields of a large body, read by _large_form
        pass
    elif kind == "application/x-www-form-urlencoded":
        form = _urlencoded(body.decode("latin-1"))
    elif kind == "multipart/form-data" and b"action" in body:
        form = _multipart(ctype, body)
    else:
        form = {}
    cookie = _cookies(environ.get("HTTP_COOKIE", ""))
    action = cookie.get("_action", form.get("_action", query.get("_action", "")))
    if _ACTION_CHARS.sub("", action) != "login":
        return None
    return LoginAttempt(form.get("_user", "").strip())


def login_succeeded(status: int, headers: list[tuple[str, str]]) -> bool:
    """Roundcube answers a good login with a redirect away from the login task and a
    failed one with the login page again."""
    if status not in (301, 302, 303):
        return False
    location = next((v for k, v in headers if k.lower() == "location"), "")
    return "_task=login" not in location


# ------------------------------------------------------------------ the gateway


def _page(
    start_response: Callable[..., Any],
    code: int,
    title: str,
    text: str,
    extra: list[tuple[str, str]],
) -> list[bytes]:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{title}</title></head><body><h1>{title}</h1><p>{text}</p>"
        "<p><a href='/'>Back to the dashboard</a></p></body></html>"
    ).encode()
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *extra,
        *SECURITY_HEADERS,
    ]
    start_response(f"{code} {HTTPStatus(code).phrase}", headers)
    return [body]


def _file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(STATIC_BLOCK):
            yield block


class Gateway:
    """The /mail/ WSGI app (see the module docstring)."""

    def __init__(
        self,
        settings: Callable[[], config.Webmail],
        throttle: LoginThrottle,
        canonical: Callable[[str], str],
        public_html: Path = PUBLIC_HTML,
        roots: Iterable[Path] = STATIC_ROOTS,
    ) -> None:
        self.settings = settings
        self.throttle = throttle
        self.canonical = canonical
        self.public_html = public_html
        self.roots = tuple(r.resolve() for r in roots)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path: str = environ.get("PATH_INFO", "")
        rel = path[len(PREFIX) :] if path.startswith(PREFIX) else None
        if rel is None:  # "/mail": the directory's address ends in a slash
            query = environ.get("QUERY_STRING", "")
            where = PREFIX + (f"?{query}" if query else "")
            return _page(
                start_response, 301, "Moved", "Webmail is at /mail/.", [("Location", where)]
            )
        if rel in ("", "index.php"):
            return self._php(environ, start_response)
        return self._static(rel, environ, start_response)

    # ---------------------------------------------------------------- static files

    def static_path(self, rel: str) -> Path | None:
        """The file a static URL below /mail/ names, or None (then 404)."""
        parts = rel.split("/")
        if not rel.isascii() or any(
            p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts
        ):
            return None
        if os.path.splitext(parts[-1])[1].lower() not in STATIC_TYPES:
            return None
        if "templates" in parts:  # a skin's or plugin's template source, not a page
            return None
        try:
            real = self.public_html.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_file() or not any(real.is_relative_to(root) for root in self.roots):
            return None
        if real.suffix.lower() not in STATIC_TYPES:  # a symlink to some other kind of file
            return None
        return real

    def _static(self, rel: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        real = self.static_path(rel)
        if real is None:
            return _page(start_response, 404, "Not found", "No such page in webmail.", [])
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _page(
                start_response, 405, "Method not allowed", "Static file.", [("Allow", "GET, HEAD")]
            )
        st = real.stat()
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        versioned = any(k == "s" for k, _ in parse_qsl(environ.get("QUERY_STRING", "")))
        age = VERSIONED_MAX_AGE if versioned else STATIC_MAX_AGE
        headers = [
            ("Content-Type", STATIC_TYPES[real.suffix.lower()]),
            ("Cache-Control", f"public, max-age={age}"),
            ("Last-Modified", formatdate(st.st_mtime, usegmt=True)),
            ("ETag", etag),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if self._not_modified(environ, etag, st.st_mtime):
            start_response("304 Not Modified", headers)
            return []
        start_response("200 OK", [*headers, ("Content-Length", str(st.st_size))])
        return _file_blocks(real)

    @staticmethod
    def _not_modified(environ: dict[str, Any], etag: str, mtime: float) -> bool:
        # RFC 9110 13.1.2/13.1.3: If-None-Match decides when present.
        match = environ.get("HTTP_IF_NONE_MATCH")
        if match is not None:
            return etag in [m.strip().removeprefix("W/") for m in match.split(",")]
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if since:
            try:
                return int(mtime) <= parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError):
                return False
        return False

    # ---------------------------------------------------------------- PHP

    def params(self, environ: dict[str, Any], length: int) -> dict[str, str]:
        """The CGI parameters for php-fpm (RFC 3875 4.1); the script is fixed."""
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        uri = quote(path.encode("latin-1"), safe="/") + (f"?{query}" if query else "")
        params = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "pillarbox",
            "SCRIPT_FILENAME": str(self.public_html / "index.php"),
            "SCRIPT_NAME": SCRIPT_NAME,
            "PHP_SELF": SCRIPT_NAME,
            "DOCUMENT_ROOT": str(self.public_html),
            "DOCUMENT_URI": path,
            "REQUEST_URI": uri,
            "QUERY_STRING": query,
            "REQUEST_METHOD": environ.get("REQUEST_METHOD", "GET"),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(length),
            "SERVER_NAME": environ.get("SERVER_NAME", ""),
            "SERVER_PORT": environ.get("SERVER_PORT", ""),
            "SERVER_PROTOCOL": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "REMOTE_ADDR": environ.get("REMOTE_ADDR", ""),
            "REMOTE_PORT": environ.get("REMOTE_PORT", "0"),
            "REQUEST_SCHEME": environ.get("wsgi.url_scheme", "http"),
        }
        if environ.get("wsgi.url_scheme") == "https":
            params["HTTPS"] = "on"
        for key, value in environ.items():
            # httpoxy: a "Proxy:" request header must not become PHP's HTTP_PROXY.
            if key.startswith("HTTP_") and key != "HTTP_PROXY" and isinstance(value, str):
                params[key] = value
        return params

    def _php(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        settings = self.settings()
        limit = settings.max_upload_mib * 1024 * 1024
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            text = f"Uploads are limited to {settings.max_upload_mib} MB."
            return _page(start_response, 413, "Too large", text, [])
        stream: BinaryIO = environ["wsgi.input"]
        attempt: LoginAttempt | None = None
        account, ip = "", environ.get("REMOTE_ADDR", "")
        if environ.get("REQUEST_METHOD") == "POST" and length <= MAX_LOGIN_BODY:
            body = stream.read(length)
            stream = io.BytesIO(body)
            attempt = login_attempt(environ, body)
        elif environ.get("REQUEST_METHOD") == "POST":
            # A larger POST may still carry _action=login: look before PHP does, in
            # blocks (the web front keeps a large body in a temporary file).
            if not stream.seekable():
                stream = io.BytesIO(stream.read(length))
            try:
                form = _large_form(environ.get("CONTENT_TYPE", ""), stream, length)
            except _Suspect:
                form = {"_action": "login"}
            if login_attempt(environ, b"", form) is not None:
                return _page(start_response, 413, "Too large", "Login form too large.", [])
        if attempt is not None:
            account = self.canonical(attempt.user)
            wait = self.throttle.retry_after(account, ip)
            if wait > 0:
                log.info(
                    "webmail=login-throttled user=%s ip=%s retry_after=%.0f", account, ip, wait
                )
                text = "Too many failed logins. Please wait a few minutes and try again."
                # RFC 6585 4: 429 Too Many Requests, with Retry-After
                return _page(
                    start_response,
                    429,
                    "Too many attempts",
                    text,
                    [("Retry-After", str(int(wait) + 1))],
                )
        try:
            answer = fastcgi.call(
                settings.fpm_socket,
                self.params(environ, length),
                stream,
                length,
                float(settings.request_timeout),
            )
        except fastcgi.FastCgiError as exc:
            log.error("webmail=fastcgi-failed socket=%s error=%s", settings.fpm_socket, exc)
            if exc.timeout:
                return _page(
                    start_response,
                    504,
                    "Webmail timed out",
                    "Webmail did not answer in time. Try again.",
                    [],
                )
            text = (
                "Webmail is not running right now. Try again in a minute;"
                " an admin can check the dashboard."
            )
            return _page(start_response, 502, "Webmail is unavailable", text, [])
        if attempt is not None:
            if login_succeeded(answer.status, answer.headers):
                self.throttle.success(account, ip)
                log.info("webmail=login-ok user=%s ip=%s", account, ip)
            else:
                self.throttle.failure(account, ip)
                log.info("webmail=login-failed user=%s ip=%s", account, ip)
        headers = list(answer.headers)
        present = {k.lower() for k, _ in headers}
        headers += [(k, v) for k, v in SECURITY_HEADERS if k.lower() not in present]
        reason = answer.reason or HTTPStatus(answer.status).phrase
        start_response(f"{answer.status} {reason}", headers)
        return _Streamed(answer)


class _Streamed:
    """The PHP answer's body as a WSGI iterable that closes the FastCGI socket."""

    def __init__(self, answer: fastcgi.Response) -> None:
        self.answer = answer

    def __iter__(self) -> Iterator[bytes]:
        return self.answer.body

    def close(self) -> None:
        self.answer.close()


# Pages of the web UI that live below /mail/ (older than webmail, and clients look them up
# there): Thunderbird's autoconfig file and the Apple profile stay with Flask.
FLASK_PATHS = frozenset({"/mail/config-v1.1.xml", "/mail/phone.mobileconfig"})


class Mount:
    """The web front's WSGI app: /mail/ to the gateway while webmail is on, else Flask."""

    def __init__(self, app: WsgiApp, enabled: Callable[[], bool], gateway: WsgiApp) -> None:
        self.app = app
        self.enabled = enabled
        self.gateway = gateway

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        ours = path == "/mail" or (path.startswith(PREFIX) and path not in FLASK_PATHS)
        if ours and self.enabled():
            return self.gateway(environ, start_response)
        return self.app(environ, start_response)


def mount(app: Flask) -> Mount:
    """The Flask app with the webmail gateway in front of /mail/ (webui.serve uses it)."""
    ctx: WebContext = app.extensions["pillarbox"]
    gateway = Gateway(lambda: ctx.config().webmail, ctx.throttle, ctx.accounts.canonical_login)
    return Mount(app, lambda: ctx.config().webmail.enabled, gateway)
