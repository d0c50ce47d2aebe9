#!/usr/bin/env python3
"""The one program the unprivileged web UI may run as root (through sudo).

Reads one JSON request on stdin, ``{"action": "disk.format", "args": {...}}``, and
writes one JSON answer on stdout, ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
Only the actions in ACTIONS exist; every argument is checked by type and pattern; unknown
arguments are refused; commands run with a fixed argv, never through a shell.

Actions:
  smart            {device}                 smartctl --json -a DEVICE, summarised
  disk.format      {device, confirm, label} mkfs.ext4 on a whole disk; confirm must be
                                            "ERASE <name>"; never a disk that is mounted
                                            or holds the running system
  disk.mount       {uuid}                   mount the file system at MAIL_MOUNT, add fstab
  cert.install     {cert_pem, key_pem}      install a checked certificate and key in TLS_DIR
  system.reboot    {}                       systemctl reboot
  system.shutdown  {}                       systemctl poweroff
  webmail.apply    {enabled}                the web UI switched webmail in pillarbox.toml:
                                            restart (on; its ExecCondition reads the file)
                                            or stop pillarbox-webmail.service

Test mode: ``--dry-run`` or PILLARBOX_ROOT_HELPER_FAKE=<file> validates as usual but runs
nothing: each command is appended to <file> (JSON lines) and echoed in the answer as
"commands". PILLARBOX_ROOT_HELPER_MOUNTS may then name a mounts table to check against.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_REQUEST = 256 * 1024
MAIL_MOUNT = Path("/var/lib/pillarbox/mail")
TLS_DIR = Path("/var/lib/pillarbox/tls")
FSTAB = Path("/etc/fstab")
ISSUE = Path("/etc/issue.d/50-pillarbox.issue")  # the console banner first-boot.sh writes
# Once the first admin exists the setup secret is void: the banner keeps the address only.
ISSUE_AFTER_SETUP = (
    "Pillarbox mail appliance - \\4 - \\n\n  Dashboard:      http://\\n.local/  or  http://\\4/\n\n"
)
FAKE_UUID = "00000000-0000-4000-8000-000000000000"

# Matched with fullmatch: "$" alone would accept a trailing newline ("/dev/sdb\n").
DEVICE_RE = re.compile(
    r"/dev/(sd[a-z]{1,2}|vd[a-z]{1,2}|xvd[a-z]{1,2}|nvme\d{1,2}n\d{1,2}|mmcblk\d{1,2})"
)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LABEL_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
PEM_MAX = 64 * 1024


class Refused(Exception):
    """The request is not allowed; the text goes back to the caller."""


@dataclass
class Runner:
    """Runs fixed argv lists, or records them in test mode."""

    fake: bool
    record: Path | None = None
    commands: list[list[str]] = field(default_factory=list)

    def run(self, argv: list[str], timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        self.commands.append(argv)
        if self.fake:
            if self.record is not None:
                with self.record.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(argv) + "\n")
            return subprocess.CompletedProcess(argv, 0, "", "")
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        )


# ------------------------------------------------------------------ argument checks


def _args(args: Mapping[str, Any], spec: Mapping[str, type]) -> dict[str, Any]:
    unknown = set(args) - set(spec)
    if unknown:
        raise Refused(f"unknown argument {sorted(unknown)[0]!r}")
    out: dict[str, Any] = {}
    for name, kind in spec.items():
        if name not in args:
            raise Refused(f"missing argument {name!r}")
        value = args[name]
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise Refused(f"argument {name!r} must be a {kind.__name__}")
        out[name] = value
    return out


def _device(value: str, fake: bool) -> str:
    if not DEVICE_RE.fullmatch(value):
        raise Refused("device must be a whole disk such as /dev/sdb or /dev/nvme0n1")
    if not fake:
        try:
            if not stat.S_ISBLK(os.stat(value).st_mode):
                raise Refused(f"{value} is not a block device")
        except FileNotFoundError:
            raise Refused(f"{value} does not exist") from None
    return value


def _mounts(fake: bool) -> list[tuple[str, str]]:
    """(source, mount point) rows; a test table is honoured only in test mode."""
    table = "/proc/self/mounts"
    if fake:
        table = os.environ.get("PILLARBOX_ROOT_HELPER_MOUNTS", table)
    rows = []
    for line in Path(table).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            rows.append((parts[0], parts[1].replace("\\040", " ")))
    return rows


def _in_use(device: str, fake: bool) -> str | None:
    """Where the disk or one of its partitions is mounted, if anywhere."""
    part = re.compile(re.escape(device) + r"(p?\d+)?")
    for source, target in _mounts(fake):
        real = os.path.realpath(source) if source.startswith("/dev/") else source
        if part.fullmatch(source) or part.fullmatch(real):
            return target
    return None


def _holds_root(device: str) -> bool:
    """True when the running system's / lives on this disk (checked by device number)."""
    name = device.removeprefix("/dev/")
    root = os.stat("/").st_dev
    base = Path("/sys/class/block") / name
    if not base.exists():
        return False
    candidates = [base, *(p for p in base.iterdir() if p.name.startswith(name))]
    for cand in candidates:
        try:
            major, minor = (int(x) for x in (cand / "dev").read_text().strip().split(":"))
        except (OSError, ValueError):
            continue
        if os.makedev(major, minor) == root:
            return True
    return False


# ------------------------------------------------------------------ actions


def smart(args: Mapping[str, Any], run: Runner) -> dict[str, Any]:
    a = _args(args, {"device": str})
    dev = _device(a["device"], run.fake)
    proc = run.run(["smartctl", "--json", "-a", dev], timeout=120)
    if run.fake:
        return {"device": dev, "smart": {}}
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise Refused("smartctl gave no readable answer") from None
    if proc.returncode & 0b11:  # bits 0-1: bad command line / device open failed
        raise Refused(f"smartctl could not read {dev} (exit {proc.returncode})")
    status = data.get("smart_status", {})
    # ATA attributes 5 (reallocated) and 197 (pending) by id; NVMe has no such counters.
    raw = {
        a.get("id"): (a.get("raw") or {}).get("value")
        for a in (data.get("ata_smart_attributes") or {}).get("table", [])
        if isinstance(a, dict)
    }
    return {
        "device": dev,
        "smart": {
            "passed": status.get("passed") if isinstance(status, dict) else None,
            "model": data.get("model_name", ""),
            "serial": data.get("serial_number", ""),
            "temperature": (data.get("temperature") or {}).get("current"),
            "power_on_hours": (data.get("power_on_time") or {}).get("hours"),
            "reallocated_sectors": raw.get(5),
            "pending_sectors": raw.get(197),
            "exit_status": proc.returncode,
        },
    }


def disk_format(args: Mapping[str, Any], run: Runner) -> dict[str, Any]:
    a = _args(args, {"device": str, "confirm": str, "label": str})
    dev = _device(a["device"], run.fake)
    name = dev.removeprefix("/dev/")
    if a["confirm"] != f"ERASE {name}":
        raise Refused(f"confirmation must be exactly 'ERASE {name}'")
    if not LABEL_RE.fullmatch(a["label"]):
        raise Refused("label: 1-16 letters, digits, '-' or '_'")
    where = _in_use(dev, run.fake)
    if where == "/" or _holds_root(dev):
        raise Refused(f"{dev} holds the running system; it cannot be formatted")
    if where is not None:
        raise Refused(f"{dev} is in use (mounted at {where}); unmount it first")
    wipe = run.run(["wipefs", "--all", dev])
    if wipe.returncode:
        raise Refused(f"wipefs failed: {wipe.stderr.strip()[-300:]}")
    mkfs = run.run(
        ["mkfs.ext4", "-F", "-q", "-L", a["label"], "-m", "1", "-E", "lazy_itable_init=1", dev],
        timeout=3600,
    )
    if mkfs.returncode:
        raise Refused(f"mkfs.ext4 failed: {mkfs.stderr.strip()[-300:]}")
    blkid = run.run(["blkid", "-s", "UUID", "-o", "value", dev])
    uuid = FAKE_UUID if run.fake else blkid.stdout.strip()
    if not UUID_RE.fullmatch(uuid):
        raise Refused("the new file system has no UUID")
    return {"device": dev, "uuid": uuid}


def disk_mount(args: Mapping[str, Any], run: Runner) -> dict[str, Any]:
    a = _args(args, {"uuid": str})
    uuid = a["uuid"].lower()
    if not UUID_RE.fullmatch(uuid):
        raise Refused("uuid must look like 0a1b2c3d-1111-2222-3333-444455556666")
    taken = [source for source, target in _mounts(run.fake) if target == str(MAIL_MOUNT)]
    if taken:
        raise Refused(f"{MAIL_MOUNT} already has {taken[0]} mounted")
    fstab_line = f"UUID={uuid} {MAIL_MOUNT} ext4 defaults,noatime,nofail 0 2\n"
    if not run.fake:
        MAIL_MOUNT.mkdir(parents=True, exist_ok=True)
    mount = run.run(["mount", "-o", "noatime", f"UUID={uuid}", str(MAIL_MOUNT)])
    if mount.returncode:
        raise Refused(f"mount failed: {mount.stderr.strip()[-300:]}")
    if run.fake:
        run.commands.append(["fstab-append", fstab_line.strip()])
    else:
        _fstab_add(uuid, fstab_line)
        run.run(["chown", "pillarbox:pillarbox", str(MAIL_MOUNT)])
    return {"uuid": uuid, "mountpoint": str(MAIL_MOUNT)}


def _fstab_add(uuid: str, line: str) -> None:
    text = FSTAB.read_text(encoding="utf-8") if FSTAB.exists() else ""
    kept = [x for x in text.splitlines(keepends=True) if str(MAIL_MOUNT) not in x.split()[1:2]]
    new = "".join(kept)
    if new and not new.endswith("\n"):
        new += "\n"
    tmp = FSTAB.with_name(".fstab.pillarbox.tmp")
    tmp.write_text(new + line, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, FSTAB)


def cert_install(args: Mapping[str, Any], run: Runner) -> dict[str, Any]:
    a = _args(args, {"cert_pem": str, "key_pem": str})
    cert, key = a["cert_pem"], a["key_pem"]
    if len(cert) > PEM_MAX or "-----BEGIN CERTIFICATE-----" not in cert:
        raise Refused("cert_pem must be a PEM certificate chain")
    if len(key) > PEM_MAX or not re.search(r"-----BEGIN (RSA |EC )?PRIVATE KEY-----", key):
        raise Refused("key_pem must be a PEM private key")
    _check_pair(cert.encode(), key.encode())
    targets = (TLS_DIR / "cert.pem", TLS_DIR / "key.pem")
    if run.fake:
        run.commands.append(["install-cert", str(targets[0]), str(targets[1])])
        return {"cert": str(targets[0]), "key": str(targets[1])}
    TLS_DIR.mkdir(parents=True, exist_ok=True)
    for path, data, mode in ((targets[1], key, 0o640), (targets[0], cert, 0o644)):
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    run.run(["chgrp", "pillarbox", str(targets[1])])
    return {"cert": str(targets[0]), "key": str(targets[1])}


def _check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, IndexError):
        raise Refused(
            "certificate or key cannot be read (encrypted keys are not supported)"
        ) from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if leaf.public_key().public_bytes(enc, pub) != private.public_key().public_bytes(enc, pub):
        raise Refused("the key does not belong to the certificate")


def _power(verb: str) -> Callable[[Mapping[str, Any], Runner], dict[str, Any]]:
    def action(args: Mapping[str, Any], run: Runner) -> dict[str, Any]:
        _args(args, {})
        proc = run.run(["systemctl", verb])
        if proc.returncode:
            raise Refused(f"systemctl {verb} failed")
        return {}

    return action


WEBMAIL_UNIT = "pillarbox-webmail.service"


def webmail_apply(args: Mapping[str, Any], run: Runner) -> dict[str, Any]:
    """Make the webmail unit follow the switch the web UI just saved."""
    enabled: bool = _args(args, {"enabled": bool})["enabled"]
    verb = "restart" if enabled else "stop"
    proc = run.run(["systemctl", verb, WEBMAIL_UNIT], timeout=60.0)
    if proc.returncode:
        raise Refused(f"systemctl {verb} {WEBMAIL_UNIT} failed")
    return {"unit": WEBMAIL_UNIT, "active": enabled}


def setup_done(args: Mapping[str, Any], run: Runner) -> dict[str, Any]:
    """The wizard made the first admin: take the setup secret off the console banner."""
    _args(args, {})
    if run.fake:  # recorded, not written
        run.run(["write-issue", str(ISSUE)])
        return {"issue": str(ISSUE)}
    if ISSUE.parent.is_dir():
        tmp = ISSUE.with_name(f".{ISSUE.name}.tmp")
        tmp.write_text(ISSUE_AFTER_SETUP, encoding="ascii")
        os.chmod(tmp, 0o644)
        os.replace(tmp, ISSUE)
    return {"issue": str(ISSUE)}


ACTIONS: dict[str, Callable[[Mapping[str, Any], Runner], dict[str, Any]]] = {
    "setup.done": setup_done,
    "smart": smart,
    "disk.format": disk_format,
    "disk.mount": disk_mount,
    "cert.install": cert_install,
    "system.reboot": _power("reboot"),
    "system.shutdown": _power("poweroff"),
    "webmail.apply": webmail_apply,
}


def handle(raw: str, run: Runner) -> dict[str, Any]:
    try:
        request = json.loads(raw)
    except json.JSONDecodeError:
        raise Refused("request is not JSON") from None
    if not isinstance(request, dict) or set(request) - {"action", "args"}:
        raise Refused('request must be {"action": ..., "args": {...}}')
    action = request.get("action")
    args = request.get("args", {})
    if not isinstance(action, str) or action not in ACTIONS:
        raise Refused(f"unknown action {action!r}; allowed: {', '.join(sorted(ACTIONS))}")
    if not isinstance(args, dict):
        raise Refused("args must be an object")
    return ACTIONS[action](args, run)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--dry-run"]):
        print(
            json.dumps({"ok": False, "error": "usage: root_helper.py [--dry-run] < request.json"})
        )
        return 2
    record = os.environ.get("PILLARBOX_ROOT_HELPER_FAKE")
    fake = bool(record) or argv == ["--dry-run"]
    if not fake and os.geteuid() != 0:
        print(json.dumps({"ok": False, "error": "the root helper must run as root"}))
        return 1
    run = Runner(fake, Path(record) if record else None)
    raw = sys.stdin.read(MAX_REQUEST + 1)
    try:
        if len(raw) > MAX_REQUEST:
            raise Refused("request too large")
        result = handle(raw, run)
    except Refused as exc:
        reply: dict[str, Any] = {"ok": False, "error": str(exc)}
        code = 1
    except (OSError, subprocess.SubprocessError) as exc:
        reply = {"ok": False, "error": f"system error: {exc.__class__.__name__}"}
        code = 1
    else:
        reply = {"ok": True, **result}
        code = 0
    if fake:
        reply["commands"] = run.commands
    print(json.dumps(reply))
    return code


if __name__ == "__main__":
    sys.exit(main())
