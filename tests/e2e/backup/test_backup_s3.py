"""The S3 target against a local S3-compatible server (moto's, on loopback)."""

from __future__ import annotations

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
from tests.harness import free_port, write_config

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")
USER = "gina@example.org"


@pytest.fixture
def s3() -> Iterator[str]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.slow
def test_backup_and_restore_over_s3(tmp_path: Path, s3: str) -> None:
    secret = tmp_path / "s3-secret"
    secret.write_text("test-secret-key\n")
    path = write_config(
        tmp_path / "box",
        backup={
            "target": "s3",
            "url": f"{s3}/pillarbox-backups/box1",
            "s3_access_key_id": "testing",
            "s3_secret_file": str(secret),
        },
    )
    cfg = config.load(path)
    acc = Accounts(cfg.accounts_db)
    acc.add_domain("example.org")
    store = open_store(cfg.mail_dir)
    store.ensure_user(USER)
    f = tmp_path / "m.eml"
    f.write_bytes(message(1, USER))
    store.append(USER, "INBOX", f, flags=["\\Seen"])

    init_repository(cfg)
    result = runner.BackupRunner(cfg, acc, user_lock=user_lock(store)).run()
    assert result.ok, result.error
    restic = Restic(repository_for(cfg))
    assert [s.short_id for s in restic.snapshots()] == [result.snapshot_id[:8]]
    restic.check()

    got = restore.restore_mailbox(cfg, store, USER)
    (m,) = store.snapshot(USER, f"{got.destination}/INBOX").messages
    assert m.flags == frozenset({"\\Seen"})
