"""A private Dovecot 2.3 (Debian's dovecot-imapd) for differential IMAP tests.

It is bench/refservers.py's DovecotInstance: its own config, base_dir, state and Maildir
in a temporary directory, IMAPS on a free loopback port, mail processes as ``nobody``.
It never reads /etc/dovecot and never binds 143/993, so a system Dovecot (or none) does
not matter. The master starts as root (it drops to ``nobody``/``dovenull``); when the
tests do not run as root, or Dovecot is not installed, the fixture skips.

    with private_dovecot() as dv:
        client = dv.connect()          # RawClient, logged in
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.tls import client_context, generate_self_signed
from bench.refservers import BENCH_PASSWORD, BENCH_USER, DovecotInstance
from tests.harness import free_port
from tests.protocol.imap.rawclient import RawClient


def dovecot_missing_reason() -> str | None:
    """Why a private Dovecot cannot run here, or None when it can."""
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        return "dovecot-imapd is not installed (tests/apt-packages.txt lists it)"
    if os.geteuid() != 0:
        return "a private Dovecot master needs root to drop its mail processes to nobody"
    return None


@dataclass
class DovecotRef:
    instance: DovecotInstance
    user: str = BENCH_USER
    password: str = BENCH_PASSWORD

    @property
    def port(self) -> int:
        return self.instance.imap_port

    def tls(self) -> ssl.SSLContext:
        return client_context(verify=False)

    def connect(self, login: bool = True) -> RawClient:
        client = RawClient("127.0.0.1", self.port, self.tls())
        if login:
            client.ok(f'LOGIN "{self.user}" "{self.password}"')
        return client

    def log(self) -> str:
        try:
            return (self.instance.root / "dovecot.log").read_text(errors="replace")[-20000:]
        except FileNotFoundError:
            return ""


@contextmanager
def private_dovecot() -> Iterator[DovecotRef]:
    """Start a private Dovecot; stop it and remove its directory on exit."""
    reason = dovecot_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    # Not pytest's tmp_path: that is 0700 under /tmp/pytest-of-root, and the imap process
    # runs as nobody and must reach its home below this directory.
    root = Path(tempfile.mkdtemp(prefix="pillarbox-dovecot-"))
    try:
        os.chmod(root, 0o755)
        cert, key = root / "cert.pem", root / "key.pem"
        generate_self_signed(cert, key, "ref.bench.test")
        os.chmod(key, 0o644)  # dovecot's config process reads it unprivileged
        instance = DovecotInstance(root / "dovecot", free_port(), free_port(), cert, key)
        instance.start()
        try:
            yield DovecotRef(instance)
        finally:
            instance.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ response tokenizer


@dataclass(frozen=True)
class Atom:
    """An IMAP atom (or number, or flag); strings are ``bytes``, NIL is ``None``."""

    text: str

    def __repr__(self) -> str:
        return self.text


Value = Atom | bytes | None | list["Value"]

_ATOM_END = b' ()"\r\n{'


def tokenize(data: bytes) -> list[Value]:
    """One response line (literals folded in, as RawClient.line returns it) as values.

    Quoted strings and literals (``{n}``, ``~{n}``) both become ``bytes``, so the same
    string compares equal however a server chose to send it. ``NIL`` is ``None``; an
    atom keeps a bracketed section with its spaces (``BODY[HEADER.FIELDS (TO)]<0>``)."""
    pos = 0
    stack: list[list[Value]] = [[]]
    n = len(data)
    while pos < n:
        c = data[pos : pos + 1]
        if c in (b" ", b"\r", b"\n"):
            pos += 1
        elif c == b"(":
            stack.append([])
            pos += 1
        elif c == b")":
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' at {pos}: {data[:200]!r}")
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif c == b'"':
            out = bytearray()
            pos += 1
            while data[pos : pos + 1] != b'"':
                if pos >= n:
                    raise ValueError(f"unterminated string: {data[:200]!r}")
                if data[pos : pos + 1] == b"\\":
                    pos += 1
                out += data[pos : pos + 1]
                pos += 1
            stack[-1].append(bytes(out))
            pos += 1
        elif c == b"{" or data[pos : pos + 2] == b"~{":
            close = data.index(b"}", pos)
            size = int(data[data.index(b"{", pos) + 1 : close].rstrip(b"+"))
            start = close + 3  # "}\r\n"
            stack[-1].append(data[start : start + size])
            pos = start + size
        else:
            start = pos
            depth = 0
            while pos < n:
                ch = data[pos : pos + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in _ATOM_END:
                    break
                pos += 1
            word = data[start:pos].decode("utf-8", "replace")
            stack[-1].append(None if word.upper() == "NIL" else Atom(word))
    if len(stack) != 1:
        raise ValueError(f"unbalanced '(': {data[:200]!r}")
    return stack[0]


# ------------------------------------------------------------------ normalization


def _lower(value: Value) -> Value:
    return value.lower() if isinstance(value, bytes) else value


def _params(value: Value) -> Value:
    """A parameter list with its attribute names lower-cased (RFC 2045 5.1)."""
    if not isinstance(value, list):
        return value
    return [_lower(v) if i % 2 == 0 else v for i, v in enumerate(value)]


def _extension(ext: list[Value], dsp_at: int) -> list[Value]:
    out = list(ext)
    if len(out) > dsp_at and isinstance(out[dsp_at], list) and out[dsp_at]:
        dsp = out[dsp_at]
        assert isinstance(dsp, list)
        out[dsp_at] = [_lower(dsp[0]), *(_params(v) for v in dsp[1:])]
    lang_at = dsp_at + 1
    if len(out) > lang_at and isinstance(out[lang_at], bytes):
        out[lang_at] = [out[lang_at]]
    return out


def normalize_body(body: Value) -> Value:
    """BODY / BODYSTRUCTURE with only representation differences removed.

    RFC 2045 5.1: 'The type, subtype, and parameter names are not case sensitive'; so are
    the transfer encoding (6.1) and the disposition type (RFC 2183 2). RFC 9051 9
    (body-fld-lang = nstring / "(" string *(SP string) ")"): "en" and ("en") are the
    same language list. Everything else -- values, sizes, line counts, nesting -- is
    compared as sent."""
    if not isinstance(body, list) or not body:
        return body
    if isinstance(body[0], list):  # multipart: bodies, subtype, then extension data
        n = 0
        while n < len(body) and isinstance(body[n], list):
            n += 1
        parts = [normalize_body(b) for b in body[:n]]
        rest = list(body[n:])  # subtype, params, dsp, lang, loc
        if rest:
            rest[0] = _lower(rest[0])
        if len(rest) > 1:
            rest[1] = _params(rest[1])
        return parts + rest[:2] + _extension(rest[2:], 0)
    out = list(body)
    for i in (0, 1, 5):
        if i < len(out):
            out[i] = _lower(out[i])
    if len(out) > 2:
        out[2] = _params(out[2])
    after = 7
    kind = (out[0], out[1]) if len(out) > 1 else (None, None)
    if kind[0] == b"text":
        after = 8
    elif kind in ((b"message", b"rfc822"), (b"message", b"global")) and len(out) > 8:
        out[8] = normalize_body(out[8])
        after = 10
    return out[:after] + _extension(out[after:], 1)


def normalize(key: str, value: Value) -> Value:
    """A FETCH data item's value, normalized where the item has equivalent forms."""
    if key in ("BODY", "BODYSTRUCTURE"):
        return normalize_body(value)
    if key == "FLAGS" and isinstance(value, list):
        # \Recent belongs to whichever session saw the message first (RFC 3501 2.3.2).
        return sorted(
            (v for v in value if not (isinstance(v, Atom) and v.text.upper() == "\\RECENT")),
            key=repr,
        )
    return value
