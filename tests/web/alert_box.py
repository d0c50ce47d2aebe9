"""A box for the alert tests: the real daemon (tests.harness), the web app on its real ctl
socket, and fakes only where the world cannot be arranged on loopback: SMART data (the
reader the root helper's ``smart`` action feeds), disk usage (the statvfs measurement),
memory, DNS answers and the clock. The admin reads alert mail over IMAP (imaplib)."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.message
import email.policy
import imaplib
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from appliance import config
from appliance.accounts import Accounts
from appliance.dns import SyncResolver
from tests.dnsfake import FakeResolver
from tests.harness import Daemon, write_config
from tests.web.web_helpers import ADMIN, PASSWORD
from webui import alerts, create_app
from webui.alertchecks import Memory
from webui.context import WebContext
from webui.disks import Disk
from webui.sizing import GiB, Hardware

DOMAIN = "pillarbox.test"
HOST = "mail.pillarbox.test"
HEALTHY_SMART: dict[str, Any] = {
    "passed": True,
    "model": "Mail HDD",
    "temperature": 35,
    "reallocated_sectors": 0,
    "pending_sectors": 0,
}
PUBLISHED: dict[tuple[str, str], list[str]] = {
    (DOMAIN, "MX"): [f"10 {HOST}"],
    (HOST, "A"): ["192.0.2.10"],
    (DOMAIN, "TXT"): ["v=spf1 mx -all"],
    (f"_dmarc.{DOMAIN}", "TXT"): ["v=DMARC1; p=quarantine"],
}


@dataclass
class Box:
    cfg_path: Path
    daemon: Daemon
    app: Flask
    ctx: WebContext
    monitor: alerts.Monitor
    resolver: FakeResolver
    clock: list[float]
    smart: dict[str, Any] = field(default_factory=lambda: dict(HEALTHY_SMART))
    mail_used: list[float] = field(default_factory=lambda: [0.30])  # share of the mail disk
    memory: list[Memory] = field(default_factory=lambda: [Memory(4 * GiB, 3 * GiB, 2 * GiB, 0)])

    @property
    def cfg(self) -> config.Config:
        return config.load(self.cfg_path)

    def read_smart(self, device: str) -> dict[str, Any]:
        return dict(self.smart)

    def measure(self, path: Path) -> Hardware:
        total = 100 * GiB
        return Hardware(2, 4 * GiB, str(path), total, int(total * (1 - self.mail_used[0])))

    def check(self, times: int = 2, step: float = 60.0) -> list[str]:
        """Run the checks ``times`` times, the clock moving ``step`` seconds before each
        (SMART tests pass 1801: past the SMART cache's 30 minutes); returns the subjects mailed."""
        sent: list[str] = []
        for _ in range(times):
            self.clock[0] += step
            sent += self.monitor.run_once()
        return sent

    def messages(self) -> list[email.message.EmailMessage]:
        """Every message in the admin's INBOX, oldest first, read over IMAPS."""
        cfg = self.cfg
        tls = ssl.create_default_context(cafile=str(cfg.tls.cert))
        tls.check_hostname = False
        imaps = cfg.listeners.imaps[0]
        with imaplib.IMAP4_SSL(imaps.host, imaps.port, ssl_context=tls, timeout=20) as c:
            c.login(ADMIN, PASSWORD)
            c.select("INBOX", readonly=True)
            typ, data = c.search(None, "ALL")
            assert typ == "OK"
            out = []
            for num in data[0].split():
                typ, parts = c.fetch(num, "(BODY.PEEK[])")
                assert typ == "OK"
                raw = parts[0][1]  # type: ignore[index]
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(msg, email.message.EmailMessage)
                out.append(msg)
            return out

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages()]

    def bodies(self, subject_part: str) -> list[str]:
        """The text of each message whose Subject holds ``subject_part``."""
        out = []
        for msg in self.messages():
            if subject_part in str(msg["Subject"]):
                body = msg.get_body(("plain",))
                assert body is not None
                out.append(str(body.get_content()))  # type: ignore[attr-defined]
        return out

    def mailed(self, subject_part: str) -> int:
        return sum(subject_part in s for s in self.subjects())


def mail_disk(cfg: config.Config) -> Disk:
    """The disk whose mount point is the mail directory (so the SMART check reads it)."""
    return Disk(
        name="sdb",
        path="/dev/sdb",
        size=100 * GiB,
        model="Mail HDD",
        serial="HDD-1",
        bus="sata",
        removable=False,
        fstype="ext4",
        uuid="",
        mountpoint=str(cfg.mail_dir),
        partitions=(),
        holds_system=False,
    )


def expired_cert(path: Path) -> None:
    """A certificate for HOST that ran out two days ago (by the real clock)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=90))
        .not_valid_after(now - dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@contextlib.contextmanager
def alert_box(directory: Path, *, real_disk: bool = False, **overrides: Any) -> Iterator[Box]:
    """A set-up box (domain, first admin) with its daemon running. ``real_disk``: disk
    usage is measured for real (psutil) instead of from ``Box.mail_used``."""
    cfg_path = write_config(directory, hostname=HOST, **overrides)
    cfg = config.load(cfg_path)
    cfg.mail_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(cfg.accounts_db)
    accounts.add_domain(DOMAIN)
    accounts.add_user(ADMIN, PASSWORD, is_admin=True)
    accounts.close()
    resolver = FakeResolver(dict(PUBLISHED))
    clock = [time.time()]
    box: Box | None = None

    def read_smart(device: str) -> dict[str, Any]:
        assert box is not None
        return box.read_smart(device)

    def measure(path: Path) -> Hardware:
        assert box is not None
        return box.measure(path)

    with Daemon(cfg_path) as daemon:
        kwargs: dict[str, Any] = {} if real_disk else {"measure": measure}
        app = create_app(
            cfg_path,
            resolver=SyncResolver(resolver),
            disks=lambda: [mail_disk(cfg)],
            clock=lambda: clock[0],
            smart=read_smart,
            **kwargs,
        )
        ctx: WebContext = app.extensions["pillarbox"]

        def memory() -> Memory:
            assert box is not None
            return box.memory[0]

        # The system disk is the mail disk's file system here: one "disk:" condition.
        monitor = alerts.Monitor(ctx, system_path=cfg.mail_dir, memory=memory)
        box = Box(cfg_path, daemon, app, ctx, monitor, resolver, clock)
        yield box
