"""Fixtures for SMTP protocol tests (helpers live in smtpenv.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.protocol.smtp.smtpenv import SmtpEnv, make_template, start, stop


@pytest.fixture
def smtp_limits() -> dict[str, Any]:
    """Override in a test module (or parametrize indirectly) to change [limits]."""
    return {"max_message_size": 1024 * 1024, "max_recipients": 5, "command_timeout": 30}


@pytest.fixture(scope="session")
def smtp_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("smtp-template"))


@pytest.fixture
def env(tmp_path: Path, smtp_limits: dict[str, Any], smtp_template: Path) -> Iterator[SmtpEnv]:
    e, thread = start(tmp_path, smtp_limits, smtp_template)
    try:
        yield e
    finally:
        stop(e, thread)
