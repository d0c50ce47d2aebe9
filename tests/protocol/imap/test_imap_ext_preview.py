"""PREVIEW (RFC 8970) on real sockets. Every expected text is what a private Dovecot 2.3
answered for the same message (the two differences are marked)."""

from __future__ import annotations

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer
from tests.protocol.imap.rawclient import RawClient

CASES: list[tuple[bytes, bytes]] = [
    (
        b"Subject: plain\r\n\r\nHello   world,\r\n  this is\ta   test.\r\n\r\n"
        b"> quoted line\r\nlast line\r\n",
        b'"Hello world, this is a test. last line"',
    ),
    (
        b"Subject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head>"
        b"<style>p{}</style><title>T</title></head><body><p>Hello &amp; <b>bold</b> "
        b"caf&eacute;</p><br>next</body></html>\r\n",
        "{25}\r\nT Hello & bold café next".encode(),
    ),
    (
        b"Subject: mp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; "
        b"boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 au lait =\r\n"
        b"soft break\r\n--XX\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--XX--\r\n",
        "{24}\r\nCafé au lait soft break".encode(),
    ),
    (b"Subject: long\r\n\r\n" + b"word " * 100 + b"\r\n", b'"' + b" ".join([b"word"] * 40) + b'"'),
    (b"Subject: empty\r\n\r\n", b'""'),
    (
        b"Subject: att\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=YY\r\n"
        b"\r\n--YY\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nAAAA\r\n--YY\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64"
        b"\r\n\r\nSGVsbG8gZnJvbSBiYXNlNjQ=\r\n--YY--\r\n",
        b'"Hello from base64"',
    ),
    (  # 200 characters at most (334 bytes of UTF-8)
        b"Subject: utf\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + ("\u00e9\u00e8 " * 150).encode()
        + b"\r\n",
        b"{334}\r\n" + " ".join(["\u00e9\u00e8"] * 67).encode(),
    ),
    (
        b"Subject: quote\r\n\r\nOn Mon someone wrote:\r\n> quoted\r\n>more\r\nreply here\r\n",
        b'"On Mon someone wrote: reply here"',
    ),
    (b"Subject: onlyq\r\n\r\n> only quoted\r\n> text here\r\n", b'">only quoted text here"'),
    (
        b"Subject: nested\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n--A\r\n"
        b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--A\r\n"
        b"Content-Type: text/plain\r\n\r\nouter text\r\n--A--\r\n",
        b'"outer text"',
    ),
    (
        b"Subject: html2\r\nContent-Type: text/html\r\n\r\n<div>a</div><div>b</div><script>"
        b"x=1</script><p>c&nbsp;d &lt;e&gt; &#233;&#x41;</p><!-- comment -->end\r\n",
        "{20}\r\na b c\u00a0d <e> éA end".encode(),
    ),
    (
        b"Subject: h\r\nContent-Type: text/html\r\n\r\nx<b>y</b>z<span>s</span>t<a href='q'>"
        b"link</a>u<blockquote>quoted</blockquote>after<td>c1</td><td>c2</td><li>l1<li>l2\r\n",
        b'"x y z s t link u after c1 c2 l1 l2"',
    ),
    (
        b"Subject: bad charset\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n"
        b"some \xe9 text\r\n",
        "{13}\r\nsome \ufffd text".encode(),
    ),
    (
        b"Subject: latin\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nsome \xe9 text\r\n",
        "{12}\r\nsome é text".encode(),
    ),
    (
        b"Subject: alt\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/html\r\n\r\n<p>html first</p>\r\n--B\r\nContent-Type: text/plain"
        b"\r\n\r\nplain second\r\n--B--\r\n",
        b'"plain second"',
    ),
    (b"Subject: trail\r\n\r\n" + b"x" * 199 + b" yz\r\n", b'"' + b"x" * 199 + b'"'),
    (b"Subject: tab\r\n\r\n\t\tindented\r\n   >not quote\r\n", b'"indented >not quote"'),
    (
        b"Subject: enriched\r\nContent-Type: text/enriched\r\n\r\n<bold>e</bold> text\r\n",
        b'"<bold>e</bold> text"',
    ),
    # Difference: Dovecot keeps control characters (here \x01) in the preview; ours makes
    # them spaces (RFC 8970 3.1: the preview is plain text for display).
    (b'Subject: ctl\r\n\r\na"b\\c  \x01ctl\r\n', b'"a\\"b\\\\c ctl"'),
]


@pytest.fixture
def client(imap_server: ImapServer) -> RawClient:
    for message, _ in CASES:
        imap_server.deliver(message)
    c = RawClient(imap_server.host, imap_server.tls_port, imap_server.client_tls())
    c.ok(f'LOGIN {imap_server.user} "{PASSWORD}"')
    c.ok("SELECT INBOX")
    return c


def test_preview_advertised(client: RawClient) -> None:
    assert b"PREVIEW" in client.ok("CAPABILITY")[0].split()


def test_preview_texts_match_dovecot(client: RawClient) -> None:
    lines = client.ok("FETCH 1:* (PREVIEW)")[:-1]
    assert len(lines) == len(CASES)
    for seq, (line, (_, expected)) in enumerate(zip(lines, CASES, strict=True), 1):
        assert line == b"* %d FETCH (PREVIEW %s)\r\n" % (seq, expected), seq


def test_preview_lazy_and_syntax(client: RawClient) -> None:
    c = client
    want = b'* 1 FETCH (PREVIEW "Hello world, this is a test. last line")\r\n'
    assert c.ok("FETCH 1 (PREVIEW (LAZY))")[0] == want
    assert c.ok("FETCH 1 PREVIEW (LAZY)")[0] == want
    assert c.ok("FETCH 1 (UID PREVIEW)")[0] == (
        b'* 1 FETCH (UID 1 PREVIEW "Hello world, this is a test. last line")\r\n'
    )
    for bad in ("FETCH 1 (PREVIEW (FOO))", "FETCH 1 (PREVIEW ())", "FETCH 1 PREVIEW (LAZY"):
        assert c.command(bad)[-1].split()[1] == b"BAD", bad
    # PREVIEW does not set \Seen (RFC 8970 3.1).
    c.ok("FETCH 2 PREVIEW")
    assert b"\\Seen" not in c.ok("FETCH 2 FLAGS")[0]


def test_preview_utf8_quoted_after_enable(client: RawClient) -> None:
    c = client
    c.ok("ENABLE UTF8=ACCEPT")
    assert c.ok("FETCH 14 PREVIEW")[0] == '* 14 FETCH (PREVIEW "some é text")\r\n'.encode()
