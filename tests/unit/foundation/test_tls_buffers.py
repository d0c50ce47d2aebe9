"""The asyncio TLS read buffer is trimmed, and TLS still carries data larger than it."""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from pathlib import Path

import pytest

from appliance.tls import (
    TLS_READ_BUFFER,
    generate_self_signed,
    server_context,
    trim_asyncio_tls_buffers,
)


def test_tls_connection_buffer_trimmed_and_big_payload_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", 256 * 1024)  # CPython's default
    trim_asyncio_tls_buffers()
    assert sslproto.SSLProtocol.max_size == TLS_READ_BUFFER
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(cert, key, "tls.test")
    sctx = server_context()
    sctx.load_cert_chain(cert, key)
    cctx = ssl.create_default_context(cafile=str(cert))
    payload = bytes(range(256)) * 1600  # 400 KiB, many times the buffer
    buffers: list[int] = []

    async def main() -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            proto = getattr(writer.transport, "_ssl_protocol", None)  # asyncio.sslproto
            buffers.append(len(getattr(proto, "_ssl_buffer", b"")))
            data = await reader.readexactly(len(payload))
            writer.write(data[::-1])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=cctx, server_hostname="tls.test"
        )
        writer.write(payload)
        await writer.drain()
        back = await reader.readexactly(len(payload))
        writer.close()
        server.close()
        await server.wait_closed()
        return back

    assert asyncio.run(asyncio.wait_for(main(), 30)) == payload[::-1]
    assert buffers and all(0 < n <= TLS_READ_BUFFER for n in buffers), buffers
