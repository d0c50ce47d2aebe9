"""The typed error of the delivery pipeline, carrying the SMTP reply it stands for."""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


class DeliveryFailed(Exception):
    """A recipient or message refused (5xx) or deferred (4xx).

    ``text`` is public (sent to the client); details belong in the log.
    """

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def line(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


def public_text(text: str, fallback: str) -> str:
    """Filter-supplied text made safe for one reply line: printable ASCII, bounded.

    A CR or LF here would let a rule author (or a message that steers a filter) inject
    extra SMTP replies."""
    clean = "".join(c if " " <= c <= "~" else " " for c in text).strip()[:200]
    return clean or fallback


def enhanced_for(code: int, enhanced: str, default: str) -> str:
    """``enhanced`` when it is a valid RFC 3463 code of the same class as ``code``."""
    ok = _ENHANCED.fullmatch(enhanced) is not None and enhanced[0] == str(code)[0]
    return enhanced if ok else default


def relay_denied() -> DeliveryFailed:
    return DeliveryFailed(550, "5.7.1", "Relay access denied")


def unknown_user() -> DeliveryFailed:
    return DeliveryFailed(550, "5.1.1", "No such user here")


def mailbox_full() -> DeliveryFailed:
    return DeliveryFailed(452, "4.2.2", "Mailbox full, try again later")


def local_failure() -> DeliveryFailed:
    return DeliveryFailed(451, "4.3.0", "Temporary local failure, try again later")


def storage_full() -> DeliveryFailed:
    return DeliveryFailed(452, "4.3.1", "Insufficient system storage, try again later")
