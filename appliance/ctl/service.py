"""The ctl socket service: status, reload, version, and commands other services register.

Other services register handlers with :func:`register` in their ``create(ctx)``; the
socket is created with mode 0660 so only root and the pillarbox group (the web UI) can
use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from appliance import __version__
from appliance.ctl.protocol import MAX_LINE, decode, encode
from appliance.log import new_conn_id

if TYPE_CHECKING:
    from appliance.daemon import Context, Service

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class CommandError(Exception):
    """A handler's refusal; the text is sent to the client."""


def register(ctx: Context, name: str, handler: Handler) -> None:
    ctx.ctl_handlers[name] = handler


class CtlService:
    name = "ctl"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._server: asyncio.AbstractServer | None = None
        register(ctx, "status", self._status)
        register(ctx, "version", self._version)
        register(ctx, "reload", self._reload)
        register(ctx, "stop", self._stop)

    async def _status(self, args: dict[str, Any]) -> Any:
        return self.ctx.status()

    async def _version(self, args: dict[str, Any]) -> Any:
        return {"version": __version__}

    async def _reload(self, args: dict[str, Any]) -> Any:
        error = await self.ctx.reload()
        if error:
            raise CommandError(f"config not reloaded, the old one stays in force: {error}")
        return {"reloaded": True}

    async def _stop(self, args: dict[str, Any]) -> Any:
        asyncio.get_running_loop().call_soon(self.ctx.request_stop)
        return {"stopping": True}

    async def start(self) -> None:
        path = self.ctx.config.ctl_socket
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
            self.ctx.config.ctl_socket.unlink()

    async def reload(self) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"listening": [str(self.ctx.config.ctl_socket)] if self._server else []}

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
        handlers = self.ctx.ctl_handlers
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


def create(ctx: Context) -> list[Service]:
    from appliance.ctl.mailbox import mailbox_handlers
    from appliance.delivery.recipients import quota_of

    def quota(user: str) -> int | None:
        if ctx.accounts.get_user(user) is None:
            return None
        return quota_of(ctx.accounts, user, ctx.config.limits.default_quota)

    ctx.ctl_handlers.update(mailbox_handlers(ctx.store, quota))  # the web UI's mail page
    return [CtlService(ctx)]
