"""Real rspamd, redis and clamd started as user processes on loopback for the tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.harness import free_port

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _wait(check: object, proc: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {seconds}s")


@contextlib.contextmanager
def clamd(tmp: Path, stream_max: str = "1M") -> Iterator[Path]:
    """clamd with a one-signature database for the EICAR string; yields its socket."""
    binary = shutil.which("clamd") or "/usr/sbin/clamd"
    db = tmp / "db"
    db.mkdir(parents=True)
    (db / "pillarbox-test.ndb").write_text(f"Pillarbox.Test.EICAR:0:*:{EICAR.hex()}\n")
    sock = tmp / "clamd.sock"
    conf = tmp / "clamd.conf"
    conf.write_text(
        f"LocalSocket {sock}\nDatabaseDirectory {db}\nForeground yes\n"
        f"LogFile {tmp / 'clamd.log'}\nStreamMaxLength {stream_max}\nMaxThreads 2\n"
    )
    log = (tmp / "clamd.out").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(sock.exists, proc, 60, "clamd")
        yield sock
    finally:
        _stop(proc)
        log.close()


@contextlib.contextmanager
def redis(tmp: Path) -> Iterator[int]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(tmp)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    try:
        _wait(up, proc, 20, "redis-server")
        yield port
    finally:
        _stop(proc)


@contextlib.contextmanager
def rspamd(tmp: Path, redis_port: int | None) -> Iterator[tuple[str, str]]:
    """rspamd with the Debian rules, DNS pointed at a dead local port, Bayes in redis.

    Yields (normal worker URL, controller URL)."""
    normal, controller = free_port(), free_port()
    local = tmp / "local" / "local.d"
    local.mkdir(parents=True)
    if redis_port is not None:
        (local / "classifier-bayes.conf").write_text(
            f'backend = "redis";\nservers = "127.0.0.1:{redis_port}";\nmin_learns = 1;\n'
        )
    conf = tmp / "rspamd.conf"
    conf.write_text(
        '.include "$CONFDIR/common.conf"\n'
        "options {\n"
        '    pidfile = "$RUNDIR/rspamd.pid";\n'
        '    .include "$CONFDIR/options.inc"\n'
        '    dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }\n'
        "    disable_hyperscan = true;\n"
        "}\n"
        'logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "error"; }\n'
        'worker "normal" {\n'
        f'    bind_socket = "127.0.0.1:{normal}";\n'
        '    .include "$CONFDIR/worker-normal.inc"\n'
        "    count = 1;\n"
        "}\n"
        'worker "controller" {\n'
        f'    bind_socket = "127.0.0.1:{controller}";\n'
        '    .include "$CONFDIR/worker-controller.inc"\n'
        "}\n"
    )
    args = ["rspamd", "-f", "-i", "-c", str(conf), "--var", "CONFDIR=/etc/rspamd"]
    for var in ("LOCAL_CONFDIR=" + str(tmp / "local"), f"DBDIR={tmp}", f"RUNDIR={tmp}"):
        args += ["--var", var]
    args += ["--var", f"LOGDIR={tmp}"]
    log = (tmp / "rspamd.out").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        for port in (normal, controller):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.status != 200:
                        return False
            except OSError:
                return False
        return True

    try:
        _wait(up, proc, 240, "rspamd")
        yield f"http://127.0.0.1:{normal}", f"http://127.0.0.1:{controller}"
    finally:
        _stop(proc)
        log.close()
