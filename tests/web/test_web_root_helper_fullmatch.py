"""Root-helper arguments are matched whole: a trailing newline is not a valid device,
UUID or label (a pattern ending in ``$`` alone accepted "/dev/sdb\\n")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.test_web_root_helper import MOUNTS, run

UUID = "0a1b2c3d-1111-2222-3333-444455556666"


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"action": "smart", "args": {"device": "/dev/sdb\n"}}, "whole disk"),
        ({"action": "disk.mount", "args": {"uuid": UUID + "\n"}}, "uuid must look like"),
        (
            {
                "action": "disk.format",
                "args": {"device": "/dev/sdb\n", "confirm": "ERASE sdb\n", "label": "box"},
            },
            "whole disk",
        ),
        (
            {
                "action": "disk.format",
                "args": {"device": "/dev/sdb", "confirm": "ERASE sdb", "label": "box\n"},
            },
            "label",
        ),
    ],
)
def test_trailing_newline_refused(tmp_path: Path, request_: Any, error: str) -> None:
    code, reply, commands = run(request_, tmp_path, mounts=MOUNTS)
    assert code == 1 and error in reply["error"]
    assert commands == []
