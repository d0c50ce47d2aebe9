"""A ctl for the web tests whose sieve.* and mailbox.* commands are the daemon's real
handlers over a real Sieve store and Maildir store (in the test's box directory); every
other command is answered by FakeCtl."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import config
from appliance.accounts import Accounts
from appliance.ctl.mailbox import Handler, mailbox_handlers
from appliance.ctl.protocol import CtlError
from appliance.filters.sieve_ctl import sieve_handlers
from appliance.filters.sieve_store import SieveStore, store_for
from appliance.mime.summary import summarize
from appliance.runtime import CommandError
from appliance.store.maildir import MaildirStore
from tests.web.web_helpers import FakeCtl


@dataclass
class MailCtl(FakeCtl):
    cfg: config.Config | None = None
    handlers: dict[str, Handler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.cfg is not None
        cfg = self.cfg
        self.store = MaildirStore(cfg.mail_dir, lambda _e: None, summarize)
        self.sieve: SieveStore = store_for(cfg.data_dir)

        def quota(user: str) -> int | None:
            record = Accounts(cfg.accounts_db).get_user(user)
            return None if record is None else record.quota_bytes

        self.handlers = {**sieve_handlers(self.sieve), **mailbox_handlers(self.store, quota)}

    def call(self, cmd: str, **args: Any) -> Any:
        if cmd not in self.handlers:
            return super().call(cmd, **args)
        self.calls.append(cmd)
        self.call_args.append(args)
        if not self.running:
            raise CtlError("the daemon is not running")
        try:
            return asyncio.run(self.handlers[cmd](args))
        except CommandError as exc:
            raise CtlError(str(exc)) from None

    def put(self, user: str, mailbox: str, subject: str, tmp: Path) -> None:
        """A message in ``mailbox`` of ``user`` (as delivery would store it)."""
        self.store.ensure_user(user)
        src = tmp / f"{user}-{mailbox}-{subject}.eml".replace("/", "_")
        src.write_bytes(f"From: x@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())
        self.store.append(user, mailbox, src)
