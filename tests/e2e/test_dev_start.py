"""`pillarbox run --dev` (what `make run` starts) as a user sees it in the terminal.

The banner comes once every listener, the web server's included, accepts connections;
the daemon and the web process log in one format; a clean start and a Ctrl-C print no
warning and no traceback; once an admin exists the banner says setup is done and no
unlock secret is shown anywhere.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance import config
from tests.harness import REPO, pillarbox, write_config

BANNER = "Pillarbox is running"
# appliance/log.py without JOURNAL_STREAM: time, level, logger, connection id.
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ conn=\S+ "
)
PASSWORD = "correct horse battery staple 42"


def _accepts(host: str, port: int, tls: bool) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.wrap_socket(sock).close()
        return True
    except OSError:
        return False


def _start_and_stop(cfg_path: Path, out_dir: Path) -> tuple[str, str, bool]:
    """Run until the banner, check the web listeners at that moment, then Ctrl-C (SIGINT to
    the process group, as a terminal does). Returns (stdout, stderr, web answered)."""
    cfg = config.load(cfg_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = out_dir / "stdout", out_dir / "stderr"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "run", "--dev", "--config", str(cfg_path)],
            stdout=out,
            stderr=err,
            cwd=REPO,
            env={**env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    web_answered = False
    try:
        deadline = time.monotonic() + 90
        while BANNER not in err_path.read_text(errors="replace"):
            assert proc.poll() is None, err_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "no banner after 90 s"
            time.sleep(0.02)
        web_answered = all(_accepts(a.host, a.port, False) for a in cfg.listeners.web) and all(
            _accepts(a.host, a.port, True) for a in cfg.listeners.webs
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    time.sleep(0.5)  # the web child's last words, if any
    return out_path.read_text(errors="replace"), err_path.read_text(errors="replace"), web_answered


def _log_lines(stderr: str) -> list[str]:
    """stderr without the banner block (from its first line to the blank line after it)."""
    lines, in_banner = [], False
    for line in stderr.splitlines():
        if line.startswith(BANNER):
            in_banner = True
        elif in_banner and not line.strip():
            in_banner = False
        elif not in_banner and line.strip():
            lines.append(line)
    return lines


@pytest.mark.timeout(300)  # two starts, each up to 90 s to the banner and 30 s to stop
def test_dev_start_banner_logs_and_setup_done(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path / "box")

    # First start: not set up yet.
    out, err, web_answered = _start_and_stop(cfg_path, tmp_path / "first")
    assert web_answered, "banner printed before the web listeners accepted connections"
    # The web process logs its listening line (after binding) before the banner.
    assert "web=listening" in err
    assert err.index("web=listening") < err.index(BANNER), err
    banner = err[err.index(BANNER) :]
    assert "setup-secret" in banner and "setup done" not in banner
    for text in (out, err):
        for bad in ("Traceback", "Warning", "WARNING", "KeyboardInterrupt"):
            assert bad not in text, f"{bad!r} in output:\n{text}"
    lines = _log_lines(err)
    assert lines
    assert [line for line in lines if not LOG_LINE.match(line)] == []

    # An admin exists: setup is done, no secret anywhere, the banner says where to sign in.
    pillarbox(
        "user",
        "add",
        "admin@pillarbox.test",
        "--admin",
        "--password-stdin",
        "--config",
        str(cfg_path),
        input=PASSWORD + "\n",
    )
    out, err, web_answered = _start_and_stop(cfg_path, tmp_path / "second")
    assert web_answered
    banner = err[err.index(BANNER) :]
    assert "setup done" in banner and "sign in at http://127.0.0.1:" in banner, banner
    assert "setup-secret" not in banner and "unlock" not in banner.lower()
    assert "setup code" not in out.lower() and "setup code" not in err.lower()
    assert [line for line in _log_lines(err) if not LOG_LINE.match(line)] == []
    assert "Traceback" not in err and "WARNING" not in err
