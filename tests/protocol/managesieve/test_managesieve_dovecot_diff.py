"""Differential test: Pillarbox's ManageSieve and a private Dovecot Pigeonhole
ManageSieve (Debian's dovecot-managesieved + dovecot-sieve) answer one fixed script of
commands alike: the status (OK/NO/BYE) and the response code of every reply, and the
data of LISTSCRIPTS and GETSCRIPT. Response text is not compared (the parsers' error
messages differ). Both servers get the same quota: scripts of at most 1,024 octets, at
most 2 scripts.

The private Dovecot has its own config, base_dir and home in a temporary directory,
ManageSieve on a free loopback port, mail processes as ``nobody``; it never reads
/etc/dovecot. It needs root (the master drops privileges), else the test skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.tls import generate_self_signed
from tests.harness import free_port
from tests.protocol.managesieve.conftest import Client, Server, ServerFactory, plain

USER = "alice@example.org"
PASSWORD = "correct-Horse-battery-42"  # conftest's; Dovecot's static passdb takes it too
KEEP = "keep;\r\n"
BAD = 'fileinto "x";\r\n'

# (command, literal appended or None); each reply is compared as status + code.
SCRIPT: list[tuple[str, str | None]] = [
    ('PUTSCRIPT "a"', KEEP),
    ('PUTSCRIPT "bad"', BAD),
    ('PUTSCRIPT "b"', "discard;\r\n"),
    ('PUTSCRIPT "c"', KEEP),  # a third script: QUOTA/MAXSCRIPTS
    ('HAVESPACE "c" 10', None),
    ('HAVESPACE "a" 5000', None),  # QUOTA/MAXSIZE
    ('HAVESPACE "a" 100', None),
    ('PUTSCRIPT "a"', "#" + "x" * 2000 + "\r\nkeep;\r\n"),
    ('SETACTIVE "none"', None),
    ('SETACTIVE "a"', None),
    ("LISTSCRIPTS", None),
    ('DELETESCRIPT "a"', None),  # ACTIVE
    ('RENAMESCRIPT "a" "b"', None),  # ALREADYEXISTS
    ('RENAMESCRIPT "x" "y"', None),  # NONEXISTENT
    ('GETSCRIPT "x"', None),
    ('DELETESCRIPT "x"', None),
    ('RENAMESCRIPT "a" "c"', None),
    ("LISTSCRIPTS", None),
    ('GETSCRIPT "c"', None),
    ('SETACTIVE ""', None),
    ("LISTSCRIPTS", None),
    ('DELETESCRIPT "c"', None),
    ("CHECKSCRIPT", BAD),
    ("CHECKSCRIPT", KEEP),
    ('NOOP "t"', None),
    ("LISTSCRIPTS", None),
    ("LOGOUT", None),
]


def _dovecot_missing() -> str | None:
    if not Path("/usr/lib/dovecot/managesieve").exists() or shutil.which("dovecot") is None:
        return "dovecot-managesieved is not installed (tests/apt-packages.txt lists it)"
    if os.geteuid() != 0:
        return "a private Dovecot master needs root to drop its processes to nobody"
    return None


def _wait_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"Dovecot ManageSieve did not listen on {port}")


@contextlib.contextmanager
def private_dovecot() -> Iterator[int]:
    reason = _dovecot_missing()
    if reason is not None:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="pillarbox-sieve-dovecot-"))
    os.chmod(root, 0o755)
    conf = root / "dovecot.conf"
    try:
        for sub in ("run", "state", "home"):
            (root / sub).mkdir()
        nobody = pwd.getpwnam("nobody")
        os.chown(root / "home", nobody.pw_uid, nobody.pw_gid)
        cert, key = root / "cert.pem", root / "key.pem"
        generate_self_signed(cert, key, "ref.sieve.test")
        os.chmod(key, 0o644)  # the config process reads it unprivileged
        port = free_port()
        conf.write_text(
            f"""base_dir = {root / "run"}
state_dir = {root / "state"}
log_path = {root / "dovecot.log"}
instance_name = pillarbox-sieve-{port}
listen = 127.0.0.1
protocols = sieve
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={root / "home"}/%u
}}
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {port}
  }}
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_max_script_size = 1024
  sieve_quota_max_scripts = 2
}}
"""
        )
        subprocess.run(
            ["dovecot", "-c", str(conf)],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)
            yield port
        finally:
            subprocess.run(["doveadm", "-c", str(conf), "stop"], check=False, capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _status(line: bytes) -> str:
    """OK / NO / BYE and the response code, if any: 'NO (QUOTA/MAXSCRIPTS)'."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    kind, _, rest = text.partition(" ")
    if rest.startswith("("):
        return f"{kind} {rest[: rest.index(')') + 1]}"
    return kind


def _run(client: Client) -> list[tuple[str, list[bytes], str]]:
    client.starttls()
    assert client.cmd(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"').startswith(b"OK")
    out = []
    for command, literal in SCRIPT:
        data = command.encode()
        if literal is not None:
            body = literal.encode()
            data += b" {%d+}\r\n" % len(body) + body
        client.send(data + b"\r\n")
        items, final = client.response()
        if command == "LISTSCRIPTS":
            items.sort()  # RFC 5804 2.7 sets no order
        out.append((command, items, _status(final)))
    return out


@pytest.fixture
def pillarbox(make_server: ServerFactory) -> Server:
    return make_server(max_script_size=1024, max_scripts=2)


def test_same_answers_as_dovecot(pillarbox: Server) -> None:
    with private_dovecot() as port:
        dovecot = _run(Client(port))
    ours = _run(pillarbox.connect())
    assert ours == dovecot
    # The script exercises what it is meant to (a Dovecot that refused everything alike
    # would pass the comparison).
    codes = {status for _, _, status in dovecot}
    assert {"OK", "NO", "NO (QUOTA/MAXSCRIPTS)", "NO (QUOTA/MAXSIZE)"} <= codes
    assert {"NO (NONEXISTENT)", "NO (ACTIVE)", "NO (ALREADYEXISTS)", 'OK (TAG "t")'} <= codes
