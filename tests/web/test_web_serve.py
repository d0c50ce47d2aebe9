"""`python -m webui CONFIG` serves plain HTTP on listeners.web and HTTPS on listeners.webs
(TLS 1.2+, the box's certificate, reloaded when it changes) and prints the setup code."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
from cryptography import x509

from appliance import config
from appliance.setupsecret import read_or_create_secret
from appliance.tls import generate_self_signed
from tests.harness import REPO, free_port, wait_port, write_config
from webui import serve


def test_module_serves_and_prints_setup_code(tmp_path: Path) -> None:
    port = free_port()
    cfg_path = write_config(tmp_path, listeners={"web": [f"127.0.0.1:{port}"], "webs": []})
    proc = subprocess.Popen(
        [sys.executable, "-m", "webui", "--config", str(cfg_path)],  # as appliance/devrun.py
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        secret = read_or_create_secret(config.load(cfg_path))
        assert line.strip() == f"Pillarbox setup code: {secret}"
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/setup/", timeout=2) as r:
                    body = r.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert "Welcome to your mail box" in body
    finally:
        proc.terminate()
        proc.wait(10)


def _https_get(port: int, ctx: ssl.SSLContext, path: str = "/setup/") -> http.client.HTTPResponse:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", path)
    return conn.getresponse()


def _peer_serial(port: int) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_https_listener_waits_for_the_certificate_then_reloads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "RELOAD_SECONDS", 0.2)
    monkeypatch.setattr(serve, "CERT_WAIT_SECONDS", 0.1)
    cfg_path = write_config(tmp_path)
    cfg = config.load(cfg_path)
    web, webs = cfg.listeners.web[0], cfg.listeners.webs[0]
    assert not cfg.tls.cert.exists()  # the daemon has not made it yet
    server = serve.create_server(cfg_path)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://{web}/setup/", timeout=10) as r:
            assert "Secure" not in r.headers["Set-Cookie"]  # plain http on the LAN
        cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
        generate_self_signed(cfg.tls.cert, cfg.tls.key, cfg.hostname)
        wait_port(webs.host, webs.port, timeout=20)

        trusting = ssl.create_default_context(cafile=str(cfg.tls.cert))
        trusting.check_hostname = False
        r = _https_get(webs.port, trusting)
        assert r.status == 200 and "Welcome to your mail box" in r.read().decode()
        cookie = r.getheader("Set-Cookie") or ""
        assert "Secure" in cookie and "HttpOnly" in cookie
        policy = _https_get(webs.port, trusting, "/.well-known/mta-sts.txt")
        assert policy.status == 200 and "version: STSv1" in policy.read().decode()

        old_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old_tls.check_hostname = False
        old_tls.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # what this checks
            old_tls.minimum_version = ssl.TLSVersion.TLSv1
            old_tls.maximum_version = ssl.TLSVersion.TLSv1_1
        old_tls.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client is willing: the server says no
        # asyncio's TLS layer closes a failed handshake without flushing the alert: EOF.
        # Debian 12's OpenSSL 3.0 words that EOF "TLS/SSL connection has been closed (EOF)".
        refused = r"(?i)protocol.version|unsupported.protocol|unexpected.eof|closed .EOF."
        with pytest.raises(ssl.SSLError, match=refused):
            _https_get(webs.port, old_tls)

        before = _peer_serial(webs.port)
        time.sleep(0.05)  # a new mtime
        generate_self_signed(cfg.tls.cert, cfg.tls.key, cfg.hostname)
        deadline = time.monotonic() + 10
        while _peer_serial(webs.port) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _peer_serial(webs.port) != before  # renewed without a restart
    finally:
        server.close()
        thread.join(10)
