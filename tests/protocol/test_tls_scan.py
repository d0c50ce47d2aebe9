"""sslscan (Debian) against every TLS port of the real daemon and the web UI: only TLS 1.2
and 1.3 are accepted, and only AEAD cipher suites (ECDHE with AES-GCM or
ChaCha20-Poly1305 on TLS 1.2; TLS 1.3 suites are AEAD by definition). RFC 9325 4.1, 4.2."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, wait_port, write_config
from webui import serve

pytestmark = pytest.mark.skipif(shutil.which("sslscan") is None, reason="sslscan not installed")

ACCEPTED = re.compile(r"^(?:Preferred|Accepted)\s+(\S+)\s+\d+\s+bits\s+(\S+)", re.M)
PROTOCOL = re.compile(r"^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)", re.M)
AEAD = re.compile(r"(GCM|CHACHA20|POLY1305)")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    path = write_config(tmp_path_factory.mktemp("tls-scan"))
    with Daemon(path, wait_for=("submissions", "imaps", "pop3s", "smtp", "imap", "pop3")) as d:
        web = serve.create_server(path)  # HTTPS binds once the daemon's certificate exists
        thread = threading.Thread(target=web.run, daemon=True)
        thread.start()
        try:
            wait_port(*d.addr("webs"), timeout=30)
            yield d
        finally:
            web.close()
            thread.join(10)


PORTS = [
    ("submissions", []),
    ("submission", ["--starttls-smtp"]),
    ("smtp", ["--starttls-smtp"]),
    ("imaps", []),
    ("imap", ["--starttls-imap"]),
    ("pop3s", []),
    ("pop3", ["--starttls-pop3"]),
    ("webs", []),
]


@pytest.mark.parametrize(("listener", "flags"), PORTS, ids=[p[0] for p in PORTS])
def test_only_tls12_13_and_aead(box: Daemon, listener: str, flags: list[str]) -> None:
    host, port = box.addr(listener)
    out = subprocess.run(
        ["sslscan", "--no-colour", "--no-heartbleed", "--no-fallback", *flags, f"{host}:{port}"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    ).stdout
    protocols = dict(PROTOCOL.findall(out))
    assert protocols.get("TLSv1.2") == "enabled" and protocols.get("TLSv1.3") == "enabled", out
    for old in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        assert protocols.get(old, "disabled") == "disabled", out
    suites = ACCEPTED.findall(out)
    assert suites, out
    for version, suite in suites:
        assert version in ("TLSv1.2", "TLSv1.3"), out
        assert AEAD.search(suite), f"{listener}: {version} {suite} is not AEAD\n{out}"
        if version == "TLSv1.2":
            assert suite.startswith("ECDHE-"), f"{listener}: {suite} has no ECDHE\n{out}"


def test_scan_output_is_what_the_parser_reads(tmp_path: Path) -> None:
    """The parser's view of sslscan 2 output, so a format change fails loudly here."""
    sample = (
        "  SSL/TLS Protocols:\nSSLv2     disabled\nSSLv3     disabled\nTLSv1.0   enabled\n"
        "TLSv1.1   disabled\nTLSv1.2   enabled\nTLSv1.3   enabled\n"
        "Preferred TLSv1.3  256 bits  TLS_AES_256_GCM_SHA384        Curve 25519 DHE 253\n"
        "Accepted  TLSv1.2  256 bits  ECDHE-RSA-AES256-SHA384       Curve 25519 DHE 253\n"
    )
    assert dict(PROTOCOL.findall(sample))["TLSv1.0"] == "enabled"
    suites = ACCEPTED.findall(sample)
    assert suites == [("TLSv1.3", "TLS_AES_256_GCM_SHA384"), ("TLSv1.2", "ECDHE-RSA-AES256-SHA384")]
    assert not AEAD.search(suites[1][1])
