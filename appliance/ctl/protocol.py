"""The ctl wire format: one JSON object per line each way over a Unix socket.

Request:  {"cmd": "status", "args": {...}}
Response: {"ok": true, "result": ...}  or  {"ok": false, "error": "text"}
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 1024 * 1024


class CtlError(Exception):
    """The daemon answered ok=false, or could not be reached."""


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("a ctl message must be a JSON object")
    return obj
