"""The OutboundQueue protocol: what SMTP submission needs from the outbound queue."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from appliance.queue.spool import EntryKind, Origin


class OutboundQueue(Protocol):
    def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        message: Path,
        *,
        kind: EntryKind = "message",
        origin: Origin | None = None,
        wire_sender: str = "",
        auth_results: str = "",
        forward_domain: str = "",
        queue_id: str = "",
    ) -> str:
        """Durably spool a copy of ``message`` (data fsynced, metadata fsynced) for
        ``recipients`` and return the queue id. Blocking; raises OSError on failure.
        ``kind`` "bounce" marks the box's own DSNs (shown by ``queue.list``).

        ``origin`` decides signing (see :data:`appliance.queue.spool.Origin`); a forward
        carries its SRS ``wire_sender``, this box's ``auth_results`` (for the ARC seal)
        and the ``forward_domain`` that seals it. ``queue_id``: the id the message
        already has (SMTP's "queued as"), kept when free; empty: a new one."""
        ...
