"""The repository password: generated once, kept 0600 under data_dir, shown for safekeeping.

Seven groups of four characters from a 32-letter alphabet without look-alikes (no i, l,
o, u): 7 * 4 * 5 = 140 bits from :mod:`secrets`. Created whole or not at all, never over
an existing password (appliance.atomicfile.create): replacing it would lock the box out
of its own backups.

The password is shown on the recovery sheet until an admin confirms they stored it;
after that the sheet lists everything else but not the password.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance import atomicfile

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
GROUPS = 7
GROUP_LEN = 4
ACK_NAME = "recovery-sheet-acknowledged"


class PasswordError(Exception):
    pass


def generate(choice: Callable[[str], str] = secrets.choice) -> str:
    return "-".join("".join(choice(ALPHABET) for _ in range(GROUP_LEN)) for _ in range(GROUPS))


def entropy_bits() -> float:
    return GROUPS * GROUP_LEN * 5.0  # log2(32) = 5


def write_new(path: Path, password: str) -> None:
    """Create ``path`` (mode 0600, parent 0700) holding ``password``; never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        os.chmod(path.parent, 0o700)
    if not atomicfile.create(path, (password + "\n").encode(), mode=0o600):
        raise PasswordError(f"a repository password already exists at {path}")


def read(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise PasswordError(f"no repository password at {path}") from None
    if not text:
        raise PasswordError(f"the repository password file {path} is empty")
    return text


def normalise(text: str) -> str:
    """A password typed back from the paper sheet: trims spaces around it."""
    return text.strip()


@dataclass(frozen=True)
class SheetState:
    password: str | None  # None once acknowledged
    created: float
    acknowledged: bool


def sheet_state(path: Path) -> SheetState:
    """What the recovery sheet may show right now."""
    pw = read(path)
    ack = path.parent / ACK_NAME
    created = path.stat().st_mtime
    if ack.exists():
        return SheetState(None, created, True)
    return SheetState(pw, created, False)


def acknowledge(path: Path) -> None:
    """The admin has stored the password: stop showing it."""
    ack = path.parent / ACK_NAME
    ack.write_text(f"{time.time():.0f}\n")
