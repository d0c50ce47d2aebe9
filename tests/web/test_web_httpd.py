"""webui.httpd on real loopback sockets: framing, limits and streaming."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from webui.httpd import BUFFERED_ANSWER, HttpLimits, HttpServer, bind


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/big":
        block = b"x" * 65536
        count = (BUFFERED_ANSWER * 4) // len(block)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (block for _ in range(count))
    if path == "/boom":
        raise RuntimeError("boom")
    body = environ["wsgi.input"].read()
    text = f"{environ['REQUEST_METHOD']} {path} {environ['QUERY_STRING']} {len(body)} "
    text += environ.get("HTTP_X_SEEN", "-")
    data = text.encode() + b"\n" + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    limits = HttpLimits(max_body_bytes=4096, max_header_bytes=2048, max_per_ip=4)
    with serving(HttpServer(echo_app, limits)) as addr:
        yield addr


@contextlib.contextmanager
def serving(httpd: HttpServer) -> Iterator[tuple[str, int]]:
    sock = bind("127.0.0.1", 0)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        srv = await httpd.serve_socket(sock)
        ready.set()
        async with srv:
            await box["stop"].wait()

    # asyncio.run cancels the connection tasks still open when the test ends.
    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield sock.getsockname()[:2]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        httpd.close()


def raw(addr: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_keep_alive_serves_several_requests(server: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*server, timeout=10)
    for i in range(3):
        conn.request("GET", f"/a%20b?i={i}")
        r = conn.getresponse()
        assert r.status == 200 and r.read().startswith(f"GET /a b i={i} 0".encode())


def test_post_body_content_length_and_chunked(server: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*server, timeout=10)
    conn.request("POST", "/p", body=b"a=1&b=2", headers={"Content-Type": "x"})
    assert conn.getresponse().read().endswith(b"POST /p  7 -\na=1&b=2")
    conn.request("POST", "/p", body=iter([b"abc", b"def"]), encode_chunked=True)
    assert conn.getresponse().read().endswith(b" 6 -\nabcdef")


def test_body_and_header_limits(server: tuple[str, int]) -> None:
    head = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
    assert raw(server, head + b"x" * 5000).startswith(b"HTTP/1.1 413")
    chunked = b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(b"400\r\n" + b"y" * 1024 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    assert raw(server, chunked + chunks).startswith(b"HTTP/1.1 413")
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * 4000 + b"\r\n\r\n"
    assert raw(server, big).startswith(b"HTTP/1.1 431")
    assert raw(server, b"BLAH\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_underscore_headers_are_dropped(server: tuple[str, int]) -> None:
    out = raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nX_Seen: 1\r\nConnection: close\r\n\r\n")
    assert b" 0 -\n" in out
    out = raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nX-Seen: 1\r\nConnection: close\r\n\r\n")
    assert b" 0 1\n" in out


def test_streamed_answer_and_head(server: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*server, timeout=10)
    conn.request("GET", "/big")
    r = conn.getresponse()
    assert len(r.read()) == BUFFERED_ANSWER * 4
    conn.request("HEAD", "/p")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    conn.request("GET", "/boom")
    assert conn.getresponse().status == 500


def test_per_ip_limit(server: tuple[str, int]) -> None:
    held = [socket.create_connection(server, timeout=5) for _ in range(4)]
    try:
        extra = socket.create_connection(server, timeout=5)
        with contextlib.suppress(ConnectionResetError):
            assert extra.recv(10) == b""
        extra.close()
    finally:
        for s in held:
            s.close()


def test_expect_100_continue(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=10) as s:
        s.sendall(
            b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        assert s.recv(100).startswith(b"HTTP/1.1 100")
        s.sendall(b"abc")
        assert s.recv(1000).startswith(b"HTTP/1.1 200")


def test_big_bodies_go_to_disk_within_one_budget() -> None:
    """A body over memory_body_bytes is kept in a temporary file; all such bodies in
    flight share max_spooled_bytes: beyond it a request gets 503 with Retry-After (fixed
    length refused before its body is read, chunked as it grows), and the budget comes
    back when the answer is done."""
    holding, release = threading.Event(), threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        if environ["PATH_INFO"] == "/hold":
            holding.set()
            release.wait(20)
        data = hashlib.sha256(body).hexdigest().encode()
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]

    limits = HttpLimits(max_body_bytes=200_000, memory_body_bytes=1024, max_spooled_bytes=300_000)
    httpd = HttpServer(app, limits)
    big = bytes(range(256)) * 700  # 179,200 bytes

    def post(path: str, body: bytes, chunked: bool = False) -> tuple[int, str | None, bytes]:
        conn = http.client.HTTPConnection(*addr, timeout=20)
        try:
            if chunked:
                conn.request("POST", path, body=iter([body[:1000], body[1000:]]))
            else:
                conn.request("POST", path, body=body)
            r = conn.getresponse()
            return r.status, r.getheader("Retry-After"), r.read()
        finally:
            conn.close()

    with serving(httpd) as addr:
        first: dict[str, Any] = {}
        t = threading.Thread(target=lambda: first.update(r=post("/hold", big)))
        t.start()
        assert holding.wait(20)
        assert httpd.spooled == len(big)
        assert post("/", big)[:2] == (503, "30")
        assert post("/", big, chunked=True)[:2] == (503, "30")
        small = b"s" * 1000  # in memory: not charged
        assert post("/", small) == (200, None, hashlib.sha256(small).hexdigest().encode())
        release.set()
        t.join(20)
        assert first["r"] == (200, None, hashlib.sha256(big).hexdigest().encode())
        assert post("/", big) == (200, None, hashlib.sha256(big).hexdigest().encode())
        assert httpd.spooled == 0
