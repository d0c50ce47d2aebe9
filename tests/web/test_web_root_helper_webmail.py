"""The root helper's webmail.apply: the webmail unit follows the web UI's switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.test_web_root_helper import run


@pytest.mark.parametrize(
    ("enabled", "command"),
    [
        (True, ["systemctl", "restart", "pillarbox-webmail.service"]),
        (False, ["systemctl", "stop", "pillarbox-webmail.service"]),
    ],
)
def test_webmail_apply_runs_one_fixed_command(
    enabled: bool, command: list[str], tmp_path: Path
) -> None:
    code, reply, commands = run({"action": "webmail.apply", "args": {"enabled": enabled}}, tmp_path)
    assert code == 0, reply
    assert reply["ok"] is True
    assert reply["unit"] == "pillarbox-webmail.service"
    assert reply["active"] is enabled
    assert commands == [command]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({}, "missing argument 'enabled'"),
        ({"enabled": "yes"}, "argument 'enabled' must be a bool"),
        ({"enabled": 1}, "argument 'enabled' must be a bool"),
        ({"enabled": True, "unit": "ssh.service"}, "unknown argument 'unit'"),
    ],
)
def test_webmail_apply_refuses_other_arguments(
    args: dict[str, Any], error: str, tmp_path: Path
) -> None:
    code, reply, commands = run({"action": "webmail.apply", "args": args}, tmp_path)
    assert code == 1
    assert reply["ok"] is False
    assert error in reply["error"]
    assert commands == []
