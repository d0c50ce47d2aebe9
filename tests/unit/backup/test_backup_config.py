from __future__ import annotations

from pathlib import Path

import pytest

from appliance import config
from appliance.backup.restic import NotConfigured, Restic, repository_for

BASE = 'dev = true\ndata_dir = "."\n'


def load(tmp_path: Path, backup: str) -> config.Config:
    return config.loads(BASE + "[backup]\n" + backup, tmp_path)


def test_default_is_no_target(tmp_path: Path) -> None:
    cfg = config.loads(BASE, tmp_path)
    assert cfg.backup.target == "none"
    assert cfg.backup.schedule == "daily" and cfg.backup.time == "03:30"
    assert (cfg.backup.keep_daily, cfg.backup.keep_weekly, cfg.backup.keep_monthly) == (7, 4, 12)
    assert cfg.backup.password_file == tmp_path / "backup" / "repository-password"
    with pytest.raises(NotConfigured):
        repository_for(cfg)


def test_local_target_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'target = "local"\npath = "usb/backup"\ntime = "4:05"\nkeep_daily = 2\n')
    assert cfg.backup.path == tmp_path / "usb" / "backup"
    assert cfg.backup.time == "04:05"
    assert cfg.backup.keep_daily == 2
    assert repository_for(cfg).location == str(tmp_path / "usb" / "backup")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('target = "ftp"', "backup.target"),
        ('target = "local"', "backup.path"),
        ('target = "sftp"', "backup.url"),
        ('target = "sftp"\nurl = "/just/a/path"', "backup.url"),
        ('target = "s3"\nurl = "bucket"', "backup.url"),
        ('target = "s3"\nurl = "https://s3.example/b"', "backup.s3_access_key_id"),
        ('target = "s3"\nurl = "https://k:s@s3.example/b"', "backup.url"),
        ('schedule = "hourly"', "backup.schedule"),
        ('time = "25:00"', "backup.time"),
        ("keep_daily = -1", "backup.keep_daily"),
        ("sftp_port = 0", "backup.sftp_port"),
        ('colour = "blue"', "backup.colour"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        load(tmp_path, text + "\n")
    assert err.value.key == key


def test_sftp_target_uses_key_based_ssh(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        'target = "sftp"\nurl = "pb@nas.lan:/srv/pb"\nsftp_identity = "id_ed25519"\n'
        "sftp_port = 2222\n",
    )
    repo = repository_for(cfg)
    assert repo.location == "sftp:pb@nas.lan:/srv/pb"
    (opt,) = repo.options
    assert opt.startswith("sftp.command=ssh -p 2222 -o BatchMode=yes")
    assert f"-i {tmp_path / 'id_ed25519'}" in opt
    assert opt.endswith("pb@nas.lan -s sftp")
    argv = Restic(repo).argv("snapshots")
    assert argv[:3] == ["restic", "--repo", "sftp:pb@nas.lan:/srv/pb"]
    assert ["-o", opt] == argv[argv.index("-o") : argv.index("-o") + 2]


def test_s3_secret_reaches_restic_only_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s3-secret").write_text("sEcReT\n")
    cfg = load(
        tmp_path,
        'target = "s3"\nurl = "https://s3.example.org/bucket/box"\n'
        's3_access_key_id = "AKIA1"\ns3_secret_file = "s3-secret"\n',
    )
    monkeypatch.setenv("RESTIC_PASSWORD", "stray")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "stray")
    r = Restic(repository_for(cfg))
    argv = r.argv("snapshots")
    assert argv[2] == "s3:https://s3.example.org/bucket/box"
    assert not any("sEcReT" in a for a in argv)
    env = r.env()
    assert env["AWS_ACCESS_KEY_ID"] == "AKIA1"
    assert env["AWS_SECRET_ACCESS_KEY"] == "sEcReT"
    assert "RESTIC_PASSWORD" not in env and "AWS_SESSION_TOKEN" not in env
    assert argv[argv.index("--password-file") + 1] == str(cfg.backup.password_file)
