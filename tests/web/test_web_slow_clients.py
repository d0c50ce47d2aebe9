"""Slow clients cost the web UI a socket, not a thread (issue 16, item 7).

200 connections trickling a request head one byte at a time (from 20 loopback addresses,
10 each, under the per-address limit) must not stop a normal GET /healthz; one address
past ``limits.max_connections_per_ip`` is closed at once; a request head that keeps
trickling is cut at the header deadline even though bytes keep coming.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import write_config
from webui import serve
from webui.httpd import HttpLimits, HttpServer, bind

SLOW_CLIENTS = 200
SOURCES = 20  # 127.0.1.1 .. 127.0.1.20, 10 connections each
PER_IP = 20


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, int]]:
    cfg_path = write_config(
        tmp_path,
        listeners={"webs": []},
        limits={"max_connections_per_ip": PER_IP, "max_connections": 1000},
    )
    server = serve.create_server(cfg_path)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield next((h, p) for scheme, h, p in server.addresses if scheme == "http")
    finally:
        server.close()
        thread.join(10)


def _slow(addr: tuple[str, int], source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(addr)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    return sock


def _trickle(socks: list[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.send(b"X")


def _healthz(host: str, port: int) -> float:
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/healthz")
    answer = conn.getresponse()
    assert answer.status == 200 and answer.read() == b"ok"
    conn.close()
    return time.monotonic() - started


def test_healthz_answers_while_200_slow_clients_trickle(web: tuple[str, int]) -> None:
    host, port = web
    socks: list[socket.socket] = []
    try:
        for i in range(SLOW_CLIENTS):
            socks.append(_slow((host, port), f"127.0.1.{i % SOURCES + 1}"))
        latencies = []
        for _ in range(5):  # about 3 s with every slow client connected and sending
            _trickle(socks)
            latencies.append(_healthz(host, port))
            time.sleep(0.5)
        print(f"slow clients={len(socks)} healthz latency max={max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 2.0  # a generous bound: it is milliseconds in practice
    finally:
        for s in socks:
            s.close()


def test_one_address_beyond_its_limit_is_closed(web: tuple[str, int]) -> None:
    host, port = web
    socks = [_slow((host, port), "127.0.2.1") for _ in range(PER_IP)]
    try:
        extra = _slow((host, port), "127.0.2.1")
        extra.settimeout(3)
        with contextlib.suppress(ConnectionResetError):
            assert extra.recv(100) == b""  # closed without an answer
        extra.close()
        # Another address is still served.
        other = _slow((host, port), "127.0.2.2")
        other.sendall(b"Host: x\r\n\r\n")
        assert other.recv(100).startswith(b"HTTP/1.1 200")
        other.close()
    finally:
        for s in socks:
            s.close()


def _tiny_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])  # type: ignore[operator]
    return [b"ok"]


def test_trickling_head_is_cut_at_the_header_deadline() -> None:
    """One byte every 0.2 s keeps an idle timer alive forever; the deadline counts from
    the first byte, so the connection gets 408 and is closed after ~1 s."""
    limits = HttpLimits(header_timeout=1.0, keepalive_timeout=1.0)
    server = HttpServer(_tiny_app, limits)
    sock = bind("127.0.0.1", 0)
    addr = sock.getsockname()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        async def main() -> None:
            srv = await server.serve_socket(sock)
            ready.set()
            async with srv:
                await asyncio.sleep(6)

        loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    client = socket.create_connection(addr, timeout=5)
    client.setblocking(False)
    started = time.monotonic()
    answer = b""
    try:
        while time.monotonic() - started < 4:
            try:
                client.send(b"X")
            except OSError:
                break
            time.sleep(0.2)
            try:
                chunk = client.recv(1000)
            except BlockingIOError:
                continue
            except OSError:
                break
            answer += chunk
            if not chunk:
                break
        elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert elapsed < 3.0
    finally:
        client.close()
        thread.join(10)
        loop.close()
        server.close()
