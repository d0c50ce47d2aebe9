from __future__ import annotations

import socket

import pytest

from appliance import config
from appliance.backup import restore
from appliance.backup.restic import BackupError


def test_whole_box_restore_refuses_while_the_daemon_answers(cfg: config.Config) -> None:
    cfg.ctl_socket.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(cfg.ctl_socket))
        server.listen(1)
        assert restore.daemon_running(cfg)
        with pytest.raises(BackupError, match="stop the mail daemon"):
            restore.restore_box(cfg)
    cfg.ctl_socket.unlink()
    assert not restore.daemon_running(cfg)


@pytest.mark.parametrize(
    "bad", ["alice", "@example.org", "alice@", "../x@example.org", "a@..", ".x@example.org"]
)
def test_user_paths_cannot_escape_the_mail_dir(bad: str) -> None:
    with pytest.raises(BackupError, match="not a mail address"):
        restore.user_relpath(bad)


def test_user_path_is_domain_then_local_part() -> None:
    assert restore.user_relpath("Alice@Example.org").as_posix() == "example.org/alice"
