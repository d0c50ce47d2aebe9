"""`pillarbox run`: start the daemon, and in dev mode the web wizard beside it.

Dev mode (`make run`) writes ./var/pillarbox.toml from the embedded defaults on first
start, serves the domain ``pillarbox.test`` and prints where to point clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from pathlib import Path

from appliance import config, daemon
from appliance import log as applog

log = logging.getLogger(__name__)

DEV_DOMAIN = "pillarbox.test"


def _banner(cfg: config.Config) -> str:
    ls = cfg.listeners

    def first(addrs: tuple[config.Listen, ...]) -> str:
        return str(addrs[0]) if addrs else "(off)"

    return f"""
Pillarbox is running ({"dev mode, " if cfg.dev else ""}data in {cfg.data_dir})
  Web wizard      http://{first(ls.web)}/ and https://{first(ls.webs)}/
                  (unlock secret: pillarbox setup-secret -c {cfg.source})
  SMTP (MX)       {first(ls.smtp)}
  Submission      {first(ls.submission)} STARTTLS, {first(ls.submissions)} TLS
  IMAP            {first(ls.imap)} STARTTLS, {first(ls.imaps)} TLS
  POP3            {first(ls.pop3)} STARTTLS, {first(ls.pop3s)} TLS
  Certificate     {cfg.tls.cert} (self-signed: tell your client to accept it)
Add a user:       .venv/bin/pillarbox user add you@{DEV_DOMAIN} -c {cfg.source}
Stop:             Ctrl-C
"""


def _prepare_dev(path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        config.save(path, config.dev_config_text())
        print(f"wrote dev config {path}", file=sys.stderr)


def run(config_path: Path | None, *, dev: bool, web: bool) -> int:
    from appliance.cli import default_config_path

    path = config_path or (Path("var/pillarbox.toml") if dev else default_config_path())
    if dev:
        _prepare_dev(path)
    applog.setup()
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print(f"pillarbox: config: {exc}", file=sys.stderr)
        return 1
    ctx = daemon.build_context(cfg)
    if dev and not ctx.accounts.list_domains():
        ctx.accounts.add_domain(DEV_DOMAIN)
    web_proc: subprocess.Popen[bytes] | None = None
    if web and (cfg.listeners.web or cfg.listeners.webs):
        web_proc = subprocess.Popen([sys.executable, "-m", "webui", "--config", str(cfg.source)])

    def ready() -> None:
        print(_banner(cfg), file=sys.stderr, flush=True)

    try:
        asyncio.run(daemon.serve(ctx, ready))
    finally:
        if web_proc is not None:
            web_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                web_proc.wait(10)
            if web_proc.poll() is None:
                web_proc.kill()
    return 0
