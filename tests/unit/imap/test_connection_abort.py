"""Connection.abort after the connection was closed (server shutdown after a session's
own close): Python 3.11.2's TLS transport raises AttributeError from abort() once it was
closed twice, so abort() must leave a closing transport alone."""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.imap.connection import Connection


class _Transport:
    def __init__(self, closing: bool) -> None:
        self.closing = closing
        self.aborted = 0

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        if self.closing:  # what 3.11.2's _SSLProtocolTransport does after two close()s
            raise AttributeError("'NoneType' object has no attribute '_abort'")
        self.aborted += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _Writer:
    def __init__(self, transport: _Transport) -> None:
        self.transport = transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def _abort(transport: _Transport) -> None:
    # Built inside a running loop: a StreamReader made outside one fails when an
    # earlier test left no current event loop.
    conn = Connection(asyncio.StreamReader(), _Writer(transport))  # type: ignore[arg-type]
    conn.abort()


def test_abort_of_a_closed_connection_is_a_no_op() -> None:
    transport = _Transport(closing=True)
    asyncio.run(_abort(transport))
    assert transport.aborted == 0


def test_abort_of_an_open_connection_drops_it() -> None:
    transport = _Transport(closing=False)
    asyncio.run(_abort(transport))
    assert transport.aborted == 1
