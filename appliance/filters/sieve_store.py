"""Per-user Sieve scripts on disk: validate, save atomically, load compiled.

Used by the web UI editor (``save_script`` raises :class:`SieveSyntaxError` with the
line and column of the first problem, leaving the stored script untouched) and by the
daemon's Sieve filter (``compiled``, cached until the file changes).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from pathlib import Path

from appliance import atomicfile
from appliance.filters.sieve_parse import Command, SieveSyntaxError, parse

__all__ = ["SieveStore", "SieveSyntaxError", "store_for", "validate"]

_USER_RE = re.compile(r"^[^\s/\\@]+@[^\s/\\@]+$")


def validate(text: str) -> None:
    """Raise SieveSyntaxError(message, line, column) when ``text`` is not a usable script."""
    parse(text)


class SieveStore:
    """Scripts live in ``root/<user>.sieve`` (one active script per user)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], list[Command]]] = {}

    def path_for(self, user: str) -> Path:
        user = user.strip().lower()
        if not _USER_RE.match(user) or user.startswith("."):
            raise ValueError(f"not a user address: {user!r}")
        return self.root / (urllib.parse.quote(user, safe="@._+-") + ".sieve")

    def get_script(self, user: str) -> str | None:
        try:
            return self.path_for(user).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def save_script(self, user: str, text: str) -> None:
        """Validate, then write atomically (tmp file, fsync, rename, fsync directory)."""
        validate(text)
        path = self.path_for(user)
        self.root.mkdir(parents=True, exist_ok=True)
        atomicfile.write_text(path, text)

    def delete_script(self, user: str) -> bool:
        try:
            self.path_for(user).unlink()
        except FileNotFoundError:
            return False
        return True

    def compiled(self, user: str) -> list[Command] | None:
        """The parsed script, or None when the user has none. Raises SieveSyntaxError
        for a broken file (written behind the web UI's back)."""
        path = self.path_for(user)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._cache.get(path.name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        script = parse(path.read_text(encoding="utf-8"))
        with self._lock:
            self._cache[path.name] = (stamp, script)
        return script


def store_for(data_dir: Path) -> SieveStore:
    """The store the daemon uses: ``<data_dir>/sieve`` (pass ``config.data_dir``)."""
    return SieveStore(data_dir / "sieve")
