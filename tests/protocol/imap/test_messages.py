"""SELECT, FETCH, STORE, SEARCH, COPY/MOVE, EXPUNGE, APPEND with imaplib and imapclient."""

from __future__ import annotations

import re

import pytest
from imapclient import IMAPClient

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message

NESTED = (
    b"From: Carol <carol@example.org>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?= report\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <nested@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9 lines\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"From: dave@example.org\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner text\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>inner</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="a.bin"\r\n'
    b"\r\n"
    b"AAECAwQ=\r\n"
    b"--outer--\r\n"
)


def client(server: ImapServer) -> IMAPClient:
    c = IMAPClient(
        server.host, port=server.tls_port, ssl=True, ssl_context=server.client_tls(), timeout=20
    )
    c.login(server.user, PASSWORD)
    return c


def test_select_fetch_basics(imap_server: ImapServer) -> None:
    for i in range(3):
        imap_server.deliver(make_message(f"msg {i}", f"body {i}\r\n"))
    c = client(imap_server)
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 3
    assert info[b"UIDNEXT"] == 4
    assert b"\\Seen" in info[b"PERMANENTFLAGS"]
    assert info[b"HIGHESTMODSEQ"] >= 1
    data = c.fetch([1, 2, 3], ["FLAGS", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "UID"])
    assert sorted(data) == [1, 2, 3]
    env = data[1][b"ENVELOPE"]
    assert env.subject == b"msg 0"
    assert env.from_[0].mailbox == b"alice" and env.from_[0].host == b"example.org"
    assert env.sender[0].name == b"Alice Example"
    assert data[1][b"FLAGS"] == (b"\\Recent",)  # this session is the first to see it
    body = c.fetch([2], ["BODY.PEEK[]"])[2][b"BODY[]"]
    assert body.endswith(b"body 1\r\n") and len(body) == data[2][b"RFC822.SIZE"]
    assert b"\\Seen" not in c.fetch([2], ["FLAGS"])[2][b"FLAGS"]  # PEEK keeps \Seen off
    got = c.fetch([2], ["BODY[TEXT]"])[2]
    assert got[b"BODY[TEXT]"] == b"body 1\r\n"
    assert b"\\Seen" in c.fetch([2], ["FLAGS"])[2][b"FLAGS"]
    hdr = c.fetch([3], ["BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]"])[3]
    value = next(v for k, v in hdr.items() if k.startswith(b"BODY[HEADER.FIELDS"))
    assert value == b"From: Alice Example <alice@example.org>\r\nSubject: msg 2\r\n\r\n"
    partial = c.fetch([3], ["BODY.PEEK[]<0.4>"])[3]
    assert partial[b"BODY[]<0>"] == b"From"
    c.logout()


def test_bodystructure_nested(imap_server: ImapServer) -> None:
    imap_server.deliver(NESTED)
    c = client(imap_server)
    c.select_folder("INBOX")
    data = c.fetch([1], ["BODYSTRUCTURE", "BODY"])[1]
    bs = data[b"BODYSTRUCTURE"]
    assert bs.is_multipart
    parts, subtype = bs[0], bs[1]
    assert subtype == b"mixed" and len(parts) == 3
    assert parts[0][:2] == (b"text", b"plain")
    assert parts[1][:2] == (b"message", b"rfc822")
    assert parts[2][:2] == (b"application", b"octet-stream")
    sections = c.fetch(
        [1],
        [
            "BODY.PEEK[1]",
            "BODY.PEEK[2.HEADER]",
            "BODY.PEEK[2.1]",
            "BODY.PEEK[2.2.MIME]",
            "BINARY.PEEK[1]",
            "BINARY.PEEK[3]",
            "BINARY.SIZE[3]",
            "BODY.PEEK[3.MIME]",
        ],
    )[1]
    assert sections[b"BODY[1]"] == b"caf=C3=A9 lines"
    assert sections[b"BODY[2.HEADER]"].startswith(b"Subject: inner\r\n")
    assert sections[b"BODY[2.1]"] == b"inner text"
    assert sections[b"BODY[2.2.MIME]"] == b"Content-Type: text/html\r\n\r\n"
    assert sections[b"BINARY[1]"] == "café lines".encode()
    assert sections[b"BINARY[3]"] == b"~{5}"  # imapclient does not read literal8
    assert sections[b"BINARY.SIZE[3]"] == 5
    assert b"filename" in sections[b"BODY[3.MIME]"]
    c.logout()
    conn = imap_server.imaps()
    conn.select("INBOX")
    typ, data = conn.fetch("1", "(BINARY.PEEK[3])")
    first = data[0]
    assert typ == "OK" and isinstance(first, tuple)
    assert first[0].endswith(b"BINARY[3] ~{5}")  # RFC 3516 literal8
    assert first[1] == b"\x00\x01\x02\x03\x04"
    conn.logout()


def test_store_search_expunge(imap_server: ImapServer) -> None:
    for i in range(5):
        imap_server.deliver(make_message(f"subject {i}", f"needle{i}\r\n"))
    c = client(imap_server)
    c.select_folder("INBOX")
    out = c.add_flags([1, 2], [b"\\Flagged", b"$Work"])
    assert set(out[1]) - {b"\\Recent"} == {b"\\Flagged", b"$Work"}
    c.remove_flags([2], [b"$Work"])
    c.set_flags([3], [b"\\Deleted"])
    assert c.search(["FLAGGED"]) == [1, 2]
    assert c.search(["KEYWORD", "$Work"]) == [1]
    assert c.search(["UNFLAGGED", "NOT", "DELETED"]) == [4, 5]
    assert c.search(["SUBJECT", "subject 4"]) == [5]
    assert c.search(["BODY", "NEEDLE2"]) == [3]
    assert c.search(["OR", "BODY", "needle0", "TEXT", "needle4"]) == [1, 5]
    assert c.search(["LARGER", "10", "SMALLER", "100000"]) == [1, 2, 3, 4, 5]
    assert c.search(["SINCE", "1-Jan-2020", "SENTON", "23-Nov-2026"]) == [1, 2, 3, 4, 5]
    assert c.search(["HEADER", "Message-ID", "example.org", "UID", "2:3"]) == [2, 3]
    assert c.search(["2,4:*"]) == [2, 4, 5]
    assert c.search(["FROM", "alice"], charset="UTF-8") == [1, 2, 3, 4, 5]
    with pytest.raises(IMAPClient.Error, match="BADCHARSET"):
        c.search([b"FROM", b"alice"], charset="X-UNKNOWN")  # KOI8-R is known (issue 17)
    res = c._imap._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "FLAGGED")
    assert res[0] == "OK"
    esearch = c._imap.untagged_responses.pop("ESEARCH")[0]
    assert b"MIN 1 MAX 2 ALL 1:2 COUNT 2" in esearch
    _, responses = c.expunge()
    assert responses == [(3, b"EXPUNGE")]
    assert c.search() == [1, 2, 4, 5]  # imapclient searches by UID
    c.logout()


def test_uid_commands_copy_move(imap_server: ImapServer) -> None:
    for i in range(4):
        imap_server.deliver(make_message(f"m{i}"))
    c = client(imap_server)
    c.select_folder("INBOX")
    c.copy([1, 2], "Archive")
    typ, _ = c._imap.uid("COPY", "3", "Archive")
    code = c._imap.response("COPYUID")[1][-1]
    assert typ == "OK" and re.fullmatch(rb"\d+ 3 3", code)
    c.move([4], "Trash")
    assert c.search() == [1, 2, 3]
    st = c.folder_status("Archive", ["MESSAGES", "UIDNEXT", "UNSEEN", "SIZE", "HIGHESTMODSEQ"])
    assert st[b"MESSAGES"] == 3 and st[b"UIDNEXT"] == 4 and st[b"SIZE"] > 0
    with pytest.raises(IMAPClient.Error, match="TRYCREATE"):
        c.copy([1], "Nope")
    c.delete_messages([1])
    c.set_flags([2], [b"\\Deleted"])
    c.uid_expunge([1])  # RFC 4315: only UID 1 goes, UID 2 stays though \Deleted
    assert c.search() == [2, 3]
    c.select_folder("Trash", readonly=True)
    assert c.search() == [1]
    with pytest.raises(IMAPClient.Error):
        c.add_flags([1], [b"\\Seen"])
    c.logout()


def test_append_and_mailboxes(imap_server: ImapServer) -> None:
    c = client(imap_server)
    c.create_folder("Projects/2026")
    c.create_folder("Ünïcödé")
    folders = {f[2]: f[0] for f in c.list_folders()}
    assert "Projects/2026" in folders and "Ünïcödé" in folders
    assert b"\\HasChildren" in folders["Projects"]
    assert b"\\Sent" in folders["Sent"]
    raw = c._imap.list('""', "*")[1]
    assert any(b"&ANw-n&AO8-c&APY-d&AOk-" in line for line in raw)  # modified UTF-7
    c.subscribe_folder("Projects/2026")
    assert [f[2] for f in c.list_sub_folders()] == ["Projects/2026"]
    resp = c.append(
        "Projects/2026", make_message("appended"), flags=[b"\\Seen", b"$X"], msg_time=None
    )
    assert b"APPENDUID" in resp
    c.select_folder("Projects/2026")
    assert set(c.fetch([1], ["FLAGS"])[1][b"FLAGS"]) - {b"\\Recent"} == {b"$X", b"\\Seen"}
    c.rename_folder("Projects/2026", "Projects/2027")
    c.unselect_folder()
    assert "Projects/2027" in {f[2] for f in c.list_folders()}
    c.delete_folder("Projects/2027")
    assert "Projects/2027" not in {f[2] for f in c.list_folders()}
    with pytest.raises(IMAPClient.Error, match="TRYCREATE"):
        c.append("Missing", make_message("x"))
    c.logout()


def test_large_append_streams_to_file(imap_server: ImapServer) -> None:
    body = ("x" * 76 + "\r\n") * 30000  # ~2.3 MB: above the in-memory literal threshold
    message = make_message("big", body)
    conn = imap_server.imaps()
    typ, data = conn.append("INBOX", "", None, message)
    assert typ == "OK" and b"APPENDUID" in data[0]
    conn.select("INBOX")
    typ, fetched = conn.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK" and isinstance(fetched[0], tuple)
    assert fetched[0][1] == message
    conn.logout()


def test_append_too_big_refused(imap_server: ImapServer) -> None:
    conn = imap_server.imaps()
    typ, data = conn.append("INBOX", "", None, b"x" * (9 * 1024 * 1024))
    assert typ == "NO" and b"[TOOBIG]" in data[0]
    assert conn.noop()[0] == "OK"
    conn.logout()
