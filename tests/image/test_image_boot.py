"""Boot the built appliance images in QEMU (TCG, no KVM) and check them from the host.

`make image-test` runs TestAmd64 on image/build/pillarbox-amd64.img, `make
image-test-arm64` runs TestArm64 on image/build/pillarbox-arm64-rpi.img. The image is
never modified: each run boots a qcow2 overlay. A second small disk labelled PBSEED carries
a pillarbox-seed.toml (first-boot hook) that creates the mail domain, a test user and
root's SSH key, so the test can look inside the box over SSH.

Guest ports are forwarded with QEMU user networking to random ports on 127.0.0.1 only.
Protocol checks skip, naming the reason, only when the daemon in the image has no such
service yet (`service_modules` in image/build/pillarbox-<target>.json, written by the build).
"""

from __future__ import annotations

import contextlib
import email.message
import imaplib
import json
import poplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.image import webmail_checks as wm

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "image" / "build"
GUEST_PORTS = {
    "ssh": 22,
    "smtp": 25,
    "http": 80,
    "pop3": 110,
    "imap": 143,
    "https": 443,
    "submission": 587,
    "managesieve": 4190,
}
DOMAIN = "boot-test.example"
USER = f"tester@{DOMAIN}"
PASSWORD = "boot-test passphrase 4711"
# Two more mailboxes: three webmail users at once for the memory figures.
WEBMAIL_USERS = [USER, f"webmail2@{DOMAIN}", f"webmail3@{DOMAIN}"]
BOOT_TIMEOUT = 1200.0  # TCG on two cores; first boot grows the disk and makes keys
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tls_client() -> ssl.SSLContext:
    # The box's certificate is self-signed on first boot.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Build:
    target: str
    manifest: dict[str, Any]

    @classmethod
    def load(cls, target: str) -> Build:
        path = BUILD / f"pillarbox-{target}.json"
        if not path.exists():
            pytest.fail(f"{path} is missing: build the image first (make image / image-arm64)")
        return cls(target, json.loads(path.read_text(encoding="utf-8")))

    @property
    def image(self) -> Path:
        return BUILD / str(self.manifest["image"])

    def serves(self, protocol: str) -> bool:
        return any(m.split(".")[1:2] == [protocol] for m in self.manifest["service_modules"])

    def require(self, protocol: str) -> None:
        if not self.serves(protocol):
            pytest.skip(
                f"the daemon in this image has no {protocol} service yet "
                f"(SERVICE_MODULES={self.manifest['service_modules']})"
            )


@dataclass
class Vm:
    build: Build
    workdir: Path
    boots: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def serial_log(self) -> Path:
        return self.workdir / f"serial-{self.boots}.log"

    @property
    def key(self) -> Path:
        return self.workdir / "id_ed25519"

    def prepare(self) -> None:
        overlay = self.workdir / "disk.qcow2"
        base = str(self.build.image)
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                base,
                str(overlay),
                "8G",
            ],
            check=True,
        )
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True
        )
        pub = self.key.with_suffix(".pub").read_text().strip()
        seed = self.workdir / "pillarbox-seed.toml"
        seed.write_text(
            f'hostname = "pillarbox"\nmail_hostname = "mail.{DOMAIN}"\n'
            f'domains = ["{DOMAIN}"]\nssh_authorized_keys = ["{pub}"]\n\n'
            f'[[users]]\nemail = "{USER}"\npassword = "{PASSWORD}"\nadmin = true\n'
            + "".join(
                f'\n[[users]]\nemail = "{u}"\npassword = "{PASSWORD}"\n' for u in WEBMAIL_USERS[1:]
            )
        )
        seed_img = self.workdir / "seed.vfat"
        subprocess.run(
            ["mkfs.vfat", "-n", "PBSEED", "-C", str(seed_img), "2048"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["mcopy", "-i", str(seed_img), str(seed), "::/pillarbox-seed.toml"],
            check=True,
            env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
        )
        if self.build.manifest["arch"] == "amd64":
            shutil.copy(OVMF_VARS, self.workdir / "ovmf-vars.fd")

    def command(self) -> list[str]:
        fwd = ",".join(
            f"hostfwd=tcp:127.0.0.1:{self.ports[name]}-:{port}"
            for name, port in GUEST_PORTS.items()
        )
        common = [
            "-smp", "2", "-m", "1536", "-display", "none", "-no-user-config",
            "-serial", f"file:{self.serial_log}",
            "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
            "-netdev", f"user,id=n0,{fwd}", "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-drive", f"file={self.workdir / 'disk.qcow2'},if=none,id=root,format=qcow2",
            "-device", "virtio-blk-pci,drive=root",
            "-drive", f"file={self.workdir / 'seed.vfat'},if=none,id=seed,format=raw",
            "-device", "virtio-blk-pci,drive=seed",
            # An empty hot-plug slot for the disk attach test.
            "-device", "pcie-root-port,id=hp0,chassis=1",
        ]  # fmt: skip
        m = self.build.manifest
        if m["arch"] == "amd64":
            return [
                "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
                "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={self.workdir / 'ovmf-vars.fd'}",
                *common,
            ]  # fmt: skip
        # The Pi firmware cannot run under QEMU: boot the image's own generic arm64 kernel
        # and initramfs directly, with the image's root partition.
        cmdline = f"root=PARTUUID={m['root_partuuid']} ro rootwait console=ttyAMA0"
        return [
            "qemu-system-aarch64", "-machine", "virt", "-accel", "tcg", "-cpu", "cortex-a72",
            "-kernel", str(BUILD / m["kernel"]), "-initrd", str(BUILD / m["initrd"]),
            "-append", cmdline,
            *common,
        ]  # fmt: skip

    def start(self) -> None:
        self.boots += 1
        self.ports = {name: free_port() for name in GUEST_PORTS}
        log = (self.workdir / f"qemu-{self.boots}.log").open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.serial_log.read_text(errors="replace")[-3000:]
            qemu = (self.workdir / f"qemu-{self.boots}.log").read_text(errors="replace")
            pytest.fail(f"QEMU is not running: {qemu[-1000:]}\nserial console tail:\n{tail}")

    def wait_serial(self, pattern: str, timeout: float = BOOT_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            self.alive()
            text = self.serial_log.read_text(errors="replace") if self.serial_log.exists() else ""
            if found := regex.search(text):
                return found.group(0)
            time.sleep(2)
        tail = self.serial_log.read_text(errors="replace")[-3000:]
        pytest.fail(f"no {pattern!r} on the serial console in {timeout:.0f} s; tail:\n{tail}")

    def banner(self, name: str, timeout: float = 300.0) -> str:
        """The first line a server sends. QEMU's forwarder accepts before the guest does,
        so an accepted connection proves nothing until the banner arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            address = ("127.0.0.1", self.ports[name])
            with contextlib.suppress(OSError), socket.create_connection(address, timeout=10) as s:
                data = s.recv(512)
                if data:
                    return data.decode("latin-1").strip()
            time.sleep(3)
        pytest.fail(f"no {name} banner on guest port {GUEST_PORTS[name]} in {timeout:.0f} s")

    def ssh(self, command: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-p", str(self.ports["ssh"]),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
             "root@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def ssh_ok(self, command: str) -> str:
        proc = self.ssh(command)
        assert proc.returncode == 0, f"{command!r} failed ({proc.returncode}): {proc.stderr}"
        return proc.stdout

    def wait_ssh(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.ssh("true", timeout=60).returncode == 0:
                    return
            time.sleep(5)
        pytest.fail(f"no SSH login with the seeded key in {timeout:.0f} s")

    def qmp(self, command: str, **arguments: Any) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(self.workdir / "qmp.sock"))
            reader = s.makefile("rb")
            reader.readline()  # greeting
            requests: list[dict[str, Any]] = [{"execute": "qmp_capabilities"}]
            requests.append({"execute": command, "arguments": arguments})
            for request in requests:
                s.sendall(json.dumps(request).encode() + b"\n")
                while b'"return"' not in (line := reader.readline()):
                    assert line, "QMP closed the connection"
                    assert b'"error"' not in line, f"QMP {request}: {line!r}"

    def poweroff(self, timeout: float = 600.0) -> None:
        """ACPI power button: a clean shutdown, like a user pressing it."""
        assert self.proc is not None
        self.qmp("system_powerdown")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the guest did not power off within {timeout:.0f} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def boot(vm: Vm) -> None:
    """Start the VM and wait until it is in use: login prompt, then SSH."""
    vm.start()
    n = vm.boots
    vm.wait_serial(r"pillarbox login:")
    vm.timings[f"boot{n}_login_prompt_s"] = vm.elapsed()
    vm.wait_ssh()
    vm.timings[f"boot{n}_ssh_s"] = vm.elapsed()
    if vm.build.serves("smtp"):
        vm.banner("smtp")
        vm.timings[f"boot{n}_smtp_banner_s"] = vm.elapsed()


def save_timings(vm: Vm) -> None:
    m = vm.build.manifest
    facts = {
        "target": vm.build.target,
        "image_bytes": m["image_bytes"],
        "image_xz_bytes": m["image_xz_bytes"],
        "build_seconds": m["build_seconds"],
        **vm.timings,
    }
    (BUILD / f"boot-test-{vm.build.target}.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts, indent=2))


@pytest.fixture(scope="class")
def vm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vm]:
    target: str = request.cls.target
    machine = Vm(Build.load(target), tmp_path_factory.mktemp(f"vm-{target}"))
    machine.prepare()
    try:
        boot(machine)
        yield machine
    finally:
        machine.kill()
        save_timings(machine)


# ---------------------------------------------------------------- checks shared by both


def check_first_boot(vm: Vm) -> None:
    journal = vm.ssh_ok("journalctl -b -o cat -u pillarbox-firstboot")
    for needle in ("grew partition", "machine-id", "ssh host key", "seed file found", "done"):
        assert needle in journal, f"first boot did not report {needle!r}:\n{journal}"
    assert re.fullmatch(r"[0-9a-f]{32}\n", vm.ssh_ok("cat /etc/machine-id"))
    size = int(vm.ssh_ok("df -B1 --output=size / | tail -n 1"))
    assert size > 6 * 1024**3, f"root filesystem not grown to the 8 GiB disk: {size} bytes"
    vm.ssh_ok("runuser -u pillarbox -- pillarbox config check -c /etc/pillarbox/pillarbox.toml")
    assert vm.ssh_ok("hostname").strip() == "pillarbox"
    # The seed made an admin, so the box is set up: the console shows where the dashboard
    # is and no setup secret (one would no longer unlock anything).
    assert "set up by the seed file: no setup secret" in journal
    issue = vm.serial_log.read_text(errors="replace")
    assert "Dashboard:" in issue, "the dashboard address is not on the console"
    assert not re.search(r"[Ss]etup secret:\s+[A-Z0-9]{4}(-[A-Z0-9]{4}){4}", issue), (
        "a setup secret is on the console of a box that is set up"
    )


def check_units(vm: Vm) -> None:
    units = [
        "pillarbox.service", "pillarbox-shutdown.service", "pillarbox-root-helper.socket",
        "pillarbox-backup.timer", "systemd-journald.service", "systemd-timesyncd.service",
        "systemd-networkd.service", "systemd-resolved.service", "avahi-daemon.service",
        "ssh.service",
    ]  # fmt: skip
    if vm.build.manifest["webui"]:
        units.append("pillarbox-web.service")
    states = vm.ssh("systemctl is-active " + " ".join(units)).stdout.split()
    inactive = {u: s for u, s in zip(units, states, strict=True) if s != "active"}
    detail = vm.ssh("systemctl --failed --no-legend --plain; journalctl -b -p warning -o cat")
    assert not inactive, f"units not active: {inactive}\n{detail.stdout[-4000:]}"
    failed = vm.ssh_ok("systemctl --failed --no-legend --plain").splitlines()
    if not vm.build.manifest["webui"]:
        # No `python -m webui` in the wheel yet: its unit cannot start; nothing else may fail.
        failed = [line for line in failed if not line.startswith("pillarbox-web.service")]
    assert not failed, "failed units:\n" + "\n".join(failed)
    assert vm.ssh_ok("systemctl show -p User --value pillarbox.service").strip() == "pillarbox"
    caps = vm.ssh_ok("systemctl show -p AmbientCapabilities --value pillarbox.service")
    assert "cap_net_bind_service" in caps


def check_root_helper_socket(vm: Vm) -> None:
    ask = 'echo \'{"action": "no.such.action", "args": {}}\' | '
    answer = json.loads(
        vm.ssh_ok(ask + "runuser -u pillarbox-web -- /usr/lib/pillarbox/root-helper-client")
    )
    assert answer["ok"] is False and "error" in answer, answer
    refused = json.loads(
        vm.ssh(ask + "runuser -u pillarbox -- /usr/lib/pillarbox/root-helper-client").stdout
    )
    assert refused == {"ok": False, "error": "not allowed to use the system helper"}


def check_smtp_banner(vm: Vm) -> None:
    vm.build.require("smtp")
    greeting = vm.banner("smtp")
    assert greeting.startswith("220 "), greeting


# ---------------------------------------------------------------- mail round trip


def send(vm: Vm, token: str, to: str = USER) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "Boot Test <sender@example.net>"
    msg["To"] = to
    msg["Subject"] = f"image boot test {token}"
    msg["Message-ID"] = f"<{token}@example.net>"
    msg.set_content(f"Delivered to the appliance image over SMTP.\ntoken={token}\n")
    with smtplib.SMTP("127.0.0.1", vm.ports["smtp"], timeout=120) as smtp:
        smtp.ehlo("boot-test.example.net")
        refused = smtp.send_message(msg)
    assert not refused, refused


def imap_find(vm: Vm, token: str, timeout: float = 120.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        with imaplib.IMAP4("127.0.0.1", vm.ports["imap"], timeout=60) as imap:
            if "STARTTLS" in imap.capabilities:
                imap.starttls(tls_client())
            imap.login(USER, PASSWORD)
            imap.select("INBOX", readonly=True)
            _, data = imap.search(None, "SUBJECT", f'"{token}"')
            ids = data[0].split() if data and data[0] else []
            if ids:
                _, fetched = imap.fetch(ids[-1], "(RFC822)")
                part = fetched[0]
                assert isinstance(part, tuple)
                return part[1]
        if time.monotonic() > deadline:
            pytest.fail(f"message {token} not in {USER}'s INBOX over IMAP")
        time.sleep(5)


def pop3_find(vm: Vm, token: str) -> bytes:
    pop = poplib.POP3("127.0.0.1", vm.ports["pop3"], timeout=60)
    try:
        with contextlib.suppress(poplib.error_proto):
            if "STLS" in pop.capa():
                pop.stls(tls_client())
        pop.user(USER)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        for i in range(1, count + 1):
            raw = b"\n".join(pop.retr(i)[1])
            if token.encode() in raw:
                return raw
    finally:
        with contextlib.suppress(OSError, poplib.error_proto):
            pop.quit()
    pytest.fail(f"message {token} not in {USER}'s maildrop over POP3")


# ---------------------------------------------------------------- the tests


@pytest.mark.timeout(3 * BOOT_TIMEOUT)
class TestAmd64:
    target = "amd64"
    token = uuid.uuid4().hex[:12]
    webmail_key: str | None = None  # the per-box Roundcube key, once webmail ran

    def test_first_boot(self, vm: Vm) -> None:
        check_first_boot(vm)

    def test_units_active(self, vm: Vm) -> None:
        check_units(vm)

    def test_root_helper_socket(self, vm: Vm) -> None:
        check_root_helper_socket(vm)

    def test_smtp_banner(self, vm: Vm) -> None:
        check_smtp_banner(vm)

    def test_web_ui_answers(self, vm: Vm) -> None:
        if not vm.build.manifest["webui"]:
            pytest.skip("the image has no web UI yet (no webui.__main__ in the wheel)")
        url = f"http://127.0.0.1:{vm.ports['http']}/"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:
                    status = resp.status
                    break
            except urllib.error.HTTPError as exc:  # 4xx from the wizard still answers
                status = exc.code
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(5)
        assert status < 500, f"web UI answered {status}"
        # The same wizard over HTTPS with the box's first-boot certificate (self-signed).
        with urllib.request.urlopen(
            f"https://127.0.0.1:{vm.ports['https']}/setup/", timeout=30, context=tls_client()
        ) as resp:
            assert resp.status == 200
            assert "Secure" in (resp.headers.get("Set-Cookie") or "")

    def test_deliver_read_imap_pop3(self, vm: Vm) -> None:
        vm.build.require("smtp")
        send(vm, self.token)
        if vm.build.serves("imap"):
            assert self.token.encode() in imap_find(vm, self.token)
        if vm.build.serves("pop3"):
            assert self.token.encode() in pop3_find(vm, self.token)
        vm.build.require("imap")
        vm.build.require("pop3")

    def test_webmail_over_https(self, vm: Vm) -> None:
        if not vm.build.manifest.get("webmail"):
            pytest.skip("the image has no webmail yet (no appliance.webmail in the wheel)")
        vm.build.require("imap")
        packages = vm.build.manifest["packages"]
        assert {"roundcube-core", "roundcube-plugins", "php8.2-fpm"} <= set(packages)
        for user in WEBMAIL_USERS:
            send(vm, self.token, to=user)
        type(self).webmail_key = wm.check_webmail(
            vm, WEBMAIL_USERS, PASSWORD, self.token, vm.timings
        )

    def test_managesieve(self, vm: Vm) -> None:
        vm.build.require("managesieve")
        script = 'require "fileinto";\nif header :contains "subject" "boot-x" { fileinto "Y"; }\n'
        session = wm.managesieve_session(vm.ports["managesieve"], USER, PASSWORD, script)
        assert any('"STARTTLS"' in line for line in session["greeting"]), session
        assert not any('"STARTTLS"' in line for line in session["tls_capabilities"]), session
        assert any(
            line.startswith('"SASL"') and "PLAIN" in line for line in session["tls_capabilities"]
        ), session
        assert '"boot-test" ACTIVE' in session["scripts"], session

    def test_reboot_keeps_mail(self, vm: Vm) -> None:
        vm.poweroff()
        vm.timings["poweroff_s"] = vm.elapsed()
        boot(vm)
        shutdown_log = vm.ssh_ok("journalctl -b -1 -o cat -u pillarbox-shutdown")
        assert "pillarbox-shutdown: done" in shutdown_log, shutdown_log
        ran = vm.ssh_ok("systemctl show -p ConditionResult --value pillarbox-firstboot")
        assert ran.strip() == "no", "first boot ran again on the second boot"
        check_units(vm)
        vm.build.require("smtp")
        if vm.build.serves("imap"):
            assert self.token.encode() in imap_find(vm, self.token, timeout=30)
        if vm.build.serves("pop3"):
            assert self.token.encode() in pop3_find(vm, self.token)

    def test_webmail_after_reboot(self, vm: Vm) -> None:
        key = type(self).webmail_key
        if key is None:
            pytest.skip("webmail was not switched on before the reboot")
        assert vm.ssh_ok(f"systemctl is-active {wm.WEBMAIL_UNIT}").strip() == "active"
        wm.wait_fpm_socket(vm)
        assert wm.per_box_key(vm) == key, "the per-box key changed across a reboot"
        wm.read_message(vm, USER, PASSWORD, self.token)

    def test_update_hooks_drain_and_restart(self, vm: Vm) -> None:
        vm.ssh_ok("/usr/lib/pillarbox/hooks/pre-update.sh")
        state = vm.ssh("systemctl is-active pillarbox.service").stdout.strip()
        assert state == "inactive", f"pre-update left the daemon {state}"
        vm.ssh_ok("/usr/lib/pillarbox/hooks/post-update.sh")
        assert vm.ssh_ok("systemctl is-active pillarbox.service").strip() == "active"
        if vm.build.serves("smtp"):
            assert vm.banner("smtp").startswith("220 ")

    def test_disk_attach_hotplug(self, vm: Vm) -> None:
        """A mail disk named in fstab (as the root helper's disk.mount writes it) that is
        plugged in while the box runs gets checked, mounted by UUID, and the daemon told."""
        disk_uuid = str(uuid.uuid4())
        disk = vm.workdir / "maildisk.ext4"
        subprocess.run(
            ["mke2fs", "-q", "-F", "-t", "ext4", "-U", disk_uuid, "-L", "PBMAIL", str(disk), "64M"],
            check=True,
        )
        mount_point = "/var/lib/pillarbox/mail"
        vm.ssh_ok(
            f"echo 'UUID={disk_uuid} {mount_point} ext4 defaults,noatime,nofail 0 2' >> /etc/fstab"
            " && systemctl daemon-reload"
        )
        before = vm.ssh_ok("journalctl -u pillarbox.service -o cat | wc -l").strip()
        vm.qmp(
            "blockdev-add",
            **{"driver": "raw", "node-name": "maildisk"},
            file={"driver": "file", "filename": str(disk)},
        )
        vm.qmp("device_add", driver="virtio-blk-pci", drive="maildisk", id="maildisk", bus="hp0")
        deadline = time.monotonic() + 300
        while disk_uuid not in vm.ssh(f"findmnt -no UUID {mount_point}").stdout:
            if time.monotonic() > deadline:
                log = vm.ssh("journalctl -b -o cat -u 'pillarbox-disk-attach@*'").stdout
                pytest.fail(f"the hot-plugged mail disk was not mounted:\n{log}")
            time.sleep(5)
        log = vm.ssh_ok("journalctl -b -o cat -u 'pillarbox-disk-attach@*'")
        assert "mounted" in log, log
        owner = vm.ssh_ok(f"stat -c %U:%G:%a {mount_point}").strip()
        assert owner == "pillarbox:pillarbox:2770", owner
        deadline = time.monotonic() + 120
        while "Reloaded" not in (
            reload_log := vm.ssh_ok(f"journalctl -u pillarbox.service -o cat | tail -n +{before}")
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"the daemon was not reloaded:\n{reload_log}")
            time.sleep(5)
        vm.qmp("device_del", id="maildisk")
        deadline = time.monotonic() + 300
        while vm.ssh(f"findmnt -no UUID {mount_point}").stdout.strip():
            if time.monotonic() > deadline:
                pytest.fail("the unplugged mail disk is still mounted")
            time.sleep(5)


@pytest.mark.timeout(3 * BOOT_TIMEOUT)
class TestArm64:
    target = "arm64-rpi"

    def test_first_boot(self, vm: Vm) -> None:
        check_first_boot(vm)

    def test_units_active(self, vm: Vm) -> None:
        check_units(vm)

    def test_root_helper_socket(self, vm: Vm) -> None:
        check_root_helper_socket(vm)

    def test_smtp_banner(self, vm: Vm) -> None:
        check_smtp_banner(vm)
