"""Issue 16 (Low): the mail daemon must not be able to write accounts.sqlite or the web
session key. The daemon opens the accounts read-only (mode=ro) outside dev mode; the
appliance gives the files to pillarbox-web (firmware-hooks/state_perms.py, run by both
units); a read-only reader still reads a live WAL database.

The tests run as root in CI, where file modes stop nothing: the read-only connection
is asserted directly, and the cross-user cases run child processes under other uids
(setpriv) where that is possible.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from appliance import config
from appliance.accounts import AccountError, Accounts, ReadOnly
from appliance.daemon import open_accounts

REPO = Path(__file__).resolve().parents[3]
HOOKS = REPO / "firmware-hooks"
PW = "correct horse battery"
ANNA = "anna@example.org"
WEB_UID = 12345  # stands for pillarbox-web
DAEMON_UID = 65534  # nobody, stands for pillarbox
GROUP_GID = 65534  # nogroup, stands for the shared pillarbox group


def _state_perms() -> ModuleType:
    spec = importlib.util.spec_from_file_location("state_perms", HOOKS / "state_perms.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _appliance_config(tmp_path: Path) -> config.Config:
    path = tmp_path / "pillarbox.toml"
    path.write_text(f'hostname = "mail.example.org"\ndata_dir = "{tmp_path / "state"}"\n')
    return config.load(path)


def _writer(path: Path) -> Accounts:
    acc = Accounts(path)
    acc.add_domain("example.org")
    acc.add_user(ANNA, PW)
    return acc


def test_daemon_opens_accounts_read_only_outside_dev_mode(tmp_path: Path) -> None:
    cfg = _appliance_config(tmp_path)
    assert not cfg.dev
    web = _writer(cfg.accounts_db)  # the web UI's connection keeps the WAL alive
    ctx = SimpleNamespace(accounts=open_accounts(cfg))  # as appliance.daemon.build opens it
    assert ctx.accounts.readonly
    with pytest.raises(sqlite3.OperationalError, match="readonly database"):
        ctx.accounts._conn().execute("UPDATE users SET is_admin=1")
    with pytest.raises(ReadOnly):
        ctx.accounts.add_user("mallory@example.org", PW, is_admin=True)
    assert ctx.accounts.authenticate(ANNA, PW) is not None
    web.add_user("bob@example.org", PW)  # the reader sees the writer's later commits
    assert ctx.accounts.get_user("bob@example.org") is not None
    web.close()


def test_dev_mode_daemon_still_writes(tmp_path: Path) -> None:
    cfg_path = tmp_path / "pillarbox.toml"
    cfg_path.write_text('dev = true\nhostname = "mail.pillarbox.test"\ndata_dir = "."\n')
    ctx = SimpleNamespace(accounts=open_accounts(config.load(cfg_path)))
    assert not ctx.accounts.readonly
    ctx.accounts.add_domain("pillarbox.test")  # devrun adds the dev domain this way


def test_read_only_app_password_use_goes_to_the_side_file(tmp_path: Path) -> None:
    db = tmp_path / "accounts.sqlite"
    web = _writer(db)
    app, secret = web.add_app_password(ANNA, "phone")
    daemon = Accounts(db, readonly=True)
    assert daemon.authenticate(ANNA, secret) is not None
    assert (tmp_path / "app-password-usage.json").is_file()
    (listed,) = web.list_app_passwords(ANNA)
    assert listed.id == app.id and listed.last_used is not None
    (tmp_path / "app-password-usage.json").write_text('{"x": "junk", "5": [1]}')
    assert web.list_app_passwords(ANNA)[0].last_used is None  # junk is ignored


def test_read_only_needs_an_existing_database(tmp_path: Path) -> None:
    with pytest.raises(AccountError, match="does not exist"):
        Accounts(tmp_path / "missing.sqlite", readonly=True)


def test_state_perms_gives_accounts_to_the_web_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    state = tmp_path / "state"
    state.mkdir()
    web = _writer(state / "accounts.sqlite")
    web.close()  # last connection: SQLite removes -wal and -shm
    os.chown(state / "accounts.sqlite", DAEMON_UID, GROUP_GID)  # the old layout
    key = state / "web-session-key"
    key.write_text("k" * 64)
    os.chown(key, DAEMON_UID, GROUP_GID)  # planted by the daemon
    secret = state / "setup-secret"
    secret.write_text("ABCD-EFGH")  # written by root: handed over
    _state_perms().fix(
        state, web_uid=WEB_UID, web_gid=WEB_UID, group_gid=GROUP_GID, daemon_uid=DAEMON_UID
    )
    st = state.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, GROUP_GID, 0o3770)
    for name in ("accounts.sqlite", "accounts.sqlite-wal", "accounts.sqlite-shm"):
        st = (state / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (WEB_UID, GROUP_GID, 0o640), name
    assert not key.exists() and list(state.glob("web-session-key.foreign-*"))
    st = secret.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (WEB_UID, 0o600)


def _as(uid: int, gid: int, code: str) -> subprocess.CompletedProcess[str]:
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    return subprocess.run(
        [*setpriv, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def appliance_state() -> Iterator[Path]:
    """The appliance layout in a fresh directory, after state_perms.fix (not under
    pytest's tmp_path: that is private to root, and the children run as other uids)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run children under other uids")
    probe = _as(DAEMON_UID, GROUP_GID, "import appliance.accounts")
    if probe.returncode != 0:
        pytest.skip(f"cannot run the package as another uid: {probe.stderr[-300:]}")
    with tempfile.TemporaryDirectory(prefix="pillarbox-privsep-") as top:
        Path(top).chmod(0o755)
        state = Path(top) / "state"
        state.mkdir()
        _writer(state / "accounts.sqlite").close()
        _state_perms().fix(
            state, web_uid=WEB_UID, web_gid=WEB_UID, group_gid=GROUP_GID, daemon_uid=DAEMON_UID
        )
        yield state


def test_daemon_user_reads_but_cannot_write_or_replace(appliance_state: Path) -> None:
    db = appliance_state / "accounts.sqlite"
    code = f"""
import os, sqlite3
from pathlib import Path
from appliance.accounts import Accounts, ReadOnly
a = Accounts(Path({str(db)!r}), readonly=True)
assert a.get_user({ANNA!r}) is not None
w = Accounts(Path({str(db)!r}))  # asks for read-write: not writable, so read-only
assert w.readonly
try:
    w._conn().execute("DELETE FROM users")
except sqlite3.OperationalError as exc:
    assert "readonly" in str(exc)
else:
    raise SystemExit("wrote through the connection")
for attempt in (lambda: w.add_user("m@example.org", "x" * 12),
                lambda: open({str(db)!r}, "r+b"),
                lambda: os.rename({str(db)!r}, {str(db) + ".x"!r}),
                lambda: os.unlink({str(db) + "-wal"!r})):
    try:
        attempt()
    except (ReadOnly, sqlite3.OperationalError, PermissionError):
        pass
    else:
        raise SystemExit("the daemon user could change the accounts")
print("ok")
"""
    proc = _as(DAEMON_UID, GROUP_GID, code)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_web_user_refuses_a_planted_wal(appliance_state: Path) -> None:
    db = appliance_state / "accounts.sqlite"
    wal = Path(f"{db}-wal")
    wal.unlink()
    wal.write_bytes(b"")
    os.chown(wal, DAEMON_UID, GROUP_GID)  # as if the daemon had created it
    code = f"""
from pathlib import Path
from appliance.accounts import AccountError, Accounts
try:
    Accounts(Path({str(db)!r}))
except AccountError as exc:
    print("refused", exc)
"""
    proc = _as(WEB_UID, GROUP_GID, code)
    assert proc.stdout.startswith("refused"), proc.stdout + proc.stderr
    _state_perms().fix(
        appliance_state,
        web_uid=WEB_UID,
        web_gid=WEB_UID,
        group_gid=GROUP_GID,
        daemon_uid=DAEMON_UID,
    )
    assert wal.stat().st_uid == WEB_UID and wal.stat().st_size == 0
    assert list(appliance_state.glob("accounts.sqlite-wal.foreign-*"))


def test_daemon_user_does_not_create_the_wal_files(appliance_state: Path) -> None:
    db = appliance_state / "accounts.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink()
    code = f"""
from pathlib import Path
from appliance.accounts import AccountError, Accounts
try:
    Accounts(Path({str(db)!r}), readonly=True)
except AccountError as exc:
    print("refused", exc)
"""
    proc = _as(DAEMON_UID, GROUP_GID, code)
    assert proc.stdout.startswith("refused"), proc.stdout + proc.stderr
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()


def test_units_and_tmpfiles_set_the_owners() -> None:
    tmpfiles = (HOOKS / "conf" / "tmpfiles.conf").read_text().splitlines()
    assert "d /var/lib/pillarbox 3770 root pillarbox -" in tmpfiles
    perms = "ExecStartPre=+/opt/pillarbox/bin/python /usr/lib/pillarbox/state_perms.py"
    for unit in ("pillarbox.service", "pillarbox-web.service"):
        lines = (HOOKS / "systemd" / unit).read_text().splitlines()
        assert perms in lines, unit
    daemon = (HOOKS / "systemd" / "pillarbox.service").read_text().splitlines()
    assert "User=pillarbox" in daemon and not any(
        "pillarbox-web" in ln for ln in daemon if "Groups" in ln
    )
    sysusers = (HOOKS / "conf" / "sysusers.conf").read_text().splitlines()
    assert "m pillarbox-web pillarbox" in sysusers
    assert not any(ln.startswith("m pillarbox pillarbox-web") for ln in sysusers)
    assert '"$PYTHON" "$LIBDIR/state_perms.py"' in (HOOKS / "first-boot.sh").read_text()
    customize = (REPO / "image" / "customize.sh").read_text()
    assert '"$HOOKS/state_perms.py" "$lib/state_perms.py"' in customize
    mod = _state_perms()
    assert (mod.ACCOUNTS_MODE, mod.SECRET_MODE, mod.DIR_MODE) == (0o640, 0o600, 0o3770)
