"""Webmail test plumbing: a private php-fpm (``python -m appliance.webmail serve``, as dev
mode and the box run it) and the real web front (webui.serve) in a thread."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import config
from appliance.webmail import fpm_binary, installed
from tests.harness import REPO
from webui import serve

needs_fpm = pytest.mark.skipif(
    fpm_binary() is None or not installed(),
    reason="php-fpm or Roundcube is not installed (make apt-deps installs them)",
)


def wait_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"php-fpm exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            return
        time.sleep(0.05)
    raise TimeoutError(f"php-fpm did not listen on {path}")


@contextlib.contextmanager
def webmail_fpm(cfg_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Roundcube's php-fpm for the config at ``cfg_path``, until the block ends."""
    cfg = config.load(cfg_path)
    log = (cfg.data_dir / "webmail-serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.webmail", "serve", "--config", str(cfg_path)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    try:
        wait_socket(cfg.webmail.fpm_socket, proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def web_front(cfg_path: Path) -> Iterator[serve.WebServer]:
    """The web UI's own HTTP(S) front for ``cfg_path`` in a thread."""
    server = serve.create_server(cfg_path, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(10)
