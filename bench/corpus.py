"""Real-looking test messages, generated deterministically (seeded), for loads and fills."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

WORDS = [
    "meeting",
    "invoice",
    "budget",
    "garden",
    "holiday",
    "report",
    "photos",
    "family",
    "weekend",
    "project",
    "deadline",
    "summary",
    "coffee",
    "train",
    "ticket",
    "recipe",
    "football",
    "school",
    "doctor",
    "update",
    "quarterly",
    "review",
    "draft",
    "contract",
    "repair",
    "music",
    "concert",
    "birthday",
    "dinner",
]
NEEDLE = "zanzibarquokka"  # appears in 1% of bodies: the SEARCH TEXT target


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))
        out.append(line)
        n += len(line) + 2
    return "\r\n".join(out)


def message(i: int, size: int, *, to: str, seed: int = 7) -> bytes:
    """An RFC 5322 message of about ``size`` bytes with CRLF line ends."""
    rng = random.Random(seed * 1_000_003 + i)
    subject = " ".join(rng.choice(WORDS) for _ in range(4))
    sender = f"{rng.choice(WORDS)}.{rng.choice(WORDS)}@sender{rng.randint(1, 50)}.example"
    when = datetime.fromtimestamp(1_700_000_000 + i * 61, UTC)
    headers = (
        f"From: {sender.split('@')[0].title()} <{sender}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject} #{i}\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: <bench-{seed}-{i}@sender.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    )
    body = _text(rng, max(64, size - len(headers)))
    if i % 100 == 0:
        body += f"\r\nthe code word is {NEEDLE}\r\n"
    return (headers + body + "\r\n").encode()


def maildir_files(count: int, size: int, *, to: str) -> Iterator[tuple[str, bytes]]:
    """(filename, content) pairs for a Maildir cur/ directory, all marked seen."""
    base = int(time.time())
    for i in range(count):
        data = message(i, size, to=to)
        yield f"{base}.M{i}P1.bench,S={len(data)}:2,S", data
