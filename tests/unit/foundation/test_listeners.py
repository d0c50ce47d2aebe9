"""The one listener set (appliance.listeners) and the reload path (appliance.runtime):
real loopback sockets, a real certificate swap."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.listeners import ConnectionLimits, Endpoint, ListenerSet, stream_protocol
from appliance.runtime import Supervisor
from appliance.tls import TlsManager, generate_self_signed
from tests.harness import connect, free_port, write_config


def peer_cert(port: int) -> bytes:
    """The DER certificate the TLS listener on ``port`` presents now."""
    with connect(("127.0.0.1", port), tls=True, timeout=10) as tls:
        assert isinstance(tls, ssl.SSLSocket)
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


def tls_manager(tmp_path: Path) -> TlsManager:
    return TlsManager(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.pillarbox.test", True)


def test_certificate_reload_rebinds_implicit_tls_and_keeps_the_rest(tmp_path: Path) -> None:
    tls = tls_manager(tmp_path)
    plain = Endpoint("imap", "127.0.0.1", free_port())
    implicit = Endpoint("imaps", "127.0.0.1", free_port(), implicit_tls=True)

    async def main() -> None:
        listeners = ListenerSet("test", tls, lambda e: stream_protocol(echo))
        await listeners.open([plain, implicit])
        try:
            before = await asyncio.to_thread(peer_cert, implicit.port)
            # a connection open across the reload keeps working
            reader, writer = await asyncio.open_connection("127.0.0.1", plain.port)
            plain_server = listeners._servers[plain][1]
            # an unchanged certificate: nothing to load, nothing rebound
            assert tls.load() is None
            await listeners.update([plain, implicit])
            assert await asyncio.to_thread(peer_cert, implicit.port) == before
            # a new certificate: loaded aside, installed on the loop, 993-style rebound
            generate_self_signed(tls.cert, tls.key, "mail.pillarbox.test")
            loaded = await asyncio.to_thread(tls.load)
            assert loaded is not None
            assert await asyncio.to_thread(peer_cert, implicit.port) == before  # not live yet
            tls.install(loaded)
            await listeners.update([plain, implicit])
            after = await asyncio.to_thread(peer_cert, implicit.port)
            assert after != before
            assert listeners._servers[plain][1] is plain_server  # the plain socket stays
            assert listeners.addresses() == {
                "imap": [f"127.0.0.1:{plain.port}"],
                "imaps": [f"127.0.0.1:{implicit.port}"],
            }
            writer.write(b"still here\r\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"still here\r\n"
            writer.close()
            # a removed endpoint stops accepting
            await listeners.update([implicit])
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", plain.port)
        finally:
            listeners.close()
            await listeners.wait_closed()

    asyncio.run(main())


def test_open_fails_whole_when_a_port_is_taken(tmp_path: Path) -> None:
    tls = tls_manager(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    first = Endpoint("pop3", "127.0.0.1", free_port())
    second = Endpoint("pop3s", "127.0.0.1", taken.getsockname()[1], implicit_tls=True)

    async def main() -> None:
        listeners = ListenerSet("test", tls, lambda e: stream_protocol(echo))
        with pytest.raises(OSError):
            await listeners.open([first, second])
        await listeners.wait_closed()
        with pytest.raises(OSError):  # the first one was closed again
            await asyncio.open_connection("127.0.0.1", first.port)

    try:
        asyncio.run(main())
    finally:
        taken.close()


def test_connection_limits_per_ip_global_and_draining(tmp_path: Path) -> None:
    cfg = config.load(
        write_config(tmp_path, limits={"max_connections": 3, "max_connections_per_ip": 2})
    )
    limits = ConnectionLimits(lambda: cfg.limits)
    assert limits.admit("192.0.2.1") is None
    assert limits.admit("192.0.2.1") is None
    assert limits.admit("192.0.2.1") == "per_ip"
    assert limits.admit("192.0.2.2") is None
    assert limits.admit("192.0.2.3") == "global"
    limits.release("192.0.2.1")
    assert limits.admit("192.0.2.3") is None
    assert limits.total == 3 and dict(limits.per_ip) == {
        "192.0.2.1": 1,
        "192.0.2.2": 1,
        "192.0.2.3": 1,
    }
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        limits.release(ip)
    assert limits.total == 0 and not limits.per_ip
    limits.draining = True
    assert limits.admit("192.0.2.9") == "draining"
    assert limits.stats == {"connections_total": 4, "refused_per_ip": 1, "refused_global": 1}


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.reloads: list[tuple[int, config.Config]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def reload(self, new: config.Config) -> None:
        self.reloads.append((threading.get_ident(), new))

    def status(self) -> dict[str, Any]:
        return {}


def test_reload_hands_the_new_config_to_services_on_the_loop(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    cfg = config.load(path)
    tls = TlsManager(cfg.tls.cert, cfg.tls.key, cfg.hostname, True)
    supervisor = Supervisor(cfg, tls)
    service = Recorder()
    supervisor.services = [service]
    good = path.read_text()

    async def main() -> None:
        loop_thread = threading.get_ident()
        context = tls.context
        path.write_text(good.replace("mail.pillarbox.test", "mx.example.org"))
        assert await supervisor.reload() is None
        [(thread, new)] = service.reloads
        assert thread == loop_thread and new is supervisor.config
        assert new.hostname == "mx.example.org"
        assert tls.context is context  # same certificate files: the live context stays
        # an invalid file: nothing is handed out, the old config stays
        path.write_text(good + "\n[limits]\nmax_message_size = 1\n")
        assert "max_message_size" in (await supervisor.reload() or "")
        assert len(service.reloads) == 1 and supervisor.config is new
        # a broken certificate: refused as a whole, the old config and context stay
        path.write_text(good)
        tls.cert.write_text("not a certificate")
        error = await supervisor.reload()
        assert error is not None and error.startswith("certificate:")
        assert len(service.reloads) == 1 and supervisor.config is new
        assert tls.context is context
        # a good new certificate: a new context, swapped on the loop
        generate_self_signed(tls.cert, tls.key, cfg.hostname)
        assert await supervisor.reload() is None
        assert tls.context is not context and len(service.reloads) == 2

    asyncio.run(main())
