"""Webmail behind the web front (issue 21): the FastCGI client against a real php-fpm
(a private instance in a tmp dir, running our own PHP scripts), and the /mail/ gateway on
the real web front with Roundcube's real php-fpm pool: static files, path traversal, the
Roundcube login page, the login throttle per browser address, php-fpm down."""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import config
from appliance.webmail import fpm_binary
from tests.harness import write_config
from tests.web.webmail_helpers import needs_fpm, wait_socket, web_front, webmail_fpm
from webui import fastcgi

pytestmark = needs_fpm

SCRIPTS = {
    "echo.php": """<?php
header('Status: 201 Created');
header('X-Test: one');
header('X-Test: two', false);
$body = file_get_contents('php://input');
echo $_SERVER['REQUEST_METHOD'], ' ', strlen($body), ' ', md5($body), ' ',
     $_SERVER['HTTP_X_CUSTOM'] ?? '-', ' ', $_POST['field'] ?? '-';
""",
    "big.php": """<?php
for ($i = 0; $i < 64; $i++) { echo str_repeat(chr(65 + $i % 26), 65536); }
""",
    "error.php": """<?php
error_log('pillarbox-test-stderr');
no_such_function();
""",
    "redirect.php": """<?php
header('Location: /elsewhere');
""",
}


@pytest.fixture(scope="module")
def php(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private php-fpm serving SCRIPTS; yields its socket."""
    root = tmp_path_factory.mktemp("fpm")
    docs = root / "docs"
    docs.mkdir()
    for name, text in SCRIPTS.items():
        (docs / name).write_text(text)
    sock = root / "fpm.sock"
    conf = root / "php-fpm.conf"
    conf.write_text(
        f"""[global]
pid = {root}/fpm.pid
error_log = {root}/fpm.log
daemonize = no
[test]
listen = {sock}
listen.mode = 0660
pm = ondemand
pm.max_children = 2
catch_workers_output = yes
php_admin_flag[display_errors] = off
php_admin_value[post_max_size] = 8M
"""
    )
    binary = fpm_binary()
    assert binary is not None
    root_flag = ["-R"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([str(binary), "-F", "-y", str(conf), *root_flag])
    try:
        wait_socket(sock, proc)
        yield sock
    finally:
        proc.terminate()
        proc.wait(20)


def run(
    sock: Path, script: str, body: bytes = b"", **extra: str
) -> tuple[int, dict[str, list[str]], bytes]:
    docs = sock.parent / "docs"
    params = {
        "SCRIPT_FILENAME": str(docs / script),
        "SCRIPT_NAME": f"/{script}",
        "REQUEST_METHOD": "POST" if body else "GET",
        "CONTENT_LENGTH": str(len(body)),
        "QUERY_STRING": "",
        **extra,
    }
    answer = fastcgi.call(sock, params, io.BytesIO(body), len(body), 20.0)
    try:
        data = b"".join(answer.body)
    finally:
        answer.close()
    headers: dict[str, list[str]] = {}
    for k, v in answer.headers:
        headers.setdefault(k.lower(), []).append(v)
    return answer.status, headers, data


def test_fastcgi_status_headers_and_a_large_post_body(php: Path) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)  # several FCGI_STDIN records
    status, headers, data = run(php, "echo.php", body, HTTP_X_CUSTOM="hello")
    assert status == 201
    assert headers["x-test"] == ["one", "two"]
    assert "status" not in headers
    digest = hashlib.md5(body).hexdigest()
    assert data.decode() == f"POST {len(body)} {digest} hello -"


def test_fastcgi_form_fields_reach_php(php: Path) -> None:
    form = urllib.parse.urlencode({"field": "x y&z"}).encode()
    status, _, data = run(php, "echo.php", form, CONTENT_TYPE="application/x-www-form-urlencoded")
    assert status == 201
    assert data.decode().endswith(" - x y&z")


def test_fastcgi_large_response_arrives_whole(php: Path) -> None:
    status, _, data = run(php, "big.php")
    assert status == 200
    assert len(data) == 64 * 65536
    assert data[:65536] == b"A" * 65536 and data[-65536:] == bytes([65 + 63 % 26]) * 65536


def test_fastcgi_php_error_is_a_500_and_its_stderr_is_logged(
    php: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="webui.fastcgi"):
        status, _, data = run(php, "error.php")
    assert status == 500
    assert b"no_such_function" not in data  # display_errors off: nothing leaks
    assert "pillarbox-test-stderr" in caplog.text


def test_fastcgi_location_without_status_is_a_302(php: Path) -> None:
    status, headers, _ = run(php, "redirect.php")
    assert status == 302
    assert headers["location"] == ["/elsewhere"]


def test_fastcgi_nothing_listening(tmp_path: Path) -> None:
    with pytest.raises(fastcgi.FastCgiError) as err:
        fastcgi.call(tmp_path / "none.sock", {}, io.BytesIO(), 0, 2.0)
    assert err.value.unavailable


@pytest.mark.parametrize(
    ("params", "encoded"),
    [
        ({"A": "b"}, b"\x01\x01Ab"),
        ({"N": "v" * 200}, b"\x01\x80\x00\x00\xc8N" + b"v" * 200),
    ],
)
def test_fastcgi_name_value_lengths(params: dict[str, str], encoded: bytes) -> None:
    assert fastcgi.encode_params(params) == encoded


# ------------------------------------------------------------------ the gateway


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, config.Config]]:
    """Roundcube's php-fpm and the real web front; no mail daemon (logins fail)."""
    root = tmp_path_factory.mktemp("box")
    cfg_path = write_config(root, listeners={"webs": []}, webmail={"enabled": True})
    cfg = config.load(cfg_path)
    with webmail_fpm(cfg_path), web_front(cfg_path) as front:
        scheme, host, port = front.addresses[0]
        yield f"{scheme}://{host}:{port}", cfg


def get(
    base: str, path: str, method: str = "GET", body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k.replace("_", "-"), v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def test_roundcube_login_page_through_the_gateway(box: tuple[str, config.Config]) -> None:
    base, cfg = box
    status, headers, body = get(base, "/mail/")
    assert status == 200
    assert b"<title>Pillarbox webmail" in body
    assert 'name="_user"' in body.decode()
    assert "path=/mail/" in headers["set-cookie"]  # Roundcube's session stays under /mail/
    assert headers["content-security-policy"] == "frame-ancestors 'self'"
    assert headers["x-content-type-options"] == "nosniff"
    assert get(base, "/mail")[0] == 301
    key = (cfg.webmail.data / "des_key").read_text().strip()
    assert len(key) == 24
    assert key not in Path("/etc/roundcube/config.inc.php").read_text()
    assert oct((cfg.webmail.data / "des_key").stat().st_mode & 0o777) == "0o600"


def test_static_files_types_and_caching(box: tuple[str, config.Config]) -> None:
    base, _ = box
    status, headers, body = get(base, "/mail/program/js/app.min.js?s=1")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["cache-control"] == "public, max-age=31536000"
    assert len(body) == int(headers["content-length"]) > 100_000
    again = get(base, "/mail/program/js/app.min.js?s=1", If_None_Match=headers["etag"])
    assert again[0] == 304 and again[2] == b""
    status, headers, _ = get(base, "/mail/skins/elastic/deps/bootstrap.min.css")
    assert (status, headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert headers["cache-control"] == "public, max-age=86400"
    # jQuery is a symlink into /usr/share/javascript (Debian's libjs-jquery): allowed
    status, headers, _ = get(base, "/mail/program/js/jquery.min.js")
    assert status == 200
    # the page Roundcube puts in an empty frame
    status, headers, _ = get(base, "/mail/skins/elastic/watermark.html")
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert get(base, "/mail/program/js/app.min.js", "POST", b"x")[0] == 405


@pytest.mark.parametrize(
    "path",
    [
        "/mail/../",
        "/mail/../../etc/passwd",
        "/mail/%2e%2e/config/config.inc.php",
        "/mail/config/config.inc.php",
        "/mail/.htaccess",
        "/mail/program/include/iniset.php",
        "/mail/plugins/managesieve/config.inc.php",
        "/mail/plugins/managesieve/managesieve.php",
        "/mail/skins/elastic/templates/login.html",
        "/mail/plugins/managesieve/skins/elastic/templates/vacation.html",
        "/mail/x.php",
        "/mail/index.php/../program/include/iniset.php",
        "/mail/program//js/app.min.js",
        "/mail/program/./js/app.min.js",
        "/mail/skins/elastic/deps/less.min.js",  # a dangling symlink in Debian's package
    ],
)
def test_no_source_or_config_is_served(box: tuple[str, config.Config], path: str) -> None:
    base, _cfg = box
    status, _, body = get(base, path)
    assert status == 404
    assert b"<?php" not in body and b"des_key" not in body


def test_login_throttle_per_browser_address(box: tuple[str, config.Config]) -> None:
    """No daemon answers IMAP, so every login fails; after the free failures (3 for one
    account from one address) the gateway answers 429 without asking Roundcube."""
    base, _ = box
    form = urllib.parse.urlencode(
        {"_task": "login", "_action": "login", "_user": "eve@pillarbox.test", "_pass": "x"}
    ).encode()
    ctype = "application/x-www-form-urlencoded"
    for _ in range(3):
        status, headers, _ = get(base, "/mail/?_task=login", "POST", form, Content_Type=ctype)
        assert status != 429
        assert "roundcube_" in headers.get("set-cookie", "")  # Roundcube answered
    status, headers, _body = get(base, "/mail/?_task=login", "POST", form, Content_Type=ctype)
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    assert "set-cookie" not in headers  # refused before PHP
    # the same login as multipart and with the action in the query only: still refused
    multipart = (
        b'--XX\r\nContent-Disposition: form-data; name="_action"\r\n\r\nlogin\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="_user"\r\n\r\neve@pillarbox.test\r\n'
        b"--XX--\r\n"
    )
    mtype = "multipart/form-data; boundary=XX"
    assert get(base, "/mail/", "POST", multipart, Content_Type=mtype)[0] == 429
    query = urllib.parse.urlencode({"_user": "eve@pillarbox.test", "_pass": "x"}).encode()
    assert get(base, "/mail/?_action=log%20in", "POST", query, Content_Type=ctype)[0] == 429
    # another account from this address still has its own budget
    other = form.replace(b"eve%40", b"zed%40")
    assert get(base, "/mail/?_task=login", "POST", other, Content_Type=ctype)[0] != 429


def test_upload_bound(box: tuple[str, config.Config]) -> None:
    base, cfg = box
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    conn.putrequest("POST", "/mail/?_task=mail&_action=upload")
    too_big = (cfg.webmail.max_upload_mib + 2) * 1024 * 1024
    conn.putheader("Content-Length", str(too_big))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    # 3 MiB: past the web UI's 1 MiB body bound, within webmail's: it reaches Roundcube
    body = b"x" * (3 * 1024 * 1024)
    ctype = "application/octet-stream"
    status, headers, _ = get(base, "/mail/?_task=mail", "POST", body, Content_Type=ctype)
    assert status != 413 and "roundcube_" in headers.get("set-cookie", "")
    assert get(base, "/login", "POST", body, Content_Type=ctype)[0] == 413


def test_php_fpm_down_is_a_502_page(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, listeners={"webs": []}, webmail={"enabled": True})
    with web_front(cfg_path) as front:
        _, host, port = front.addresses[0]
        status, headers, body = get(f"http://{host}:{port}", "/mail/")
    assert status == 502
    assert b"Webmail is unavailable" in body
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_webmail_off_says_so(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, listeners={"webs": []}, webmail={"enabled": False})
    with web_front(cfg_path) as front:
        _, host, port = front.addresses[0]
        status, _, body = get(f"http://{host}:{port}", "/mail/")
    assert status == 404
    assert re.search(rb"Webmail is off", body)


def test_autoconfig_below_mail_stays_with_the_web_ui(box: tuple[str, config.Config]) -> None:
    """Thunderbird looks up /mail/config-v1.1.xml: webmail must not take it over."""
    base, _ = box
    status, headers, body = get(base, "/mail/config-v1.1.xml?emailaddress=a@pillarbox.test")
    assert status == 200
    assert headers["content-type"].startswith("application/xml")
    assert b"<clientConfig" in body
