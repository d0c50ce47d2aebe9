"""`pillarbox import imap` against a private Dovecot (tests/protocol/imap/dovecot_ref.py):
folders, flags, keywords and internal dates arrive once; kill -9 and re-run; bad input."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.accounts import Accounts
from appliance.migrate import runner
from appliance.migrate import state as st
from tests.e2e.migrate.migrate_env import (
    USER,
    Box,
    Expected,
    fill_dovecot,
    new_box,
    stored_messages,
)
from tests.harness import REPO, free_port, pillarbox
from tests.protocol.imap.dovecot_ref import DovecotRef, private_dovecot

# the nested tree of the 10,000-message test
BIG = {
    "INBOX": 3000,
    "Sent": 1500,
    "Drafts": 200,
    "Trash": 300,
    "Junk": 200,
    "Archive": 800,
    "Work": 1000,
    "Work/Projects": 1200,
    "Work/Projects/2024": 1000,
    "Family/Photos": 800,
}
LOCAL_OF = {"Family/Photos": "Family/Photos"}  # everything else keeps its name


@pytest.fixture
def dovecot() -> Iterator[DovecotRef]:
    with private_dovecot() as dv:
        yield dv


def import_args(box: Box, dv: DovecotRef, *extra: str, port: int | None = None) -> list[str]:
    return [
        "import",
        "imap",
        "--host",
        "127.0.0.1",
        "--port",
        str(port or dv.port),
        "--user",
        dv.user,
        "--password-stdin",
        "--to",
        USER,
        "--no-verify",
        "--pause",
        "0.2",
        "-c",
        str(box.path),
        *extra,
    ]


def run_import(box: Box, dv: DovecotRef, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The CLI import to completion (the 10,000-message runs outlast pillarbox()'s 60 s)."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *import_args(box, dv)],
        input=dv.password + "\n",
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def check_arrived(box: Box, expected: dict[str, Expected]) -> None:
    """Every message once, in its folder, FLAGS, INTERNALDATE and bytes equal."""
    got = stored_messages(box)
    dups = {mid: len(v) for mid, v in got.items() if len(v) > 1}
    assert not dups, f"{len(dups)} duplicated, e.g. {list(dups.items())[:3]}"
    missing = [mid for mid in expected if mid not in got]
    assert not missing, f"{len(missing)} missing, e.g. {missing[:3]}"
    assert set(got) == set(expected)
    for mid, exp in expected.items():
        (s,) = got[mid]
        assert s.folder == LOCAL_OF.get(exp.folder, exp.folder), mid
        assert s.flags == exp.flags, (mid, s.flags, exp.flags)
        assert s.date == exp.date, mid
        assert s.data == exp.data, mid


def job_file(box: Box) -> Path:
    (path,) = list(st.state_dir(box.cfg.data_dir).glob("*.json"))
    return path


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_ten_thousand_messages_killed_halfway_then_resumed(
    dovecot: DovecotRef, tmp_path: Path
) -> None:
    box = new_box(tmp_path)
    expected = fill_dovecot(dovecot.instance.maildir(dovecot.user), BIG)
    assert len(expected) == 10_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", *import_args(box, dovecot)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(dovecot.password.encode() + b"\n")
    proc.stdin.close()
    deadline = time.monotonic() + 600
    copied = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            copied = json.loads(job_file(box).read_bytes())["copied"]
        except (ValueError, FileNotFoundError):
            continue
        if copied >= 5000:
            break
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = copied
    assert 5000 <= killed_at < 10_000
    partial = stored_messages(box)
    assert all(len(v) == 1 for v in partial.values())
    assert len(partial) >= killed_at

    r = run_import(box, dovecot)
    assert r.returncode == 0, r.stderr
    assert "copied 10000 (" in r.stdout
    check_arrived(box, expected)
    # and a third run copies nothing
    r = run_import(box, dovecot)
    assert r.returncode == 0 and "(0 in this run)" in r.stdout, r.stdout + r.stderr
    assert sum(len(v) for v in stored_messages(box).values()) == 10_000


SMALL = {"INBOX": 25, "Sent": 6, "Work": 10, "Work/Projects": 8, "Trash": 4}


def test_special_use_folders_dry_run_and_folder_map(dovecot: DovecotRef, tmp_path: Path) -> None:
    box = new_box(tmp_path)
    root = dovecot.instance.maildir(dovecot.user)
    expected = fill_dovecot(root, {**SMALL, "Sent Items": 3, "Deleted Items": 2})
    r = pillarbox(*import_args(box, dovecot, "--dry-run"), input=dovecot.password + "\n")
    lines = r.stdout.splitlines()
    assert any(line.split()[:2] == ["INBOX", "25"] for line in lines), r.stdout
    assert any("Sent Items" in line and "Sent (special-use \\Sent)" in line for line in lines)
    assert "total: 58 messages" in r.stdout and "no local quota" in r.stdout
    assert not stored_messages(box), "a dry run copies nothing"

    r = pillarbox(
        *import_args(box, dovecot, "--folder-map", "Work/Projects=Projects"),
        input=dovecot.password + "\n",
        check=False,
    )
    assert r.returncode == 0, r.stderr
    got = stored_messages(box)
    folders = {mid: v[0].folder for mid, v in got.items()}
    for mid, exp in expected.items():
        want = {"Sent Items": "Sent", "Deleted Items": "Trash", "Work/Projects": "Projects"}
        assert folders[mid] == want.get(exp.folder, exp.folder)
    assert sum(len(v) for v in got.values()) == 58


def test_quota_dry_run_refuses_and_import_stops_with_what_fits(
    dovecot: DovecotRef, tmp_path: Path
) -> None:
    box = new_box(tmp_path, quota=20_000)
    expected = fill_dovecot(dovecot.instance.maildir(dovecot.user), SMALL)
    r = pillarbox(
        *import_args(box, dovecot, "--dry-run"), input=dovecot.password + "\n", check=False
    )
    assert r.returncode == 1 and "does not fit the quota" in r.stderr
    r = pillarbox(*import_args(box, dovecot), input=dovecot.password + "\n", check=False)
    assert r.returncode == 1
    assert "quota of alice@example.org is full" in r.stderr
    assert "what was copied stays" in r.stderr
    kept = stored_messages(box)
    total = sum(len(s.data) for v in kept.values() for s in v)
    assert 0 < len(kept) < len(expected) and total <= 20_000
    assert all(len(v) == 1 for v in kept.values())
    # more room: the re-run copies the rest, nothing twice
    Accounts(box.cfg.accounts_db).set_quota(USER, 0)
    r = pillarbox(*import_args(box, dovecot), input=dovecot.password + "\n", check=False)
    assert r.returncode == 0, r.stderr
    check_arrived(box, expected)


def test_wrong_password_is_a_clear_error(dovecot: DovecotRef, tmp_path: Path) -> None:
    box = new_box(tmp_path)
    r = pillarbox(*import_args(box, dovecot), input="not-the-password\n", check=False)
    assert r.returncode == 1
    assert "refused the login for bench@bench.test" in r.stderr
    assert "app password" in r.stderr
    assert "Traceback" not in r.stderr


def test_unreachable_host_is_a_clear_error(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    port = free_port()  # nothing listens
    r = pillarbox(
        "import",
        "imap",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--user",
        "x",
        "--password-stdin",
        "--to",
        USER,
        "-c",
        str(box.path),
        input="pw\n",
        check=False,
    )
    assert r.returncode == 1
    assert f"cannot connect to 127.0.0.1 port {port}: Connection refused" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_folder_that_vanishes_mid_run_is_reported(dovecot: DovecotRef, tmp_path: Path) -> None:
    box = new_box(tmp_path)
    root = dovecot.instance.maildir(dovecot.user)
    expected = fill_dovecot(root, {"INBOX": 150, "Doomed": 20, "Work": 10})
    removed = threading.Event()

    def progress(state: st.JobState) -> None:
        # INBOX's first batch is in: the later folder goes away on the server
        if state.copied >= 100 and not removed.is_set():
            shutil.rmtree(root / ".Doomed")
            removed.set()

    params = {
        "kind": "imap",
        "user": USER,
        "host": "127.0.0.1",
        "port": dovecot.port,
        "login": dovecot.user,
        "verify": False,
    }
    job = runner.run(
        box.cfg,
        Accounts(box.cfg.accounts_db),
        box.store(),
        params,
        dovecot.password,
        on_progress=progress,
    )
    assert removed.is_set()
    assert job.status == "done" and job.failed == 1
    assert "folder 'Doomed' cannot be opened any more" in job.failures[0]
    got = stored_messages(box)
    want = {m for m, e in expected.items() if e.folder != "Doomed"}
    assert set(got) == want and all(len(v) == 1 for v in got.values())


class DroppingProxy:
    """TCP proxy to Dovecot that cuts each of the first ``drops`` connections after
    ``after`` bytes from the server (mid-FETCH), then passes the rest through."""

    def __init__(self, target: int, after: int, drops: int) -> None:
        self.target, self.after, self.drops = target, after, drops
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            limit = self.after if self.connections <= self.drops else None
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, limit), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


def test_dropped_connections_are_resumed_without_duplicates(
    dovecot: DovecotRef, tmp_path: Path
) -> None:
    box = new_box(tmp_path)
    expected = fill_dovecot(dovecot.instance.maildir(dovecot.user), {"INBOX": 300, "Work": 200})
    proxy = DroppingProxy(dovecot.port, after=150_000, drops=3)
    try:
        r = pillarbox(
            *import_args(box, dovecot, port=proxy.port), input=dovecot.password + "\n", check=False
        )
    finally:
        proxy.close()
    assert r.returncode == 0, r.stderr
    assert proxy.connections >= 4
    check_arrived(box, expected)


@pytest.mark.slow
def test_a_server_that_keeps_dropping_ends_with_a_clear_message(
    dovecot: DovecotRef, tmp_path: Path
) -> None:
    box = new_box(tmp_path)
    fill_dovecot(dovecot.instance.maildir(dovecot.user), {"INBOX": 300})
    proxy = DroppingProxy(dovecot.port, after=40_000, drops=1000)
    try:
        r = pillarbox(
            *import_args(box, dovecot, port=proxy.port), input=dovecot.password + "\n", check=False
        )
    finally:
        proxy.close()
    assert r.returncode == 1
    assert "gave up after 6 reconnects without progress" in r.stderr
    assert "what was copied stays, run again to resume" in r.stderr
    kept = stored_messages(box)
    assert all(len(v) == 1 for v in kept.values())


def test_uidvalidity_change_falls_back_to_message_id(dovecot: DovecotRef, tmp_path: Path) -> None:
    box = new_box(tmp_path)
    root = dovecot.instance.maildir(dovecot.user)
    expected = fill_dovecot(root, {"INBOX": 40})
    r = pillarbox(*import_args(box, dovecot), input=dovecot.password + "\n", check=False)
    assert r.returncode == 0, r.stderr
    # Dovecot renumbers the folder (new UIDVALIDITY) and one more message arrives
    time.sleep(1.1)  # Dovecot makes a new UIDVALIDITY from the clock
    for name in os.listdir(root):
        if name.startswith(("dovecot-uidlist", "dovecot.index")):
            (root / name).unlink()
    more = fill_dovecot(root, {"INBOX": 1}, seed=99)
    state = json.loads(job_file(box).read_bytes())
    old_validity = state["folders"]["INBOX"]["uidvalidity"]
    r = pillarbox(*import_args(box, dovecot), input=dovecot.password + "\n", check=False)
    assert r.returncode == 0, r.stderr
    state = json.loads(job_file(box).read_bytes())
    assert state["folders"]["INBOX"]["uidvalidity"] != old_validity
    assert "(1 in this run), skipped 40 duplicates" in r.stdout
    check_arrived(box, {**expected, **more})
