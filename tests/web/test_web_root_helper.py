"""The root helper as a program: typed JSON in, JSON out, commands recorded in fake mode."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.web.web_helpers import HELPER


def run(
    request: Any, tmp_path: Path, *, mounts: str | None = None, argv: tuple[str, ...] = ()
) -> tuple[int, dict[str, Any], list[list[str]]]:
    record = tmp_path / "cmds.jsonl"
    env = {"PATH": os.environ["PATH"], "PILLARBOX_ROOT_HELPER_FAKE": str(record)}
    if mounts is not None:
        table = tmp_path / "mounts"
        table.write_text(mounts)
        env["PILLARBOX_ROOT_HELPER_MOUNTS"] = str(table)
    raw = request if isinstance(request, str) else json.dumps(request)
    proc = subprocess.run(
        [sys.executable, str(HELPER), *argv],
        input=raw,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    reply = json.loads(proc.stdout)
    commands = [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []
    return proc.returncode, reply, commands


MOUNTS = "/dev/sda1 / ext4 rw 0 0\n/dev/sdc2 /media/usb vfat rw 0 0\nproc /proc proc rw 0 0\n"


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ("not json", "not JSON"),
        ([1, 2], "must be"),
        ({"action": "shell", "args": {}}, "unknown action"),
        ({"action": "smart", "args": {}, "extra": 1}, "must be"),
        ({"action": "smart", "args": []}, "args must be an object"),
        ({"action": "smart", "args": {"device": "/dev/sdb", "x": 1}}, "unknown argument 'x'"),
        ({"action": "smart", "args": {}}, "missing argument 'device'"),
        ({"action": "smart", "args": {"device": 5}}, "must be a str"),
        ({"action": "smart", "args": {"device": "/dev/sdb1"}}, "whole disk"),
        ({"action": "smart", "args": {"device": "/dev/sdb; reboot"}}, "whole disk"),
        ({"action": "smart", "args": {"device": "/dev/../etc/passwd"}}, "whole disk"),
        ({"action": "disk.mount", "args": {"uuid": "../../etc"}}, "uuid must look like"),
        ({"action": "system.reboot", "args": {"now": True}}, "unknown argument"),
    ],
)
def test_bad_requests_refused_and_nothing_runs(tmp_path: Path, request_: Any, error: str) -> None:
    code, reply, commands = run(request_, tmp_path)
    assert code == 1
    assert reply["ok"] is False and error in reply["error"]
    assert commands == []


def test_request_too_large(tmp_path: Path) -> None:
    code, reply, _ = run("x" * (300 * 1024), tmp_path)
    assert code == 1 and "too large" in reply["error"]


def test_usage(tmp_path: Path) -> None:
    code, reply, _ = run({}, tmp_path, argv=("--bogus",))
    assert code == 2 and "usage" in reply["error"]


def test_dry_run_flag_records_in_reply(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(HELPER), "--dry-run"],
        input=json.dumps({"action": "system.shutdown", "args": {}}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    reply = json.loads(proc.stdout)
    assert reply == {"ok": True, "commands": [["systemctl", "poweroff"]]}


def test_smart(tmp_path: Path) -> None:
    code, reply, commands = run({"action": "smart", "args": {"device": "/dev/nvme0n1"}}, tmp_path)
    assert code == 0 and reply["ok"]
    assert commands == [["smartctl", "--json", "-a", "/dev/nvme0n1"]]


FORMAT = {
    "action": "disk.format",
    "args": {"device": "/dev/sdb", "confirm": "ERASE sdb", "label": "pillarbox"},
}


def test_format(tmp_path: Path) -> None:
    code, reply, commands = run(FORMAT, tmp_path, mounts=MOUNTS)
    assert code == 0 and reply["uuid"] == "00000000-0000-4000-8000-000000000000"
    assert [c[0] for c in commands] == ["wipefs", "mkfs.ext4", "blkid"]
    assert commands[1][-1] == "/dev/sdb"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"confirm": "ERASE sdc"}, "confirmation must be exactly 'ERASE sdb'"),
        ({"confirm": "erase sdb"}, "confirmation"),
        ({"label": "bad label!"}, "label"),
        ({"device": "/dev/sda", "confirm": "ERASE sda"}, "holds the running system"),
        ({"device": "/dev/sdc", "confirm": "ERASE sdc"}, "in use (mounted at /media/usb)"),
    ],
)
def test_format_refusals(tmp_path: Path, changes: dict[str, str], error: str) -> None:
    request = {"action": "disk.format", "args": {**FORMAT["args"], **changes}}  # type: ignore[dict-item]
    code, reply, commands = run(request, tmp_path, mounts=MOUNTS)
    assert code == 1 and error in reply["error"]
    assert commands == []


def test_mount(tmp_path: Path) -> None:
    uuid = "0a1b2c3d-1111-2222-3333-444455556666"
    code, reply, commands = run({"action": "disk.mount", "args": {"uuid": uuid.upper()}}, tmp_path)
    assert code == 0 and reply["mountpoint"] == "/var/lib/pillarbox/mail"
    assert commands == [["mount", "-o", "noatime", f"UUID={uuid}", "/var/lib/pillarbox/mail"]]
    assert reply["commands"][-1][0] == "fstab-append"
    assert "nofail" in reply["commands"][-1][1]


def test_mount_refused_when_mail_mount_taken(tmp_path: Path) -> None:
    uuid = "0a1b2c3d-1111-2222-3333-444455556666"
    code, reply, commands = run(
        {"action": "disk.mount", "args": {"uuid": uuid}},
        tmp_path,
        mounts=MOUNTS + "/dev/sdd /var/lib/pillarbox/mail ext4 rw 0 0\n",
    )
    assert code == 1 and "already has /dev/sdd mounted" in reply["error"]
    assert commands == []


def _pair(hostname: str = "mail.example.org") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_cert_install(tmp_path: Path) -> None:
    cert, key = _pair()
    code, reply, _ = run(
        {"action": "cert.install", "args": {"cert_pem": cert, "key_pem": key}}, tmp_path
    )
    assert code == 0 and reply["cert"] == "/var/lib/pillarbox/tls/cert.pem"
    assert reply["commands"] == [
        ["install-cert", "/var/lib/pillarbox/tls/cert.pem", "/var/lib/pillarbox/tls/key.pem"]
    ]


def test_cert_install_refuses_mismatched_key(tmp_path: Path) -> None:
    cert, _ = _pair()
    _, other_key = _pair()
    code, reply, _ = run(
        {"action": "cert.install", "args": {"cert_pem": cert, "key_pem": other_key}}, tmp_path
    )
    assert code == 1 and "does not belong" in reply["error"]


def test_cert_install_refuses_non_pem(tmp_path: Path) -> None:
    code, reply, _ = run(
        {"action": "cert.install", "args": {"cert_pem": "hello", "key_pem": "world"}}, tmp_path
    )
    assert code == 1 and "PEM" in reply["error"]


def test_real_mode_refuses_non_root() -> None:
    """Without the fake switch an unprivileged caller is refused before anything runs."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop privileges")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = subprocess.run(
        [*prefix, sys.executable, str(HELPER)],
        input=json.dumps({"action": "system.reboot", "args": {}}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert proc.returncode == 1
    assert "must run as root" in json.loads(proc.stdout)["error"]


def test_real_mode_checks_the_device_exists(tmp_path: Path) -> None:
    """Real mode (root, no fake switch) refuses a missing device before running anything."""
    if os.geteuid() != 0:
        pytest.skip("real mode needs root")
    proc = subprocess.run(
        [sys.executable, str(HELPER)],
        input=json.dumps({"action": "smart", "args": {"device": "/dev/sdzz"}}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    reply = json.loads(proc.stdout)
    assert reply == {"ok": False, "error": "/dev/sdzz does not exist"}


def test_smart_summary_reads_sector_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import subprocess as sp

    spec = importlib.util.spec_from_file_location("root_helper_under_test", HELPER)
    assert spec is not None and spec.loader is not None
    helper = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = helper  # dataclasses look the module up by name
    spec.loader.exec_module(helper)
    answer = {
        "smart_status": {"passed": True},
        "model_name": "Disk",
        "temperature": {"current": 41},
        "power_on_time": {"hours": 1200},
        "ata_smart_attributes": {
            "table": [{"id": 5, "raw": {"value": 8}}, {"id": 197, "raw": {"value": 2}}]
        },
    }

    class Canned(helper.Runner):  # type: ignore[name-defined,misc]
        def run(self, argv: list[str], timeout: float = 600.0) -> sp.CompletedProcess[str]:
            return sp.CompletedProcess(argv, 0, json.dumps(answer), "")

    monkeypatch.setattr(helper, "_device", lambda value, fake: value)
    smart = helper.smart({"device": "/dev/sdb"}, Canned(fake=False))["smart"]
    assert smart["passed"] is True and smart["temperature"] == 41
    assert smart["reallocated_sectors"] == 8 and smart["pending_sectors"] == 2


def test_setup_done_rewrites_the_banner_without_the_secret(tmp_path: Path) -> None:
    rc, reply, commands = run({"action": "setup.done", "args": {}}, tmp_path)
    assert rc == 0 and reply["ok"] is True
    assert commands == [["write-issue", "/etc/issue.d/50-pillarbox.issue"]]
    rc, reply, _ = run({"action": "setup.done", "args": {"secret": "x"}}, tmp_path)
    assert rc != 0 and "unknown argument" in reply["error"]
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_helper", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["root_helper"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["root_helper"]
    banner = module.ISSUE_AFTER_SETUP
    assert "secret" not in banner.lower() and "http://\\n.local/" in banner
