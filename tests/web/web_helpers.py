"""Helpers for the web UI tests: fakes for DNS, the daemon ctl socket, disks and hardware,
the root helper in record mode, and CSRF-aware form posting."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient

from appliance import config
from appliance.accounts import Accounts, LoginThrottle
from appliance.ctl.protocol import CtlError
from appliance.dns import SyncResolver
from appliance.queue import dkim
from appliance.setupsecret import read_or_create_secret
from tests.dnsfake import FakeResolver
from tests.harness import REPO, write_config
from tests.web import relay_helpers
from webui import create_app, dnscheck
from webui.disks import Disk, Partition
from webui.helper import RootHelper
from webui.sizing import GiB, Hardware

HELPER = REPO / "firmware-hooks" / "root_helper.py"
ADMIN = "admin@pillarbox.test"
PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


BACKUPS_OFF: dict[str, Any] = {
    "state": "never",
    "target": "none",
    "schedule": "daily",
    "time": "03:30",
    "next_run": None,
    "restore": {"state": "idle"},
}


def backup_run(ok: bool, finished: float, error: str = "") -> dict[str, Any]:
    """One run as the backup runner records it (RunResult.to_json)."""
    return {
        "ok": ok,
        "trigger": "scheduled",
        "started": finished - 60,
        "finished": finished,
        "snapshot_id": "0123456789abcdef" if ok else "",
        "summary": {"total_files": 10, "data_added": 2048} if ok else {},
        "error": error,
        "forgot": ok,
    }


@dataclass
class FakeCtl:
    running: bool = True
    queue: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    call_args: list[dict[str, Any]] = field(default_factory=list)
    queue_in_status: bool = True
    uptime: float = 7200.0
    # What backup_status answers (appliance.backup.service); None: "unknown command".
    backup: dict[str, Any] | None = field(default_factory=lambda: dict(BACKUPS_OFF))

    def call(self, cmd: str, **args: Any) -> Any:
        self.calls.append(cmd)
        self.call_args.append(args)
        if not self.running:
            raise CtlError("the daemon is not running")
        if cmd == "status":
            services = {"queue": {"size": len(self.queue)}} if self.queue_in_status else {}
            return {"version": "0.1.0", "uptime": self.uptime, "services": services}
        if cmd == "backup_status" and self.backup is not None:
            return self.backup
        if cmd == "queue.list":
            return self.queue
        if cmd in ("queue.flush", "queue.retry"):
            return {"rescheduled": len(self.queue)}
        if cmd == "queue.delete":
            before = len(self.queue)
            self.queue = [e for e in self.queue if e.get("id") != args.get("id")]
            if len(self.queue) == before:
                raise CtlError(f"no queue entry {args.get('id')}")
            return {"deleted": args["id"]}
        if cmd == "reload":
            return {"reloaded": True}
        raise CtlError(f"unknown command {cmd!r}")


SPARE = Disk(
    name="sdb",
    path="/dev/sdb",
    size=500 * GiB,
    model="Spare SSD",
    serial="S1",
    bus="usb",
    removable=False,
    fstype="",
    uuid="",
    mountpoint="",
    partitions=(),
    holds_system=False,
)
SYSTEM = Disk(
    name="sda",
    path="/dev/sda",
    size=32 * GiB,
    model="SD card",
    serial="",
    bus="",
    removable=True,
    fstype="",
    uuid="",
    mountpoint="",
    partitions=(Partition("sda1", "ext4", "u-1", "root", "/"),),
    holds_system=True,
)


BIG_BOX = Hardware(
    cpus=4, ram=4 * GiB, disk_path="/srv", disk_total=1000 * GiB, disk_free=600 * GiB
)


@dataclass
class Env:
    cfg_path: Path
    resolver: FakeResolver
    ctl: FakeCtl
    record: Path
    clock: list[float]
    disks: list[Disk]
    hw: Hardware = field(default_factory=lambda: BIG_BOX)
    # SMART summaries by device, as the root helper's ``smart`` gives them; an exception
    # is raised instead (HelperError: smartctl could not read the disk).
    smart: dict[str, dict[str, Any] | Exception] = field(default_factory=dict)
    smart_reads: list[str] = field(default_factory=list)

    def read_smart(self, device: str) -> dict[str, Any]:
        self.smart_reads.append(device)
        found = self.smart.get(device, {})
        if isinstance(found, Exception):
            raise found
        return found

    @property
    def cfg(self) -> config.Config:
        return config.load(self.cfg_path)

    def helper_commands(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


def new_env(tmp_path: Path) -> Env:
    cfg_path = write_config(tmp_path / "box")
    return Env(
        cfg_path=cfg_path,
        resolver=FakeResolver(),
        ctl=FakeCtl(),
        record=tmp_path / "helper-commands.jsonl",
        clock=[1_800_000_000.0],
        disks=[SYSTEM, SPARE],
    )


def make_app(env: Env, throttle: LoginThrottle | None = None) -> Flask:
    helper = RootHelper(
        argv=(sys.executable, str(HELPER)),
        env={"PILLARBOX_ROOT_HELPER_FAKE": str(env.record), "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    app = create_app(
        env.cfg_path,
        resolver=SyncResolver(env.resolver),
        helper=helper,
        ctl_factory=lambda _path: env.ctl,
        disks=lambda: list(env.disks),
        measure=lambda _p: env.hw,
        throttle=throttle or LoginThrottle(clock=lambda: env.clock[0]),
        clock=lambda: env.clock[0],
        smart=env.read_smart,
    )
    app.extensions["pillarbox"].relay_probe = relay_helpers.probe()  # a relay on loopback
    app.testing = True
    return app


def admin_client(env: Env, accounts_template: Path) -> FlaskClient:
    """An app on a box that is set up (accounts copied from the template) and a client
    signed in as its admin."""
    env.cfg.accounts_db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(accounts_template, env.cfg.accounts_db)
    client = make_app(env).test_client()
    with client.session_transaction() as session:
        session["user"] = ADMIN
        session["pw"] = Accounts(env.cfg.accounts_db).password_stamp(ADMIN)
        session["seen"] = env.clock[0]
        session["csrf"] = "test-csrf-token"
    return client


def csrf(client: FlaskClient, path: str) -> str:
    """The CSRF token from the form on ``path`` (as a browser would have it)."""
    page = client.get(path)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def post(
    client: FlaskClient, path: str, data: dict[str, Any], form_page: str | None = None, **kw: Any
) -> Any:
    token = csrf(client, form_page or path)
    return client.post(path, data={**data, "csrf_token": token}, **kw)


def complete_setup(client: FlaskClient, cfg: config.Config) -> None:
    secret = read_or_create_secret(cfg)
    r = post(client, "/setup/", {"secret": secret})
    assert r.status_code == 302 and r.location.endswith("/setup/admin")
    r = post(
        client,
        "/setup/admin",
        {"domain": "pillarbox.test", "local": "admin", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert r.status_code == 302, r.get_data(as_text=True)


# ------------------------------------------------------------------ shared test data

DOMAIN = "pillarbox.test"
HOST = "mail.pillarbox.test"
NOW = dt.datetime.fromtimestamp(1_800_000_000, dt.UTC)  # the fake clock's start


def complete_zone(cfg: config.Config) -> dict[tuple[str, str], list[str]]:
    """Every record the page asks for, published correctly."""
    zone: dict[tuple[str, str], list[str]] = {
        (DOMAIN, "MX"): [f"10 {HOST}"],
        (HOST, "A"): ["192.0.2.10"],
        (HOST, "AAAA"): ["2001:db8::10"],
        (DOMAIN, "TXT"): ["google-site-verification=abc", "v=spf1 mx -all"],
        (f"_dmarc.{DOMAIN}", "TXT"): ["v=DMARC1; p=quarantine"],
        (f"_mta-sts.{DOMAIN}", "TXT"): [f"v=STSv1; id={dnscheck.mta_sts_id(cfg)}"],
        (f"mta-sts.{DOMAIN}", "CNAME"): [HOST],
        (f"_smtp._tls.{DOMAIN}", "TXT"): [f"v=TLSRPTv1; rua=mailto:postmaster@{DOMAIN}"],
        (f"autoconfig.{DOMAIN}", "CNAME"): [HOST],
        ("10.2.0.192.in-addr.arpa.", "PTR"): [HOST],
    }
    for label, listen in (
        ("_imaps._tcp", cfg.listeners.imaps),
        ("_submissions._tcp", cfg.listeners.submissions),
        ("_submission._tcp", cfg.listeners.submission),
        ("_pop3s._tcp", cfg.listeners.pop3s),
    ):
        zone[(f"{label}.{DOMAIN}", "SRV")] = [f"0 1 {listen[0].port} {HOST}"]
    for name, value in dkim.dns_records(cfg, DOMAIN):
        zone[(name, "TXT")] = [value]
    return {(n.rstrip(".").lower(), t): v for (n, t), v in zone.items()}


def make_pair(
    names: tuple[str, ...] = ("mail.pillarbox.test",), days: int = 90, start_days: int = -1
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=start_days))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


QUEUE_ENTRY = {
    "id": "0A1B2C3D4E5F",
    "sender": "anna@pillarbox.test",
    "created": 1_800_000_000.0,
    "size": 1234,
    "kind": "message",
    "next_attempt": 1_800_000_600.0,
    "in_flight": False,
    "recipients": [
        {
            "address": "bob@example.net",
            "status": "pending",
            "attempts": 2,
            "last_error": "451 4.7.1 greylisted, try again later",
        },
    ],
}


@contextlib.contextmanager
def served(app: Flask, port: int = 0) -> Iterator[str]:
    """``app`` on a real HTTP server (cheroot, as webui.serve runs it) on loopback; yields
    the base URL."""
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=4)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.bind_addr[1]}"
    finally:
        server.stop()
        thread.join(5)
