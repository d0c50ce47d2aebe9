"""Webmail (Roundcube at https://<box>/mail/) and ManageSieve on a booted image.

Used by test_image_boot.py: a Roundcube client on plain urllib (cookies, the login form's
CSRF token, the AJAX request token), a ManageSieve client on a plain socket (RFC 5804),
the dashboard's webmail switch (the web UI saves pillarbox.toml and asks the root helper's
webmail.apply to start or stop the unit), and
the memory of php-fpm and the web front, read with ps over SSH.
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

WEBMAIL_UNIT = "pillarbox-webmail.service"
FPM_SOCKET = "/run/pillarbox-webmail/fpm.sock"
WEBMAIL_DATA = "/var/lib/pillarbox/webmail"
DEBIAN_DES_KEY_PLACEHOLDER = "rcmail-!24ByteDESkey*Str"
LOGIN_TOKEN_RE = re.compile(r'<input type="hidden" name="_token" value="([^"]+)"')
REQUEST_TOKEN_RE = re.compile(r'"request_token":"([^"]+)"')


class Guest(Protocol):
    ports: dict[str, int]

    def ssh(self, command: str, timeout: float = ...) -> subprocess.CompletedProcess[str]: ...

    def ssh_ok(self, command: str) -> str: ...


def tls_client() -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # the box's first-boot certificate is self-signed
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------- the switch and the unit


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def webmail_setting(guest: Guest) -> bool | None:
    out = guest.ssh_ok(
        '/opt/pillarbox/bin/python -c "import tomllib; print(tomllib.load(open('
        "'/etc/pillarbox/pillarbox.toml', 'rb')).get('webmail', {}).get('enabled'))\""
    )
    return {"True": True, "False": False}.get(out.strip())


def switch_webmail(guest: Guest, admin: str, password: str, on: bool) -> None:
    """The dashboard's switch, as an admin's browser posts it over HTTPS: the web UI saves
    [webmail] enabled and asks the root helper (webmail.apply) to make the unit follow."""
    dash = Browser.open(guest.ports["https"], "/")
    _, _, page = dash.fetch("login")
    found = CSRF_RE.search(page)
    assert found, f"no login form on the dashboard: {page[:1500]}"
    form = {"email": admin, "password": password, "csrf_token": found.group(1)}
    status, url, _ = dash.fetch("login", form)
    assert status == 200 and "/login" not in url, f"dashboard login: {status} {url}"
    _, _, page = dash.fetch("")
    found = CSRF_RE.search(page)
    assert found and 'id="webmail-enabled"' in page, f"no webmail switch: {page[:1500]}"
    form = {"csrf_token": found.group(1), **({"enabled": "on"} if on else {})}
    status, url, page = dash.fetch("webmail/setting", form)
    assert status == 200 and url.split("#")[0].endswith("/"), f"webmail setting: {status} {url}"
    assert f"Webmail is {'on' if on else 'off'}." in page, page[:3000]
    # No 'could not turn webmail on/off' (the helper refused or was not reachable).
    assert "turn webmail" not in page, page[:3000]
    assert webmail_setting(guest) is on


def wait_fpm_socket(guest: Guest, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while guest.ssh(f"test -S {FPM_SOCKET}").returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no {FPM_SOCKET} after {timeout:.0f} s:\n{webmail_diagnostics(guest)}"
            )
        time.sleep(3)


def webmail_diagnostics(guest: Guest) -> str:
    out = guest.ssh(
        f"journalctl -b -o cat -u {WEBMAIL_UNIT} -u pillarbox-web.service | tail -n 60; "
        f"tail -n 40 {WEBMAIL_DATA}/logs/* 2>/dev/null"
    )
    return out.stdout[-6000:]


# ---------------------------------------------------------------- memory


def rss_kb(guest: Guest) -> dict[str, int]:
    """Resident memory of php-fpm (master and children) and of the web front, in kB."""
    fpm = [int(x) for x in guest.ssh_ok("ps -C php-fpm8.2 -o rss= || true").split()]
    web = guest.ssh_ok("ps -o rss= -p $(systemctl show -p MainPID --value pillarbox-web)")
    return {"fpm": sum(fpm), "fpm_processes": len(fpm), "web": int(web.strip() or 0)}


# ---------------------------------------------------------------- Roundcube over HTTPS


@dataclass
class Browser:
    """One browser-like HTTPS session (its own cookie jar) below a base path."""

    base: str
    opener: urllib.request.OpenerDirector
    request_token: str = ""

    @classmethod
    def open(cls, port: int, path: str = "/mail/") -> Browser:
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls_client()),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        )
        return cls(f"https://127.0.0.1:{port}{path}", opener)

    def fetch(
        self, query: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """(status, final URL after redirects, body)."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + query, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=120) as resp:
                return resp.status, resp.geturl(), resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.geturl(), exc.read().decode("utf-8", "replace")

    def login_page(self, timeout: float = 180.0) -> str:
        """Roundcube's login form; php-fpm starts its first child on this request."""
        deadline = time.monotonic() + timeout
        while True:
            status, _, page = self.fetch("")
            if status == 200 and LOGIN_TOKEN_RE.search(page):
                return page
            if time.monotonic() > deadline:
                raise AssertionError(f"no Roundcube login form at /mail/: {status} {page[:1500]}")
            time.sleep(5)

    def login(self, user: str, password: str) -> str:
        """POST the login form with its CSRF token; returns the mailbox view's HTML."""
        found = LOGIN_TOKEN_RE.search(self.login_page())
        assert found
        form = {
            "_token": found.group(1),
            "_task": "login",
            "_action": "login",
            "_timezone": "UTC",
            "_url": "",
            "_user": user,
            "_pass": password,
        }
        status, url, page = self.fetch("?_task=login", form)
        assert status == 200, f"login answered {status}: {page[:1500]}"
        # Roundcube redirects a good login to the mail task (urllib followed it).
        assert "_task=mail" in url, f"login of {user} did not reach the mailbox: {url}"
        token = REQUEST_TOKEN_RE.search(page)
        assert token, f"no request token in the mailbox view: {page[:1500]}"
        self.request_token = token.group(1)
        return page

    def list_inbox(self) -> tuple[dict[str, Any], str]:
        """Roundcube's own AJAX list action for INBOX: (its JSON, the raw text)."""
        status, _, body = self.fetch(
            "?_task=mail&_action=list&_mbox=INBOX&_page=1&_remote=1",
            headers={"X-Roundcube-Request": self.request_token},
        )
        assert status == 200, f"list answered {status}: {body[:1500]}"
        answer: dict[str, Any] = json.loads(body)
        return answer, body


# ---------------------------------------------------------------- ManageSieve (RFC 5804)


def _response(reader: BinaryIO) -> list[str]:
    """Lines up to and including the final OK/NO/BYE; literals {n} read in one piece."""
    lines: list[str] = []
    while True:
        line = reader.readline(65536)
        if not line:
            raise AssertionError(f"ManageSieve closed the connection after {lines}")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        literal = re.search(r"\{(\d+)\+?\}$", text)
        if literal:
            text += reader.read(int(literal.group(1))).decode("utf-8", "replace")
        lines.append(text)
        if re.match(r"(OK|NO|BYE)\b", text):
            return lines


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def managesieve_session(port: int, user: str, password: str, script: str) -> dict[str, Any]:
    """Greeting, STARTTLS, AUTHENTICATE PLAIN, PUTSCRIPT, SETACTIVE, LISTSCRIPTS, LOGOUT."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        reader = raw.makefile("rb")
        greeting = _response(reader)
        assert greeting[-1].startswith("OK"), greeting
        raw.sendall(b"STARTTLS\r\n")
        started = _response(reader)
        assert started[-1].startswith("OK"), started
        with tls_client().wrap_socket(raw) as tls:
            reader = tls.makefile("rb")
            # RFC 5804 2.2: the server sends its capabilities again after the handshake.
            caps = _response(reader)
            assert caps[-1].startswith("OK"), caps
            plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            tls.sendall(f'AUTHENTICATE "PLAIN" "{plain}"\r\n'.encode())
            auth = _response(reader)
            assert auth[-1].startswith("OK"), auth
            body = script.encode()
            tls.sendall(b'PUTSCRIPT "boot-test" {%d+}\r\n' % len(body) + body + b"\r\n")
            put = _response(reader)
            assert put[-1].startswith("OK"), put
            tls.sendall(f"SETACTIVE {_quoted('boot-test')}\r\n".encode())
            active = _response(reader)
            assert active[-1].startswith("OK"), active
            tls.sendall(b"LISTSCRIPTS\r\n")
            listed = _response(reader)
            assert listed[-1].startswith("OK"), listed
            tls.sendall(b"LOGOUT\r\n")
            _response(reader)
    return {
        "greeting": greeting,
        "tls_capabilities": caps,
        "scripts": listed[:-1],
    }


# ---------------------------------------------------------------- the checks


def check_no_shipped_secret(guest: Guest) -> None:
    """The image's Roundcube files hold no des_key but Debian's placeholder, and no
    Roundcube database came with it."""
    keys = guest.ssh_ok(
        "grep -rhoE \"^\\\\\\$config\\['des_key'\\] *= *'[^']*'\" "
        "/etc/roundcube /usr/share/roundcube/config /var/lib/roundcube/config/ || true"
    ).split("\n")
    values = {line.split("'")[3] for line in keys if line.strip()}
    assert values <= {DEBIAN_DES_KEY_PLACEHOLDER}, f"a des_key ships in the image: {values}"
    dbs = guest.ssh_ok(
        "find /var/lib/roundcube /var/lib/dbconfig-common /etc/roundcube "
        "\\( -name '*.sqlite*' -o -name '*.db' \\) 2>/dev/null || true"
    )
    assert not dbs.strip(), f"a Roundcube database ships in the image: {dbs}"
    assert guest.ssh("systemctl is-enabled php8.2-fpm.service").stdout.strip() == "disabled"


def per_box_key(guest: Guest) -> str:
    """The des_key pillarbox-webmail.service made on its first start (checked, returned)."""
    owner = guest.ssh_ok(f"stat -c %U:%a {WEBMAIL_DATA}/des_key").strip()
    assert owner == "pillarbox-webmail:600", owner
    key = guest.ssh_ok(f"cat {WEBMAIL_DATA}/des_key").strip()
    assert len(key) >= 24 and key != DEBIAN_DES_KEY_PLACEHOLDER, "no per-box des_key"
    return key


def check_unit_and_socket(guest: Guest) -> None:
    assert guest.ssh_ok(f"systemctl is-active {WEBMAIL_UNIT}").strip() == "active"
    show = guest.ssh_ok(
        f"systemctl show -p User -p NoNewPrivileges -p CapabilityBoundingSet {WEBMAIL_UNIT}"
    )
    assert "User=pillarbox-webmail" in show and "NoNewPrivileges=yes" in show, show
    assert "CapabilityBoundingSet=\n" in show + "\n", show
    perms = guest.ssh_ok(f"stat -c %U:%G:%a /run/pillarbox-webmail {FPM_SOCKET}").split()
    owner = "pillarbox-webmail:pillarbox-webmail"
    assert perms == [f"{owner}:750", f"{owner}:660"], perms
    users = guest.ssh_ok("ps -C php-fpm8.2 -o user= | sort -u").split()
    assert users == ["pillarbox-webmail"], users


def read_message(guest: Guest, user: str, password: str, token: str) -> Browser:
    """Log in at https://<box>/mail/ and find the message with `token` in INBOX."""
    session = Browser.open(guest.ports["https"])
    try:
        session.login(user, password)
        deadline = time.monotonic() + 120
        while token not in (listed := session.list_inbox())[1]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{token} not in {user}'s webmail INBOX: {listed[1][:2000]}")
            time.sleep(5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- box logs:\n{webmail_diagnostics(guest)}") from None
    assert "add_message_row" in listed[1], listed[0].get("action")
    return session


def check_webmail(
    guest: Guest, users: list[str], password: str, token: str, timings: dict[str, float]
) -> str:
    """Switch webmail on, read mail as users[0], then as all users at once; measure memory;
    switch off and on again. Returns the per-box key."""
    check_no_shipped_secret(guest)
    switch_webmail(guest, users[0], password, on=True)
    wait_fpm_socket(guest)
    check_unit_and_socket(guest)
    key = per_box_key(guest)
    time.sleep(5)  # the master alone, as it sits between requests
    idle = rss_kb(guest)
    started = time.monotonic()
    read_message(guest, users[0], password, token)
    timings["webmail_first_login_and_list_s"] = round(time.monotonic() - started, 1)
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda u: read_message(guest, u, password, token), users))
    busy = rss_kb(guest)
    timings.update(
        webmail_rss_idle_kb=idle["fpm"],
        webmail_fpm_processes_idle=idle["fpm_processes"],
        webmail_rss_busy_kb=busy["fpm"],
        webmail_fpm_processes_busy=busy["fpm_processes"],
        webmail_users_busy=len(users),
        web_front_rss_idle_kb=idle["web"],
        web_front_rss_busy_kb=busy["web"],
    )
    # The dashboard's switch: off stops the unit and /mail/ has no Roundcube behind it.
    switch_webmail(guest, users[0], password, on=False)
    assert guest.ssh(f"systemctl is-active {WEBMAIL_UNIT}").stdout.strip() == "inactive"
    status, _, page = Browser.open(guest.ports["https"]).fetch("")
    assert not LOGIN_TOKEN_RE.search(page), f"/mail/ still serves Roundcube ({status})"
    # A restart with the switch off is skipped by the unit's ExecCondition, not failed.
    guest.ssh_ok(f"systemctl restart {WEBMAIL_UNIT}")
    assert guest.ssh(f"systemctl is-active {WEBMAIL_UNIT}").stdout.strip() == "inactive"
    assert guest.ssh(f"systemctl is-failed {WEBMAIL_UNIT}").returncode != 0
    switch_webmail(guest, users[0], password, on=True)
    wait_fpm_socket(guest)
    read_message(guest, users[0], password, token)
    assert per_box_key(guest) == key, "the per-box key changed on a restart"
    return key
