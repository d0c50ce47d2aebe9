"""Test harness: free ports, throw-away configs, and the real daemon as a subprocess.

cfg_path = write_config(tmp_path)                 # every listener on a free port
with Daemon(cfg_path) as d:                       # `pillarbox run --config ...`
    smtplib.SMTP(*d.addr("smtp"))
    d.kill()                                      # SIGKILL, for crash tests
    d.start()                                     # and up again on the same ports
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from appliance import config

REPO = Path(__file__).resolve().parent.parent
_used_ports: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (not handed out twice per run)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port found")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_config(directory: Path, **overrides: Any) -> Path:
    """Write ``directory/pillarbox.toml`` for a dev instance with every listener on a free
    loopback port and data in ``directory``. Overrides: top-level keys (``hostname="x"``)
    or tables as dicts (``limits={"max_message_size": 4096}``, ``listeners={"web": []}``).
    Returns the config path; ``config.load(path)`` gives the Config."""
    directory.mkdir(parents=True, exist_ok=True)
    listeners: dict[str, Any] = {name: [f"127.0.0.1:{free_port()}"] for name in config.DEV_PORTS}
    listeners.update(overrides.pop("listeners", {}))
    top: dict[str, Any] = {"dev": True, "hostname": "mail.pillarbox.test", "data_dir": "."}
    tables: dict[str, dict[str, Any]] = {"listeners": listeners}
    for key, value in overrides.items():
        if isinstance(value, dict):
            tables.setdefault(key, {}).update(value)
        else:
            top[key] = value
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, table in tables.items():
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path = directory / "pillarbox.toml"
    path.write_text("\n".join(lines) + "\n")
    config.load(path)  # fail early on a bad override
    return path


def wait_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answers on {host}:{port} after {timeout} s")


def pillarbox(
    *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the `pillarbox` CLI in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
        cwd=REPO,
    )


class Daemon:
    """The real daemon (`pillarbox run --no-web --config X`) as a subprocess."""

    def __init__(self, config_path: Path, wait_for: tuple[str, ...] | None = None) -> None:
        self.config_path = config_path
        self.config = config.load(config_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.config.data_dir / "daemon.log"
        self.wait_for = wait_for

    def addr(self, listener: str) -> tuple[str, int]:
        addrs: tuple[config.Listen, ...] = getattr(self.config.listeners, listener)
        return addrs[0].host, addrs[0].port

    def start(self, timeout: float = 60.0) -> Daemon:
        # A restart after kill() finds the old socket file and the old "ready" line: wait
        # for this run's own ready line (after the log offset) and its fresh socket.
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        offset = log.tell()
        sock = self.config.ctl_socket
        sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance.cli",
                "run",
                "--no-web",
                "--config",
                str(self.config_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if sock.exists() and b"daemon=ready" in self.log_path.read_bytes()[offset:]:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise TimeoutError(f"daemon not ready after {timeout} s:\n{self.log()}")
        for name in self.wait_for or ():
            wait_port(*self.addr(name), timeout=max(1.0, deadline - time.monotonic()))
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup (crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def rss(pid: int) -> int:
    """A process's resident memory in bytes (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def connect(addr: tuple[str, int], *, tls: bool, timeout: float) -> socket.socket:
    """A client socket to a dev listener; with ``tls``, wrapped without verifying the
    daemon's self-signed certificate."""
    raw = socket.create_connection(addr, timeout=timeout)
    if not tls:
        return raw
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(raw)
