"""Moving mail into or out of Junk over IMAP trains rspamd (a recording stand-in for its
controller on loopback: the real rspamd learning path is tested in tests/protocol/filters)."""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from tests.protocol.imap.conftest import ImapServer, make_message


class Controller(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lessons: list[tuple[str, bytes]] = []


class Handler(http.server.BaseHTTPRequestHandler):
    server: Controller

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.lessons.append((self.path, self.rfile.read(length)))
        body = b'{"success": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def controller(imap_server: ImapServer) -> Iterator[Controller]:
    srv = Controller()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    cfg = imap_server.ctx.config
    imap_server.ctx.config = dataclasses.replace(
        cfg, filters=dataclasses.replace(cfg.filters, rspamd=True, rspamd_controller_url=url)
    )
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def wait_lessons(srv: Controller, count: int) -> list[tuple[str, bytes]]:
    deadline = time.monotonic() + 10
    while len(srv.lessons) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # nothing more should arrive
    return list(srv.lessons)


def test_move_into_junk_learns_spam_and_out_learns_ham(
    imap_server: ImapServer, controller: Controller
) -> None:
    imap_server.deliver(make_message("cheap pills", body="Buy now\r\n"))
    with imap_server.imaps() as c:
        c.select("INBOX")
        c.list()  # first login creates the special-use folders
        assert c.uid("MOVE", "1", "Junk")[0] == "OK"
        lessons = wait_lessons(controller, 1)
        assert [path for path, _ in lessons] == ["/learnspam"]
        assert b"Subject: cheap pills" in lessons[0][1]
        c.select("Junk")
        assert c.uid("MOVE", "1", "Archive")[0] == "OK"
        lessons = wait_lessons(controller, 2)
        assert [path for path, _ in lessons] == ["/learnspam", "/learnham"]


def test_moves_that_say_nothing_about_spam_teach_nothing(
    imap_server: ImapServer, controller: Controller
) -> None:
    imap_server.deliver(make_message("newsletter"))
    with imap_server.imaps() as c:
        c.list()
        c.select("INBOX")
        assert c.uid("COPY", "1", "Archive")[0] == "OK"
        assert c.uid("MOVE", "1", "Trash")[0] == "OK"
        c.select("Trash")
        assert c.uid("MOVE", "1", "Junk")[0] == "OK"  # Trash -> Junk: spam
        c.select("Junk")
        assert c.uid("MOVE", "1", "Trash")[0] == "OK"  # Junk -> Trash: deleting, not ham
    assert [path for path, _ in wait_lessons(controller, 2)] == ["/learnspam"]
