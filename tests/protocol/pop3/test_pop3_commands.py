"""POP3 commands and replies with poplib and raw sockets (RFC 1939, 2449, 5034)."""

from __future__ import annotations

import base64
import poplib
import re
import socket
import time
from typing import NoReturn

import pytest

from appliance.store.base import INBOX, StorageUnavailable
from appliance.store.maildir import MaildirStore
from tests.protocol.pop3.conftest import OTHER, PASSWORD, USER, Pop3Server, cmd

MSG1 = (
    b"From: a@example.net\r\nSubject: one\r\n\r\nfirst line\r\n.starts with dot\r\n..two dots\r\n"
)
MSG2 = b"From: b@example.net\r\nSubject: two\r\nX-Long: yes\r\n\r\nl1\r\nl2\r\nl3\r\nl4\r\n"


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")[:-1]


def _recv_until(sock: socket.socket, end: bytes, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(end) and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_capa_before_login(server: Pop3Server) -> None:
    client = server.plain()
    assert client.getwelcome().startswith(b"+OK")
    caps = client.capa()
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS", "USER"):
        assert cap in caps, cap
    assert caps["SASL"] == ["PLAIN"]
    client.quit()


def test_user_pass_stat_list_uidl(server: Pop3Server) -> None:
    uid1 = server.deliver(MSG1)
    uid2 = server.deliver(MSG2)
    client = server.plain()
    assert client.user(USER).startswith(b"+OK")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat() == (2, len(MSG1) + len(MSG2))
    resp, listing, _ = client.list()
    assert resp.startswith(b"+OK 2 messages")
    assert listing == [f"1 {len(MSG1)}".encode(), f"2 {len(MSG2)}".encode()]
    assert cmd(client, "LIST 2") == f"+OK 2 {len(MSG2)}".encode()
    uidvalidity = server.ctx.store.status(USER, INBOX).uidvalidity
    expected = [f"{uid:08X}{uidvalidity:08X}" for uid in (uid1, uid2)]
    _, uidls, _ = client.uidl()
    assert uidls == [f"{i} {u}".encode() for i, u in enumerate(expected, start=1)]
    assert client.uidl(1) == f"+OK 1 {expected[0]}".encode()
    assert client.noop() == b"+OK"
    client.quit()
    # UIDLs are stable across sessions.
    client = server.login()
    assert client.uidl()[1] == uidls
    client.quit()


def test_retr_bytes_and_dot_stuffing(server: Pop3Server) -> None:
    server.deliver(MSG1)
    client = server.login()
    resp, lines, _ = client.retr(1)
    assert resp == f"+OK {len(MSG1)} octets".encode()
    assert b"\r\n".join(lines) + b"\r\n" == MSG1  # poplib undoes the stuffing
    client.quit()
    sock = server.raw()
    _recv_until(sock, b"\r\n")
    sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nRETR 1\r\n".encode())
    data = _recv_until(sock, b"\r\n.\r\n")
    body = data.split(b" octets\r\n", 1)[1]
    assert b"\r\n..starts with dot\r\n...two dots\r\n.\r\n" in body
    sock.close()


def test_top(server: Pop3Server) -> None:
    server.deliver(MSG2)
    client = server.login()
    _, lines, _ = client.top(1, 0)
    assert lines == [b"From: b@example.net", b"Subject: two", b"X-Long: yes", b""]
    _, lines, _ = client.top(1, 2)
    assert lines[-3:] == [b"", b"l1", b"l2"]
    _, lines, _ = client.top(1, 100)
    assert lines[-1] == b"l4"
    with pytest.raises(poplib.error_proto, match="Usage"):
        client.top(1, -1)
    client.quit()


def test_dele_applies_only_at_quit(server: Pop3Server) -> None:
    for _ in range(3):
        server.deliver(MSG2)
    client = server.login()
    assert client.dele(2).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="No such message"):
        client.dele(2)
    with pytest.raises(poplib.error_proto, match="No such message"):
        client.retr(2)
    assert client.stat() == (2, 2 * len(MSG2))
    assert len(client.list()[1]) == 2
    assert server.ctx.store.status(USER, INBOX).messages == 3  # nothing removed yet
    assert client.quit().startswith(b"+OK")
    snap = server.ctx.store.snapshot(USER, INBOX)
    assert [m.uid for m in snap.messages] == [1, 3]


def test_rset_undeletes(server: Pop3Server) -> None:
    server.deliver(MSG1)
    client = server.login()
    client.dele(1)
    assert client.rset().startswith(b"+OK Maildrop has 1 messages")
    client.quit()
    assert server.ctx.store.status(USER, INBOX).messages == 1


def test_dropped_connection_deletes_nothing(server: Pop3Server) -> None:
    server.deliver(MSG1)
    server.deliver(MSG2)
    sock = server.raw()
    _recv_until(sock, b"\r\n")
    sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nDELE 1\r\nDELE 2\r\n".encode())
    data = _recv_until(sock, b"marked for deletion\r\n+OK Message 2 marked for deletion\r\n")
    assert data.count(b"marked for deletion") == 2
    sock.close()
    deadline = time.monotonic() + 10
    while server.service.status()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.service.status()["sessions"] == 0
    assert server.ctx.store.status(USER, INBOX).messages == 2


def test_errors_before_login(server: Pop3Server) -> None:
    client = server.plain()
    for line in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "NOOP", "RSET", "TOP 1 1"):
        with pytest.raises(poplib.error_proto, match="Not logged in"):
            cmd(client, line)
    client.quit()
    client = server.plain()
    with pytest.raises(poplib.error_proto, match="USER first"):
        client.pass_(PASSWORD)
    with pytest.raises(poplib.error_proto, match="Unknown command"):
        cmd(client, "FROB")
    with pytest.raises(poplib.error_proto, match=re.escape("[AUTH] Authentication failed")):
        client.user(USER)
        client.pass_("wrong-password-123")
    client.quit()


def test_errors_after_login(server: Pop3Server) -> None:
    server.deliver(MSG1)
    client = server.login()
    for line, pattern in [
        ("RETR 9", "No such message"),
        ("RETR x", "Invalid message number"),
        ("RETR -1", "Invalid message number"),
        ("LIST 0", "No such message"),
        ("UIDL 2", "No such message"),
        ("TOP 1", "Usage"),
        ("USER x", "Already logged in"),
        ("PASS x", "Already logged in"),
        ("AUTH PLAIN", "Already logged in"),
        ("STLS", "STLS not allowed"),
    ]:
        with pytest.raises(poplib.error_proto, match=pattern):
            cmd(client, line)
    client.quit()


def test_too_many_errors_closes(server: Pop3Server) -> None:
    sock = server.raw()
    _recv_until(sock, b"\r\n")
    sock.sendall(b"BAD\r\n" * 12)
    data = _recv_until(sock, b"closing connection\r\n")
    assert data.count(b"-ERR Unknown command") == 9
    assert sock.recv(100) == b""


def test_line_too_long(server: Pop3Server) -> None:
    sock = server.raw()
    _recv_until(sock, b"\r\n")
    sock.sendall(b"NOOP " + b"x" * 5000 + b"\r\n")
    assert _recv_until(sock, b"\r\n") == b"-ERR Line too long\r\n"
    assert sock.recv(100) == b""


def test_auth_plain_initial_response(server: Pop3Server) -> None:
    server.deliver(MSG1)
    client = server.plain()
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert cmd(client, f"AUTH PLAIN {token}").startswith(b"+OK Logged in")
    assert client.stat()[0] == 1
    client.quit()


def test_auth_plain_continuation_cancel_and_errors(server: Pop3Server) -> None:
    sock = server.raw()
    _recv_until(sock, b"\r\n")
    good = base64.b64encode(f"{USER}\0{USER}\0{PASSWORD}".encode())
    sock.sendall(b"AUTH PLAIN\r\n")
    assert _recv_until(sock, b"\r\n") == b"+ \r\n"
    sock.sendall(b"*\r\n")
    assert _recv_until(sock, b"\r\n").startswith(b"-ERR Authentication cancelled")
    sock.sendall(b"AUTH PLAIN !!notbase64\r\n")
    assert _recv_until(sock, b"\r\n").startswith(b"-ERR Invalid SASL")
    other = base64.b64encode(f"{OTHER}\0{USER}\0{PASSWORD}".encode())
    sock.sendall(b"AUTH PLAIN " + other + b"\r\n")
    assert b"[AUTH] Authorization identity" in _recv_until(sock, b"\r\n")
    sock.sendall(b"AUTH CRAM-MD5\r\n")
    assert b"Unsupported" in _recv_until(sock, b"\r\n")
    sock.sendall(b"AUTH\r\n")
    assert _recv_until(sock, b".\r\n") == b"+OK\r\nPLAIN\r\n.\r\n"
    sock.sendall(b"AUTH PLAIN\r\n")
    assert _recv_until(sock, b"\r\n") == b"+ \r\n"
    sock.sendall(good + b"\r\n")
    assert _recv_until(sock, b"\r\n").startswith(b"+OK Logged in")
    sock.sendall(b"QUIT\r\n")
    assert _recv_until(sock, b"\r\n").startswith(b"+OK")
    sock.close()


def test_maildrop_in_use(server: Pop3Server) -> None:
    first = server.login()
    second = server.plain()
    second.user(USER)
    with pytest.raises(poplib.error_proto, match=re.escape("[IN-USE]")):
        second.pass_(PASSWORD)
    other = server.login(OTHER)  # another user is not affected
    other.quit()
    first.quit()
    second.user(USER)
    assert second.pass_(PASSWORD).startswith(b"+OK")
    second.quit()


def test_pipelining(server: Pop3Server) -> None:
    server.deliver(MSG1)
    sock = server.raw()
    _recv_until(sock, b"\r\n")
    sock.sendall(f"CAPA\r\nUSER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nUIDL 1\r\nQUIT\r\n".encode())
    data = _recv_until(sock, b"Logging out, 0 messages deleted\r\n")
    replies = [line for line in _lines(data) if line.startswith((b"+OK", b"-ERR"))]
    assert len(replies) == 6
    assert replies[3] == f"+OK 1 {len(MSG1)}".encode()


def test_message_removed_by_another_session(server: Pop3Server) -> None:
    server.deliver(MSG1)
    server.deliver(MSG2)
    client = server.login()
    server.ctx.store.delete_messages(USER, INBOX, [1])  # e.g. an IMAP client expunged it
    with pytest.raises(poplib.error_proto, match="removed by another session"):
        client.retr(1)
    assert client.retr(2)[0].startswith(b"+OK")
    client.dele(1)
    client.quit()  # deleting a message that is already gone is fine
    assert [m.uid for m in server.ctx.store.snapshot(USER, INBOX).messages] == [2]


def test_foreign_lf_message_sent_with_crlf(server: Pop3Server) -> None:
    store = server.ctx.store
    assert isinstance(store, MaildirStore)
    store.ensure_user(USER)
    new = store.user_dir(USER) / "new"
    (new / "1700000000.procmail.host").write_bytes(b"Subject: lf\n\n.dot\nlast line no newline")
    sock = server.raw()
    _recv_until(sock, b"\r\n")
    sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nRETR 1\r\nQUIT\r\n".encode())
    data = _recv_until(sock, b"Logging out, 0 messages deleted\r\n")
    body = data.split(b" octets\r\n", 1)[1].split(b"\r\n.\r\n", 1)[0]
    assert body == b"Subject: lf\r\n\r\n..dot\r\nlast line no newline"
    sock.close()


def test_store_failures_are_temporary_errors(
    server: Pop3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.deliver(MSG1)
    store = server.ctx.store

    def unavailable(*args: object, **kwargs: object) -> NoReturn:
        raise StorageUnavailable("disk gone")

    with monkeypatch.context() as m:
        m.setattr(store, "snapshot", unavailable)
        client = server.plain()
        client.user(USER)
        with pytest.raises(poplib.error_proto, match=re.escape("[SYS/TEMP] Mailbox unavailable")):
            client.pass_(PASSWORD)
        client.quit()
    client = server.login()  # the maildrop lock was released
    with monkeypatch.context() as m:
        # The disk went away: the file is not where it was at login and the store fails.
        path = store.message_path(USER, INBOX, store.snapshot(USER, INBOX).messages[0].uid)
        moved = path.with_name("elsewhere")
        path.rename(moved)
        m.setattr(store, "open_message", unavailable)
        with pytest.raises(poplib.error_proto, match=re.escape("[SYS/TEMP] Message unavailable")):
            client.retr(1)
        moved.rename(path)
    client.dele(1)
    monkeypatch.setattr(store, "delete_messages", unavailable)
    with pytest.raises(poplib.error_proto, match=re.escape("[SYS/TEMP] Some deleted")):
        client.quit()
    monkeypatch.undo()
    assert store.status(USER, INBOX).messages == 1


def test_auth_plain_authzid_is_compared_without_case(server: Pop3Server) -> None:
    """appliance.sasl: the one authzid rule POP3, SMTP and IMAP share (POP3 compared it
    case-sensitively before: an authzid in capitals was refused here, accepted there)."""
    client = server.plain()
    token = base64.b64encode(f"{USER.upper()}\0{USER}\0{PASSWORD}".encode()).decode()
    assert cmd(client, f"AUTH PLAIN {token}").startswith(b"+OK Logged in")
    client.quit()
