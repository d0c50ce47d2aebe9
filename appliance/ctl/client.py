"""Blocking ctl client used by the CLI and the web UI."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from appliance.ctl.protocol import MAX_LINE, CtlError, decode, encode


class CtlClient:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one command; return its result or raise CtlError with the daemon's text."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                sock.sendall(encode({"cmd": cmd, "args": args}))
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > MAX_LINE:
                        raise CtlError("reply too long")
        except (FileNotFoundError, ConnectionRefusedError):
            raise CtlError(f"the daemon is not running (no socket at {self.path})") from None
        except OSError as exc:
            raise CtlError(f"cannot talk to the daemon at {self.path}: {exc}") from None
        if not buf:
            raise CtlError("the daemon closed the connection without answering")
        try:
            reply = decode(buf)
        except ValueError as exc:
            raise CtlError(f"bad reply from the daemon: {exc}") from None
        if not reply.get("ok"):
            raise CtlError(str(reply.get("error", "unknown error")))
        return reply.get("result")
