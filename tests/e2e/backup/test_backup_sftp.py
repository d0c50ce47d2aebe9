"""The SFTP target against a real OpenSSH server on loopback (key-based, no password)."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import config
from appliance.accounts import Accounts
from appliance.backup import restore, runner
from appliance.backup.initialize import init_repository
from appliance.backup.restic import Restic, repository_for
from appliance.backup.store_lock import open_store, user_lock
from tests.e2e.backup.backup_box import message
from tests.harness import free_port, wait_port, write_config

SSHD = Path("/usr/sbin/sshd")
USER = "frank@example.org"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SSHD.exists() or shutil.which("ssh-keygen") is None or os.geteuid() != 0,
        reason="needs openssh-server (tests/apt-packages.txt) and root to run sshd",
    ),
]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host")], check=True
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client")], check=True
    )
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    log = (d / "sshd.log").open("wb")
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log
    )
    try:
        wait_port("127.0.0.1", port, timeout=20)
        yield port, d / "client"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_backup_and_restore_over_sftp(tmp_path: Path, sshd: tuple[int, Path]) -> None:
    port, key = sshd
    remote = tmp_path / "nas" / "pillarbox"
    path = write_config(
        tmp_path / "box",
        backup={
            "target": "sftp",
            "url": f"{getpass.getuser()}@127.0.0.1:{remote}",
            "sftp_port": port,
            "sftp_identity": str(key),
        },
    )
    cfg = config.load(path)
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    store = open_store(cfg.mail_dir)
    store.ensure_user(USER)
    f = tmp_path / "m.eml"
    f.write_bytes(message(1, USER))
    store.append(USER, "INBOX", f, flags=["\\Answered"])

    init_repository(cfg)
    assert (remote / "config").is_file()  # the repository lives on the "NAS"
    result = runner.BackupRunner(cfg, acc, user_lock=user_lock(store)).run()
    assert result.ok, result.error
    restic = Restic(repository_for(cfg))
    assert len(restic.snapshots()) == 1
    restic.check()

    got = restore.restore_mailbox(cfg, store, USER)
    (m,) = store.snapshot(USER, f"{got.destination}/INBOX").messages
    assert m.flags == frozenset({"\\Answered"})
    with store.open_message(USER, f"{got.destination}/INBOX", m.uid) as fh:
        assert fh.read() == message(1, USER)
