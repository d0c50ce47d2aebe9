"""Webmail memory (issue 21): php-fpm's whole tree (master and children) idle and while
3 users work in Roundcube at once, on the real daemon and web front in dev mode.

``python -m bench.webmail [--seconds 20]`` prints JSON. Each user signs in over HTTP,
then loops for the given time over what the browser asks while reading mail: the message
list, one message, the folder list refresh. Figures: the tree's RSS summed (shared pages
counted in every process) and its PSS summed (shared pages split among their sharers:
what the tree really costs).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import smtplib
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil

from appliance import config
from appliance.accounts import Accounts
from appliance.webmail import max_children
from bench import procstat
from tests.harness import Daemon, write_config
from tests.web.webmail_helpers import web_front, webmail_fpm

PW = "bench horse battery staple"
MB = 1024 * 1024


def _sums(pid: int) -> tuple[int, int]:
    """(RSS, PSS) summed over the tree: PSS splits shared pages among their sharers."""
    rss = pss = 0
    for p in procstat.tree([pid]):
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


def _fpm_pid(cfg: config.Config) -> int:
    return int((cfg.webmail.data / "run" / "php-fpm.pid").read_text())


class _User(threading.Thread):
    def __init__(self, base: str, email: str, until: float) -> None:
        super().__init__(daemon=True)
        self.base, self.email, self.until = base, email, until
        self.requests = 0
        self.error: str = ""
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(self, path: str, data: dict[str, str] | None = None) -> str:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        with self.opener.open(self.base + path, data=body, timeout=60) as r:
            self.requests += 1
            return str(r.read().decode("utf-8", "replace"))

    def run(self) -> None:
        try:
            page = self.get("/mail/")
            token = re.search(r'name="_token" value="([^"]+)"', page)
            assert token, "no login token"
            form = {"_token": token.group(1), "_task": "login", "_action": "login"}
            page = self.get("/mail/?_task=login", {**form, "_user": self.email, "_pass": PW})
            api = re.search(r'"request_token":"([^"]+)"', page)
            assert api, "login failed"
            headers = {"X-Roundcube-Request": api.group(1)}
            self.opener.addheaders = list(headers.items())
            while time.monotonic() < self.until:
                self.get("/mail/?_task=mail&_action=list&_mbox=INBOX&_remote=1")
                self.get("/mail/?_task=mail&_action=show&_uid=1&_mbox=INBOX")
                self.get("/mail/?_task=mail&_action=refresh&_remote=1")
        except Exception as exc:  # reported in the figures
            self.error = repr(exc)


def measure(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-webmail-") as tmp:
        cfg_path = write_config(Path(tmp), listeners={"webs": []}, webmail={"enabled": True})
        cfg = config.load(cfg_path)
        accounts = Accounts(cfg.accounts_db)
        accounts.add_domain("pillarbox.test")
        users = [f"user{i}@pillarbox.test" for i in range(3)]
        for user in users:
            accounts.add_user(user, PW)
        with (
            Daemon(cfg_path, wait_for=("imaps", "submissions")) as daemon,
            webmail_fpm(cfg_path),
            web_front(cfg_path) as front,
        ):
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            with smtplib.SMTP_SSL(*daemon.addr("submissions"), context=ctx, timeout=30) as s:
                s.login(users[0], PW)
                for user in users:
                    msg = EmailMessage()
                    msg["From"], msg["To"], msg["Subject"] = users[0], user, "hello"
                    msg.set_content("A message to read in webmail.\n" * 50)
                    s.send_message(msg)
            scheme, host, port = front.addresses[0]
            base = f"{scheme}://{host}:{port}"
            pid = _fpm_pid(cfg)
            time.sleep(1.0)
            idle = _sums(pid)
            until = time.monotonic() + seconds
            workers = [_User(base, u, until) for u in users]
            for w in workers:
                w.start()
            peak_rss = peak_pss = 0
            children = 0
            while any(w.is_alive() for w in workers):
                rss, pss = _sums(pid)
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                children = max(children, len(procstat.tree([pid])) - 1)
                time.sleep(0.2)
            for w in workers:
                w.join(seconds + 120)
            return {
                "idle_rss_mb": round(idle[0] / MB, 1),
                "idle_pss_mb": round(idle[1] / MB, 1),
                "busy_peak_rss_mb": round(peak_rss / MB, 1),
                "busy_peak_pss_mb": round(peak_pss / MB, 1),
                "max_children": max_children(cfg),
                "children_peak": children,
                "requests": sum(w.requests for w in workers),
                "seconds": seconds,
                "errors": [w.error for w in workers if w.error],
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webmail")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(min(args.seconds, 300.0)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
