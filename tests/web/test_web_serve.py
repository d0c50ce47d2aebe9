"""`python -m webui CONFIG` serves over waitress on listeners.web and prints the setup code."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from appliance import config
from tests.harness import REPO, free_port, write_config
from webui.setup import read_or_create_secret


def test_module_serves_and_prints_setup_code(tmp_path: Path) -> None:
    port = free_port()
    cfg_path = write_config(tmp_path, listeners={"web": [f"127.0.0.1:{port}"]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "webui", "--config", str(cfg_path)],  # as appliance/devrun.py
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        secret = read_or_create_secret(config.load(cfg_path))
        assert line.strip() == f"Pillarbox setup code: {secret}"
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/setup/", timeout=2) as r:
                    body = r.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert "Welcome to your mail box" in body
    finally:
        proc.terminate()
        proc.wait(10)
