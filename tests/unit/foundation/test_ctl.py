from __future__ import annotations

import asyncio
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.ctl.client import CtlClient
from appliance.ctl.protocol import CtlError
from appliance.ctl.service import CtlService
from appliance.runtime import CommandError, CtlHandlers, Supervisor, register
from appliance.tls import TlsManager
from tests.harness import write_config


@dataclass
class Parts:
    """What the ctl service is built from: the supervisor and the handler table."""

    supervisor: Supervisor
    ctl_handlers: CtlHandlers = field(default_factory=dict)

    @property
    def config(self) -> config.Config:
        return self.supervisor.config


def make_ctx(tmp_path: Path) -> Parts:
    cfg = config.load(write_config(tmp_path))
    return Parts(Supervisor(cfg, TlsManager(cfg.tls.cert, cfg.tls.key, cfg.hostname, True)))


def run_with_ctl(ctx: Parts, client_work: Any) -> Any:
    async def main() -> Any:
        svc = CtlService(ctx.config, ctx.ctl_handlers, ctx.supervisor)
        ctx.supervisor.services = [svc]
        await svc.start()
        try:
            return await asyncio.to_thread(client_work, CtlClient(ctx.config.ctl_socket, 10))
        finally:
            await svc.stop()

    return asyncio.run(main())


def test_status_version_and_socket_mode(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)

    def work(c: CtlClient) -> Any:
        mode = stat.S_IMODE(ctx.config.ctl_socket.stat().st_mode)
        return c.call("status"), c.call("version"), mode

    status, version, mode = run_with_ctl(ctx, work)
    assert status["hostname"] == "mail.pillarbox.test"
    assert status["services"]["ctl"]["listening"] == [str(ctx.config.ctl_socket)]
    assert version["version"]
    assert mode == 0o660
    assert not ctx.config.ctl_socket.exists()  # removed on stop


def test_reload_keeps_old_config_when_invalid(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    source = ctx.config.source
    assert source is not None

    def work(c: CtlClient) -> Any:
        good = source.read_text()
        source.write_text(good.replace("mail.pillarbox.test", "mx.example.org"))
        assert c.call("reload") == {"reloaded": True}
        assert c.call("status")["hostname"] == "mx.example.org"
        source.write_text(good + "\n[limits]\nmax_message_size = 1\n")
        with pytest.raises(CtlError, match=r"old one stays.*limits.max_message_size"):
            c.call("reload")
        return c.call("status")["hostname"]

    assert run_with_ctl(ctx, work) == "mx.example.org"


def test_unknown_command_bad_json_and_handler_errors(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)

    async def refuse(args: dict[str, Any]) -> Any:
        raise CommandError(f"no such queue id {args.get('id')}")

    async def crash(args: dict[str, Any]) -> Any:
        raise RuntimeError("internal detail that must not leak")

    register(ctx.ctl_handlers, "refuse", refuse)
    register(ctx.ctl_handlers, "crash", crash)

    def work(c: CtlClient) -> Any:
        with pytest.raises(CtlError, match="unknown command 'nope'"):
            c.call("nope")
        with pytest.raises(CtlError, match="no such queue id 42"):
            c.call("refuse", id=42)
        with pytest.raises(CtlError) as err:
            c.call("crash")
        assert "internal detail" not in str(err.value)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(ctx.config.ctl_socket))
            s.sendall(b"[1,2]\nnot json\n")
            data = b""
            while data.count(b"\n") < 2:
                data += s.recv(4096)
        return data

    data = run_with_ctl(ctx, work)
    assert data.count(b'"ok":false') == 2


def test_client_reports_daemon_not_running(tmp_path: Path) -> None:
    with pytest.raises(CtlError, match="not running"):
        CtlClient(tmp_path / "none.sock").call("status")
