"""The OutboundQueue protocol: what SMTP submission needs from the outbound queue."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class OutboundQueue(Protocol):
    def enqueue(self, sender: str, recipients: Sequence[str], message: Path) -> str:
        """Durably spool a copy of ``message`` (data fsynced, metadata fsynced) for
        ``recipients`` and return the queue id. Blocking; raises OSError on failure."""
        ...
