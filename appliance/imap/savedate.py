"""SAVEDATE (RFC 8514): when a message was saved into the mailbox it is in now.

Every message the store writes (delivery, APPEND, COPY, MOVE) gets a new Maildir unique
name starting ``<seconds>.M<microseconds>`` at that moment (store.names.unique_name),
and :attr:`MessageInfo.key` keeps it, so the save date needs no index column: a COPY or
MOVE makes a new name, which is what RFC 8514 1 asks ("the moment at which the message
was saved in its current mailbox"). A file delivered by another program under the
Maildir convention (``<seconds>.<unique>.<host>``) gives its delivery time; a name with
no leading time falls back to the internal date.
"""

from __future__ import annotations

import re

from appliance.store.base import MessageInfo

_STAMP = re.compile(r"(\d{1,12})(?:\.M(\d{1,6})(?!\d))?")


def save_date(info: MessageInfo) -> float:
    match = _STAMP.match(info.key)
    if match is None:
        return info.internal_date
    seconds = int(match.group(1))
    micros = int(match.group(2)) if match.group(2) else 0
    return seconds + micros / 1_000_000
