"""ClamAV over clamd's Unix socket (INSTREAM) with a test signature for EICAR."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from appliance.filters.base import InboundMessage
from appliance.filters.clamav import ClamavFilter, ClamdClient
from tests.protocol.filters.services import EICAR


def inbound(tmp_path: Path, data: bytes, name: str = "m.eml") -> InboundMessage:
    path = tmp_path / name
    path.write_bytes(data)
    return InboundMessage(path, "a@example.org", ("b@pillarbox.test",), "198.51.100.1", "", "h")


def mail_with_attachment(payload: bytes) -> bytes:
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (
        b"From: a@example.org\r\nTo: b@pillarbox.test\r\nSubject: invoice\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="xx"\r\n\r\n'
        b"--xx\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--xx\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="inv.com"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--xx--\r\n"
    )


def test_ping(clamd_socket: Path) -> None:
    assert asyncio.run(ClamdClient(str(clamd_socket)).ping())


def test_clean_mail_passes_with_header(tmp_path: Path, clamd_socket: Path) -> None:
    f = ClamavFilter(ClamdClient(str(clamd_socket)), "mx.pillarbox.test")
    verdict = asyncio.run(f.check(inbound(tmp_path, mail_with_attachment(b"harmless bytes"))))
    assert verdict.action == "accept"
    assert dict(verdict.headers)["X-Virus-Scanned"] == "ClamAV at mx.pillarbox.test: clean"


def test_infected_attachment_rejected_554(tmp_path: Path, clamd_socket: Path) -> None:
    f = ClamavFilter(ClamdClient(str(clamd_socket)), "mx.pillarbox.test")
    verdict = asyncio.run(f.check(inbound(tmp_path, mail_with_attachment(EICAR))))
    assert (verdict.action, verdict.smtp_code, verdict.enhanced) == ("reject", 554, "5.7.0")
    assert "Pillarbox.Test.EICAR" in verdict.reason


def test_large_message_streams_in_chunks(tmp_path: Path, clamd_socket: Path) -> None:
    # 900 KiB (under the test StreamMaxLength of 1M) sent as many INSTREAM chunks.
    body = b"A" * (900 * 1024) + EICAR
    report = asyncio.run(ClamdClient(str(clamd_socket)).scan(_write(tmp_path, body)))
    assert report.infected


@pytest.mark.parametrize("client_limit", [512 * 1024, 64 * 1024 * 1024])
def test_over_stream_limit_is_accepted_unscanned(
    tmp_path: Path, clamd_socket: Path, client_limit: int
) -> None:
    """Over our own limit: not sent. Over clamd's (1M here): clamd says so, mail passes."""
    client = ClamdClient(str(clamd_socket), max_bytes=client_limit)
    f = ClamavFilter(client, "mx.pillarbox.test")
    verdict = asyncio.run(f.check(inbound(tmp_path, b"B" * (2 * 1024 * 1024))))
    assert verdict.action == "accept"
    assert dict(verdict.headers)["X-Virus-Scanned"] == "not scanned (too large)"


def test_clamd_down_tempfails_or_accepts_per_config(tmp_path: Path) -> None:
    dead = str(tmp_path / "nobody-listens.sock")
    msg = inbound(tmp_path, b"Subject: x\r\n\r\nhi\r\n")
    strict = asyncio.run(ClamavFilter(ClamdClient(dead), "mx").check(msg))
    assert (strict.action, strict.smtp_code, strict.enhanced) == ("tempfail", 451, "4.7.0")
    lenient = asyncio.run(
        ClamavFilter(ClamdClient(dead), "mx", tempfail_when_down=False).check(msg)
    )
    assert lenient.action == "accept"
    assert "scanner unavailable" in dict(lenient.headers)["X-Virus-Scanned"]


def test_tcp_address_form(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a bound but not listening port: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        client = ClamdClient(f"127.0.0.1:{port}", deadline=5)
        assert not asyncio.run(client.ping())


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "big.eml"
    path.write_bytes(data)
    return path
