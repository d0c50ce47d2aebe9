"""The ctl socket service: status, reload, version, and commands other services register.

Other services register handlers with :func:`appliance.runtime.register` in their
``create(...)`` on the daemon's one handler table; status, reload and stop act on the
:class:`~appliance.runtime.Supervisor`. The socket is created with mode 0660 so only
root and the pillarbox group (the web UI) can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from appliance import __version__
from appliance.accounts import Accounts
from appliance.config import Config
from appliance.ctl.protocol import MAX_LINE, decode, encode
from appliance.log import new_conn_id
from appliance.runtime import (
    CommandError,
    CtlHandler,
    CtlHandlers,
    Service,
    Supervisor,
    register,
)
from appliance.store.base import MailStore

log = logging.getLogger(__name__)

Handler = CtlHandler


class CtlService:
    name = "ctl"

    def __init__(self, config: Config, handlers: CtlHandlers, supervisor: Supervisor) -> None:
        self.socket = config.ctl_socket  # bound once: a reload does not move the socket
        self.handlers = handlers
        self.supervisor = supervisor
        self._server: asyncio.AbstractServer | None = None
        register(handlers, "status", self._status)
        register(handlers, "version", self._version)
        register(handlers, "reload", self._reload)
        register(handlers, "stop", self._stop)

    async def _status(self, args: dict[str, Any]) -> Any:
        return self.supervisor.status()

    async def _version(self, args: dict[str, Any]) -> Any:
        return {"version": __version__}

    async def _reload(self, args: dict[str, Any]) -> Any:
        error = await self.supervisor.reload()
        if error:
            raise CommandError(f"config not reloaded, the old one stays in force: {error}")
        return {"reloaded": True}

    async def _stop(self, args: dict[str, Any]) -> Any:
        asyncio.get_running_loop().call_soon(self.supervisor.request_stop)
        return {"stopping": True}

    async def start(self) -> None:
        path = self.socket
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(path), limit=MAX_LINE)
        os.chmod(path, 0o660)
        log.info("ctl=listening path=%s", path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    async def reload(self, new: Config) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"listening": [str(self.socket)] if self._server else []}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        new_conn_id("ctl")
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode({"ok": False, "error": "request too long"}))
                    break
                if not line:
                    break
                writer.write(encode(await self._dispatch(line)))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            req = decode(line)
        except ValueError:
            return {"ok": False, "error": "request is not a JSON object"}
        cmd = req.get("cmd")
        args = req.get("args") or {}
        handlers = self.handlers
        if not isinstance(cmd, str) or cmd not in handlers:
            return {"ok": False, "error": f"unknown command {cmd!r}; known: {sorted(handlers)}"}
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be a JSON object"}
        try:
            return {"ok": True, "result": await handlers[cmd](args)}
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception:
            log.exception("ctl=handler-failed cmd=%s", cmd)
            return {"ok": False, "error": f"{cmd} failed; see the daemon log"}


@dataclass(frozen=True)
class MailboxDeps:
    """What the mailbox.* commands (appliance.ctl.mailbox) use."""

    accounts: Accounts
    store: MailStore


def create(
    config: Config, handlers: CtlHandlers, supervisor: Supervisor, mailboxes: MailboxDeps
) -> list[Service]:
    from appliance.ctl.mailbox import mailbox_handlers
    from appliance.delivery.recipients import quota_of

    def quota(user: str) -> int | None:
        if mailboxes.accounts.get_user(user) is None:
            return None
        default = supervisor.config.limits.default_quota  # the config in force
        return quota_of(mailboxes.accounts, user, default)

    handlers.update(mailbox_handlers(mailboxes.store, quota))  # the web UI's mail page
    return [CtlService(config, handlers, supervisor)]
