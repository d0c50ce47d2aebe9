"""Spam learning from user actions: IMAP moves into Junk (spam) or out of it (ham).

``await learn(config, "spam", path)`` trains rspamd's classifier with the message file
(the IMAP layer passes the stored message path). With rspamd off it does nothing and
returns False; failures are logged and return False, never raise.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

from appliance import config
from appliance.filters.rspamd import RspamdClient, RspamdError

log = logging.getLogger(__name__)


def _password(cfg: config.Filters) -> str:
    if cfg.rspamd_password_file is None:
        return ""
    try:
        return cfg.rspamd_password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        log.error("rspamd=password-unreadable path=%s reason=%s", cfg.rspamd_password_file, exc)
        return ""


def client_for(cfg: config.Filters) -> RspamdClient:
    """Blocking (reads the password file): call from a thread or at start-up."""
    return RspamdClient(cfg.rspamd_url, cfg.rspamd_controller_url, _password(cfg))


async def learn(cfg: config.Config, kind: Literal["spam", "ham"], path: Path) -> bool:
    """Teach rspamd that the message at ``path`` is ``kind``; True when it was learned."""
    if not cfg.filters.rspamd:
        return False
    client = await asyncio.to_thread(client_for, cfg.filters)
    try:
        ok = await client.learn(kind, path)
    except RspamdError as exc:
        log.warning("learn=failed kind=%s path=%s reason=%s", kind, path, exc)
        return False
    log.info("learn=ok kind=%s path=%s", kind, path.name)
    return ok
