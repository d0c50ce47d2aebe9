"""neomutt, a real terminal client, driven through tmux: it logs in over IMAPS, lists
INBOX, saves a message into another folder (UID COPY/MOVE + EXPUNGE) and quits."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.protocol.imap.conftest import PASSWORD, ImapServer, make_message

pytestmark = pytest.mark.skipif(
    shutil.which("neomutt") is None or shutil.which("tmux") is None,
    reason="needs Debian's neomutt and tmux (tests/apt-packages.txt)",
)


class Tmux:
    def __init__(self, home: Path) -> None:
        self.socket = str(home / "tmux.sock")
        self.home = home

    def run(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "TERM": "xterm"},
        ).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "mutt")

    def wait_for(self, what: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if what(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"neomutt screen never showed what was expected:\n{text}")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "mutt", *keys)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path)
    yield t
    subprocess.run(["tmux", "-S", t.socket, "kill-server"], capture_output=True, check=False)


def test_neomutt_reads_and_files_a_message(
    imap_server: ImapServer, tmux: Tmux, tmp_path: Path
) -> None:
    imap_server.deliver(make_message("Quarterly figures", body="Numbers inside.\r\n"))
    with imap_server.imaps() as c:
        c.list()  # first login creates Archive and the other special-use folders
    rc = tmp_path / "muttrc"
    user = imap_server.user.replace("@", "%40")
    rc.write_text(
        f"""set folder = "imaps://{user}@127.0.0.1:{imap_server.tls_port}/"
set spoolfile = "+INBOX"
set imap_pass = "{PASSWORD}"
set certificate_file = "{imap_server.ctx.config.tls.cert}"
set ssl_verify_host = no
set header_cache = ""
set message_cachedir = ""
set mbox_type = Maildir
set confirmappend = no
set delete = yes
set move = no
set sort = date
set timeout = 1
set mail_check = 1
"""
    )
    tmux.run(
        "new-session", "-d", "-s", "mutt", "-x", "160", "-y", "40",
        f"neomutt -n -F {rc}",
    )  # fmt: skip
    tmux.wait_for(lambda s: "Quarterly figures" in s)
    tmux.keys("s")
    tmux.wait_for(lambda s: "Save to mailbox" in s)
    tmux.keys("C-u", "=Archive", "Enter")
    tmux.wait_for(lambda s: "Del:1" in s)  # saved, and marked deleted in INBOX
    tmux.keys("q")
    deadline = time.monotonic() + 20
    while (
        time.monotonic() < deadline
        and imap_server.ctx.store.status(imap_server.user, "INBOX").messages
    ):
        try:
            if "yes" in tmux.screen().lower():  # "Purge 1 deleted message?"
                tmux.keys("y")
        except subprocess.CalledProcessError:
            pass  # neomutt has quit and its tmux session with it: the expunge may lag
        time.sleep(0.2)
    store = imap_server.ctx.store
    assert store.status(imap_server.user, "INBOX").messages == 0
    archived = store.snapshot(imap_server.user, "Archive").messages
    assert len(archived) == 1
    with store.open_message(imap_server.user, "Archive", archived[0].uid) as fh:
        assert b"Subject: Quarterly figures" in fh.read()
