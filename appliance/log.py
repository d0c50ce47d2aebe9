"""Logging: key=value lines, a connection id on every line, secrets redacted.

Protocol servers set ``CONN_ID`` (a contextvar) at the start of each connection task;
every record logged inside that task carries ``conn=<id>``. Stderr in dev, journald on
the appliance (systemd captures stderr; no timestamps added when JOURNAL_STREAM is set).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import sys

CONN_ID: contextvars.ContextVar[str] = contextvars.ContextVar("conn_id", default="-")
_counter = itertools.count(1)

# Values after these keys never reach a log line, whatever a caller formats.
_SECRET = re.compile(
    r"(?i)\b(password|passwd|pass|secret|token|auth_plain|authorization)=(\"[^\"]*\"|\S+)"
)


def new_conn_id(prefix: str) -> str:
    """Set and return a fresh id for the current connection task, e.g. 'smtp-42'."""
    cid = f"{prefix}-{next(_counter)}"
    CONN_ID.set(cid)
    return cid


# Debian 12's Python 3.11.2 warns on every HTTPS connection the web UI closes (its
# StreamReaderProtocol still answers True from eof_received after StreamWriter.start_tls);
# the pyenv 3.11.7 here does not. Nothing to act on: the connection closes as it should.
_ASYNCIO_NOISE = frozenset({"returning true from eof_received() has no effect when using ssl"})


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.conn = CONN_ID.get()
        msg = record.getMessage()
        if record.name == "asyncio" and msg in _ASYNCIO_NOISE:
            return False
        redacted = _SECRET.sub(r"\1=<redacted>", msg)
        if redacted != msg:
            record.msg, record.args = redacted, None
        return True


def redact(text: str) -> str:
    return _SECRET.sub(r"\1=<redacted>", text)


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        fmt = "%(levelname)s %(name)s conn=%(conn)s %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s conn=%(conn)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("mail.log", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
