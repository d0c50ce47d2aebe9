"""Issue 21 in dev mode: `pillarbox run --dev` with webmail on starts Roundcube's php-fpm
as a child, the banner lists https://.../mail/, Roundcube answers there through the web
front, and Ctrl-C stops php-fpm with the rest."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from appliance import config
from tests.harness import REPO, write_config
from tests.web.webmail_helpers import needs_fpm

pytestmark = needs_fpm

BANNER = "Pillarbox is running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.timeout(240)
def test_dev_run_serves_webmail_and_stops_php_fpm(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path / "box", webmail={"enabled": True})
    cfg = config.load(cfg_path)
    err_path = tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "run", "--dev", "--config", str(cfg_path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=REPO,
            env={**env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    pid_file = cfg.webmail.data / "run" / "php-fpm.pid"
    try:
        deadline = time.monotonic() + 90
        while BANNER not in err_path.read_text(errors="replace"):
            assert proc.poll() is None, err_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "no banner after 90 s"
            time.sleep(0.05)
        banner = err_path.read_text(errors="replace").split(BANNER, 1)[1]
        url = f"https://{cfg.listeners.webs[0]}/mail/"
        assert f"Webmail         {url}" in banner, banner
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the dev certificate
        body = ""
        while time.monotonic() < deadline and "Pillarbox webmail" not in body:
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.2)
        assert "<title>Pillarbox webmail" in body
        fpm_pid = int(pid_file.read_text())
        assert _alive(fpm_pid)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    deadline = time.monotonic() + 10
    while _alive(fpm_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(fpm_pid), "php-fpm outlived pillarbox run"
    assert "Traceback" not in err_path.read_text(errors="replace")
