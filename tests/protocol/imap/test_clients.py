"""Real clients: mbsync (isync) syncing both ways and curl over IMAPS and STARTTLS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message

needs_mbsync = pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync not installed")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def _mbsync(server: ImapServer, home: Path) -> subprocess.CompletedProcess[str]:
    local = home / "mail"
    local.mkdir(parents=True, exist_ok=True)
    cfg = home / "mbsyncrc"
    cfg.write_text(
        f"""IMAPAccount pb
Host localhost
Port {server.tls_port}
User {server.user}
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {server.ctx.config.tls.cert}

IMAPStore remote
Account pb

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )
    return subprocess.run(
        ["mbsync", "-c", str(cfg), "-a"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=False,
    )


@needs_mbsync
def test_mbsync_both_ways(imap_server: ImapServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    for i in range(3):
        imap_server.deliver(make_message(f"sync {i}", f"payload {i}\r\n"))
    imap_server.deliver(make_message("archived"), mailbox="Archive")
    run = _mbsync(imap_server, home)
    assert run.returncode == 0, run.stderr
    inbox = home / "mail" / "INBOX"
    files = sorted((inbox / "cur").iterdir()) + sorted((inbox / "new").iterdir())
    assert len(files) == 3
    assert b"payload" in files[0].read_bytes()
    assert len(list((home / "mail" / "Archive").glob("*/*"))) == 1
    # near -> far: a new local message and a flag change
    (inbox / "new" / "1700000000.local1.host").write_bytes(make_message("from laptop"))
    target = files[0]
    target.rename(target.with_name(target.name.split(":2,")[0] + ":2,FS"))
    run = _mbsync(imap_server, home)
    assert run.returncode == 0, run.stderr
    snap = imap_server.ctx.store.snapshot(imap_server.user, "INBOX")
    assert snap.status.messages == 4
    assert any({"\\Seen", "\\Flagged"} <= m.flags for m in snap.messages)
    # far -> near: an expunge on the server removes the local copy
    uid = snap.messages[1].uid
    imap_server.ctx.store.store_flags(imap_server.user, "INBOX", [uid], "add", ["\\Deleted"])
    imap_server.ctx.store.expunge(imap_server.user, "INBOX")
    run = _mbsync(imap_server, home)
    assert run.returncode == 0, run.stderr
    assert len(list(inbox.glob("*/*"))) == 3


@needs_curl
def test_curl_imaps_list_and_fetch(imap_server: ImapServer) -> None:
    imap_server.deliver(make_message("curl me", "curl body\r\n"))
    base = f"imaps://127.0.0.1:{imap_server.tls_port}"
    common = ["curl", "-sS", "-k", "--max-time", "30", "--user", f"{imap_server.user}:{PASSWORD}"]
    listing = subprocess.run(
        [*common, f"{base}/"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert '"/" INBOX' in listing and "Archive" in listing
    body = subprocess.run(
        [*common, f"{base}/INBOX;UID=1"], capture_output=True, timeout=60, check=True
    ).stdout
    assert b"Subject: curl me" in body and body.endswith(b"curl body\r\n")
    starttls = f"imap://127.0.0.1:{imap_server.port}/INBOX;UID=1;SECTION=TEXT"
    text = subprocess.run(
        [*common, "--ssl-reqd", starttls], capture_output=True, timeout=60, check=True
    ).stdout
    assert text == b"curl body\r\n"
