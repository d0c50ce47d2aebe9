"""Whether a process id recorded in a file (a backup run's status, a temporary file's
name) still names a live process on this host."""

from __future__ import annotations

import os


def alive(pid: object) -> bool:
    """True for a running process (also another user's); False for anything else."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
