"""`pillarbox run`: start the daemon, and in dev mode the web wizard beside it.

Dev mode (`make run`) writes ./var/pillarbox.toml from the embedded defaults on first
start, serves the domain ``pillarbox.test`` and prints where to point clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import subprocess
import sys
import time
from pathlib import Path

from appliance import config, daemon
from appliance import log as applog
from appliance.cliconfig import default_config_path
from appliance.setupsecret import box_is_set_up
from appliance.webmail import fpm_binary, installed

log = logging.getLogger(__name__)

DEV_DOMAIN = "pillarbox.test"
# The banner is printed once every listener, the web server's included, accepts
# connections; the web process gets this long to bind before the banner says it is down.
WEB_WAIT_SECONDS = 60.0
BANNER_FIRST_WORDS = "Pillarbox is running"


def _banner(cfg: config.Config, web: str, webmail: str = "") -> str:
    """The start banner. ``web`` is the web line(s): see :func:`_web_lines`; ``webmail``
    the webmail line (:func:`_webmail_line`)."""
    ls = cfg.listeners

    def first(addrs: tuple[config.Listen, ...]) -> str:
        return str(addrs[0]) if addrs else "(off)"

    return f"""
{BANNER_FIRST_WORDS} ({"dev mode, " if cfg.dev else ""}data in {cfg.data_dir})
{web}{webmail}
  SMTP (MX)       {first(ls.smtp)}
  Submission      {first(ls.submission)} STARTTLS, {first(ls.submissions)} TLS
  IMAP            {first(ls.imap)} STARTTLS, {first(ls.imaps)} TLS
  POP3            {first(ls.pop3)} STARTTLS, {first(ls.pop3s)} TLS
  Certificate     {cfg.tls.cert} (self-signed: tell your client to accept it)
Add a user:       .venv/bin/pillarbox user add you@{DEV_DOMAIN} -c {cfg.source}
Stop:             Ctrl-C
"""


def _web_lines(cfg: config.Config, state: str) -> str:
    """state: "setup" (no admin yet), "done" (an admin exists), "off", "down"."""
    urls = [f"http://{a}/" for a in cfg.listeners.web] + [
        f"https://{a}/" for a in cfg.listeners.webs
    ]
    if state == "off":
        return "  Web wizard      not started (--no-web)"
    if state == "down":
        return "  Web wizard      NOT ANSWERING on " + " ".join(urls) + " (see the log above)"
    if state == "done":
        return "  Web dashboard   setup done \u2014 sign in at " + " or ".join(urls)
    return (
        "  Web wizard      "
        + " and ".join(urls)
        + f"\n                  (unlock secret: .venv/bin/pillarbox setup-secret -c {cfg.source})"
    )


def _webmail_problem(cfg: config.Config) -> str:
    """Why dev mode cannot run webmail, or "" when it can."""
    if not cfg.webmail.enabled:
        return "off ([webmail] enabled = false)"
    if not installed():
        return "not started: Roundcube is not installed (make run installs it)"
    if fpm_binary() is None:
        return "not started: php-fpm is not installed (make run installs php8.2-fpm)"
    return ""


def _webmail_line(cfg: config.Config, problem: str, fpm: subprocess.Popen[bytes] | None) -> str:
    if problem:
        return f"\n  Webmail         {problem}"
    if fpm is not None and fpm.poll() is not None:
        return f"\n  Webmail         NOT RUNNING: php-fpm exited with {fpm.returncode}"
    urls = [f"https://{a}/mail/" for a in cfg.listeners.webs] or [
        f"http://{a}/mail/" for a in cfg.listeners.web
    ]
    return "\n  Webmail         " + " or ".join(urls)


def _start_webmail(cfg: config.Config) -> subprocess.Popen[bytes]:
    """php-fpm for Roundcube as a child (the box runs it as a service of its own)."""
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.webmail", "serve", "--config", str(cfg.source)]
    )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


async def _answers(host: str, port: int, tls: bool) -> bool:
    """True once host:port accepts a connection (with a finished TLS handshake for HTTPS,
    so the web server logs no aborted handshake)."""
    ctx: ssl.SSLContext | None = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # only "does it answer": the dev cert is self-signed
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), 2.0)
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


async def _web_state(cfg: config.Config, web_proc: subprocess.Popen[bytes] | None) -> str:
    """Wait until every web listener accepts connections (the web runs in its own
    process), at most WEB_WAIT_SECONDS; then whether setup is done."""
    if web_proc is None:
        return "off"
    addrs = [(a, False) for a in cfg.listeners.web] + [(a, True) for a in cfg.listeners.webs]
    deadline = time.monotonic() + WEB_WAIT_SECONDS
    while addrs:
        if web_proc.poll() is not None:
            log.error("dev=web-exited code=%s", web_proc.returncode)
            return "down"
        if time.monotonic() > deadline:
            log.error("dev=web-not-answering seconds=%s", WEB_WAIT_SECONDS)
            return "down"
        if await _answers(addrs[0][0].host, addrs[0][0].port, addrs[0][1]):
            addrs.pop(0)
        else:
            await asyncio.sleep(0.1)
    return "done" if await asyncio.to_thread(box_is_set_up, cfg) else "setup"


def _prepare_dev(path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        config.save(path, config.dev_config_text())
        print(f"wrote dev config {path}", file=sys.stderr)


def run(config_path: Path | None, *, dev: bool, web: bool) -> int:
    path = config_path or (Path("var/pillarbox.toml") if dev else default_config_path())
    if dev:
        _prepare_dev(path)
    applog.setup()
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print(f"pillarbox: config: {exc}", file=sys.stderr)
        return 1
    box = daemon.build(cfg)
    if dev and not box.accounts.list_domains():
        box.accounts.add_domain(DEV_DOMAIN)
    web_proc: subprocess.Popen[bytes] | None = None
    fpm_proc: subprocess.Popen[bytes] | None = None
    web_on = web and bool(cfg.listeners.web or cfg.listeners.webs)
    webmail_problem = _webmail_problem(cfg) if web_on else ""
    if web_on and dev and not webmail_problem:
        fpm_proc = _start_webmail(cfg)
    if web_on:
        web_proc = subprocess.Popen([sys.executable, "-m", "webui", "--config", str(cfg.source)])
    announce: set[asyncio.Task[None]] = set()

    async def announce_when_web_answers() -> None:
        state = await _web_state(cfg, web_proc)
        mail = _webmail_line(cfg, webmail_problem, fpm_proc) if dev and web_on else ""
        print(_banner(cfg, _web_lines(cfg, state), mail), file=sys.stderr, flush=True)

    def ready() -> None:  # called in the daemon's loop once its own listeners are bound
        task = asyncio.get_running_loop().create_task(announce_when_web_answers())
        announce.add(task)
        task.add_done_callback(announce.discard)

    try:
        asyncio.run(daemon.serve(box, ready))
    finally:
        _stop(web_proc)
        _stop(fpm_proc)
    return 0
