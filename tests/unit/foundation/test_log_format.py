"""appliance.log.setup: one format (time, level, logger, conn id) and no known noise."""

from __future__ import annotations

import io
import logging
import re

import pytest

from appliance import log as applog


def _capture(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    applog.setup()
    return out


def test_format_and_the_asyncio_eof_noise_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        out = _capture(monkeypatch)
        # What Debian 12's Python 3.11.2 logs when an HTTPS client of the web UI closes.
        logging.getLogger("asyncio").warning(
            "returning true from eof_received() has no effect when using ssl"
        )
        logging.getLogger("asyncio").warning("something else")
        logging.getLogger("webui.serve").info("web=listening password=hunter2")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    fmt = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) \S+ conn=- "
    assert all(re.match(fmt, line) for line in lines), lines
    assert "something else" in lines[0]
    assert lines[1].endswith("web=listening password=<redacted>")
