"""Reference servers for the benchmarks: Postfix and Dovecot from Debian, each as a
private instance in a temporary directory, bound to loopback ports only.

Neither touches the system's own configuration: Postfix runs with its own
config_directory/queue_directory (``postfix -c DIR``), Dovecot with ``dovecot -c FILE``.
Both deliver to / read from Maildir with fsync, like Pillarbox.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DOMAIN = "bench.test"
BENCH_USER = f"bench@{BENCH_DOMAIN}"
BENCH_PASSWORD = "bench-password-1"


def _wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"reference server not answering on 127.0.0.1:{port}")


@dataclass
class PostfixInstance:
    root: Path
    port: int

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "Maildir"

    def start(self) -> None:
        etc = self.root / "etc"
        etc.mkdir(parents=True)
        for sub in ("spool", "data", "mail"):
            (self.root / sub).mkdir()
        nobody = pwd.getpwnam("nobody")
        os.chown(self.root / "mail", nobody.pw_uid, nobody.pw_gid)
        pf = pwd.getpwnam("postfix")
        os.chown(self.root / "data", pf.pw_uid, pf.pw_gid)
        (etc / "main.cf").write_text(
            f"""compatibility_level = 3.6
myhostname = ref.{BENCH_DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
queue_directory = {self.root / "spool"}
data_directory = {self.root / "data"}
alias_maps =
alias_database =
virtual_mailbox_domains = {BENCH_DOMAIN}
virtual_mailbox_base = {self.root / "mail"}
virtual_mailbox_maps = static:Maildir/
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
virtual_minimum_uid = 1
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
default_process_limit = 200
message_size_limit = 52428800
virtual_mailbox_limit = 0
"""
        )
        lines = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            cols = line.split()
            if line and not line[0].isspace() and not line.startswith("#") and len(cols) >= 8:
                if cols[0] == "smtp" and cols[1] == "inet":
                    cols[0] = f"127.0.0.1:{self.port}"
                cols[4] = "n"  # no chroot: the instance lives in a temp dir
                line = "  ".join(cols)
            lines.append(line)
        (etc / "master.cf").write_text("\n".join(lines) + "\n")
        subprocess.run(["postfix", "-c", str(etc), "check"], check=True, capture_output=True)
        subprocess.run(
            ["postfix", "-c", str(etc), "start"],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            subprocess.run(
                ["postfix", "-c", str(self.root / "etc"), "stop"], check=True, capture_output=True
            )

    def master_pids(self) -> list[int]:
        pid_file = self.root / "spool" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            return [int(pid_file.read_text().split()[0])]
        return []

    def delivered(self) -> int:
        new = self.maildir / "new"
        return len(os.listdir(new)) if new.exists() else 0

    def clear(self) -> None:
        for sub in ("new", "cur", "tmp"):
            d = self.maildir / sub
            if d.exists():
                shutil.rmtree(d)
                d.mkdir()
                nobody = pwd.getpwnam("nobody")
                os.chown(d, nobody.pw_uid, nobody.pw_gid)


@dataclass
class DovecotInstance:
    """Dovecot with IMAPS and POP3S only (the loads use TLS against both servers)."""

    root: Path
    imap_port: int
    pop3_port: int
    cert: Path
    key: Path

    def maildir(self, user: str = BENCH_USER) -> Path:
        return self.root / "home" / user / "Maildir"

    def start(self) -> None:
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.root / "home", nobody.pw_uid, nobody.pw_gid)
        conf = self.root / "dovecot.conf"
        conf.write_text(
            f"""base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
log_path = {self.root / "dovecot.log"}
instance_name = pillarbox-bench-{self.imap_port}
listen = 127.0.0.1
protocols = imap pop3
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{self.key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_fsync = always
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = static
  args = password={BENCH_PASSWORD}
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={self.root / "home"}/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  # High-performance mode: each login process serves many clients (and proxies their
  # TLS after login). Dovecot's default, one process per connection, stops at
  # process_limit and resets the 1,000-IDLE burst.
  service_count = 0
  process_min_avail = 2
  client_limit = 3000
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
}}
service imap {{
  process_limit = 2000
}}
default_client_limit = 3000
protocol imap {{
  mail_max_userip_connections = 2000
}}
"""
        )
        # The daemon keeps inherited fds open: no pipes, or run() would wait forever.
        subprocess.run(
            ["dovecot", "-c", str(conf)],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.imap_port)
        _wait_port(self.pop3_port)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            subprocess.run(
                ["doveadm", "-c", str(self.root / "dovecot.conf"), "stop"],
                check=True,
                capture_output=True,
            )

    def master_pids(self) -> list[int]:
        with contextlib.suppress(OSError, ValueError):
            return [int((self.root / "run" / "master.pid").read_text().split()[0])]
        return []
