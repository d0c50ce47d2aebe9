"""POP3 sizes are the octets RETR sends (RFC 1939 5 STAT/LIST: "exact size"), issue 17.5.

The size of a message is counted as it goes on the wire before byte-stuffing: every line
ends in CRLF (a bare LF is sent as CRLF) and a last line without a line end gets one.
"""

from __future__ import annotations

import io

import pytest

from appliance.pop3 import maildrop
from appliance.pop3.maildrop import wire_size_of
from appliance.store.maildir import MaildirStore
from tests.protocol.pop3.conftest import USER, Pop3Server

MESSAGES = {
    "crlf": b"From: a@example.net\r\nSubject: crlf\r\n\r\nbody\r\n.dot line\r\n",
    "no-final-crlf": b"From: a@example.net\r\nSubject: no end\r\n\r\nbody\r\nlast line",
    "bare-lf": b"From: a@example.net\nSubject: lf\n\nl1\nl2\n.dot\n",
    "bare-lf-no-end": b"From: a@example.net\nSubject: lf\n\nl1\r\nl2\nend",
    "ends-with-cr": b"Subject: cr\r\n\r\nbody\r",
    "empty-body": b"Subject: nobody\r\n\r\n",
}


def _retr_octets(lines: list[bytes]) -> int:
    # poplib strips the CRLFs and undoes byte-stuffing (not part of the size, RFC 1939
    # 11); put the CRLFs back.
    return len(b"\r\n".join(lines) + b"\r\n") if lines else 0


def test_list_stat_equal_retr_octets(server: Pop3Server) -> None:
    for data in MESSAGES.values():
        server.deliver(data)
    client = server.login()
    try:
        _, listing, _ = client.list()
        sizes = {int(n): int(s) for n, s in (line.split() for line in listing)}
        count, total = client.stat()
        assert count == len(MESSAGES)
        for number, name in enumerate(MESSAGES, start=1):
            first, lines, _ = client.retr(number)
            sent = _retr_octets(lines)
            assert sizes[number] == sent, name
            assert first == f"+OK {sent} octets".encode(), name
            single = client._shortcmd(f"LIST {number}")  # type: ignore[attr-defined]
            assert single == f"+OK {number} {sent}".encode(), name
        assert total == sum(sizes.values())
    finally:
        client.quit()


def test_foreign_lf_file_size_matches_retr(server: Pop3Server) -> None:
    store = server.ctx.store
    assert isinstance(store, MaildirStore)
    store.ensure_user(USER)
    data = b"Subject: lf\n\n.dot\nlast line no newline"
    (store.user_dir(USER) / "new" / "1700000000.procmail.host").write_bytes(data)
    client = server.login()
    try:
        _, [line], _ = client.list()
        _, lines, _ = client.retr(1)
        assert lines == [b"Subject: lf", b"", b".dot", b"last line no newline"]
        assert int(line.split()[1]) == _retr_octets(lines) == len(data) + 3 + 2
    finally:
        client.quit()


def test_top_sends_crlf_lines(server: Pop3Server) -> None:
    server.deliver(MESSAGES["bare-lf-no-end"])
    server.deliver(MESSAGES["no-final-crlf"])
    client = server.login()
    try:
        _, lines, _ = client.top(1, 1)
        assert lines == [b"From: a@example.net", b"Subject: lf", b"", b"l1"]
        _, lines, _ = client.top(1, 10)
        assert lines == [b"From: a@example.net", b"Subject: lf", b"", b"l1", b"l2", b"end"]
        _, lines, _ = client.top(2, 0)
        assert lines == [b"From: a@example.net", b"Subject: no end", b""]
    finally:
        client.quit()


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (b"", 0),
        (b"a", 3),
        (b"a\r\n", 3),
        (b"a\n", 3),
        (b"a\nb", 6),
        (b"a\r", 4),
        (b"a\r\nb\n\n", 8),
    ],
)
def test_wire_size_of(data: bytes, size: int) -> None:
    assert wire_size_of(io.BytesIO(data)) == size


def test_wire_size_crlf_split_across_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maildrop, "SCAN_CHUNK", 2)
    assert wire_size_of(io.BytesIO(b"a\r\nb\r\n")) == 6
    assert wire_size_of(io.BytesIO(b"ab\r\ncd\n")) == 8
