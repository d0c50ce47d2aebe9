"""Per-user Sieve scripts on disk: named scripts, one active; validate, save atomically,
load the active one compiled.

Layout under ``root``: ``<user>.scripts/<name>.sieve`` per script (both parts
percent-encoded) and ``<user>.scripts/active``, a pointer file holding the active
script's name. Activation rewrites the pointer with :mod:`appliance.atomicfile` (a
crash leaves the old pointer or the new, never none or two); deactivation unlinks it.

Two kinds of callers:

- the web UI editor and delivery see "the active script": :meth:`SieveStore.get_script`,
  :meth:`~SieveStore.save_script` (creates and activates ``pillarbox`` when the user has
  no active script), :meth:`~SieveStore.delete_script`, :meth:`~SieveStore.compiled`
  (cached until the file or the pointer changes);
- ManageSieve (RFC 5804) sees every script by name: :meth:`~SieveStore.list_scripts`,
  :meth:`~SieveStore.read`, :meth:`~SieveStore.put`, :meth:`~SieveStore.set_active`,
  :meth:`~SieveStore.delete`, :meth:`~SieveStore.rename`.

A single-script file of the old layout, ``root/<user>.sieve`` (a backup restore may
bring one back), becomes the active script ``pillarbox`` on the user's next access; the
migration redoes itself until the old file is gone, so a crash during it loses nothing.
Saving validates first (:class:`SieveSyntaxError` with line and column) and leaves the
stored script untouched on an error. Blocking: async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
import urllib.parse
from pathlib import Path

from appliance import atomicfile
from appliance.filters.sieve_parse import Command, SieveSyntaxError, parse

__all__ = [
    "DEFAULT_NAME",
    "MAX_NAME_OCTETS",
    "BadScriptName",
    "NoSuchScript",
    "ScriptActive",
    "ScriptExists",
    "SieveStore",
    "SieveSyntaxError",
    "TooManyScripts",
    "check_name",
    "store_for",
    "validate",
]

_USER_RE = re.compile(r"^[^\s/\\@]+@[^\s/\\@]+$")
DEFAULT_NAME = "pillarbox"  # the script the web page creates when none is active
MAX_NAME_OCTETS = 80  # UTF-8; percent-encoded (x3) plus ".sieve" stays below NAME_MAX 255
_SUFFIX = ".sieve"
_ACTIVE = "active"  # the pointer file; never ends in _SUFFIX, so it is no script

# One lock per store directory, shared by every SieveStore on it (the daemon builds
# several: delivery, the ctl commands, ManageSieve).
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


class NoSuchScript(LookupError):
    """RFC 5804 NONEXISTENT."""


class ScriptExists(ValueError):
    """RFC 5804 ALREADYEXISTS."""


class ScriptActive(ValueError):
    """RFC 5804 ACTIVE: the active script cannot be deleted."""


class TooManyScripts(ValueError):
    """RFC 5804 QUOTA/MAXSCRIPTS."""


class BadScriptName(ValueError):
    """A name RFC 5804 1.6 does not allow, or longer than MAX_NAME_OCTETS."""


def validate(text: str) -> None:
    """Raise SieveSyntaxError(message, line, column) when ``text`` is not a usable script."""
    parse(text)


def check_name(name: str) -> None:
    """RFC 5804 1.6: a script name is non-empty Net-Unicode without control characters
    (U+0000-U+001F, U+007F-U+009F, U+2028, U+2029)."""
    if not name:
        raise BadScriptName("empty script name")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in name):
        raise BadScriptName("control character in script name")
    if unicodedata.normalize("NFC", name) != name:  # RFC 5198 2: Net-Unicode is NFC
        raise BadScriptName("script name is not in Unicode NFC")
    if len(name.encode("utf-8")) > MAX_NAME_OCTETS:
        raise BadScriptName(f"script name longer than {MAX_NAME_OCTETS} octets")


def _encode(name: str) -> str:
    return urllib.parse.quote(name, safe="") + _SUFFIX


def _decode(filename: str) -> str:
    return urllib.parse.unquote(filename[: -len(_SUFFIX)])


class SieveStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        with _LOCKS_LOCK:
            self._lock = _LOCKS.setdefault(root.absolute(), threading.Lock())
        self._cache_lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[str, int, int], list[Command]]] = {}

    # ------------------------------------------------------------ paths

    def _user_key(self, user: str) -> str:
        user = user.strip().lower()
        if not _USER_RE.match(user) or user.startswith("."):
            raise ValueError(f"not a user address: {user!r}")
        return urllib.parse.quote(user, safe="@._+-")

    def path_for(self, user: str) -> Path:
        """The old layout's single script file (migrated on the user's next access)."""
        return self.root / (self._user_key(user) + _SUFFIX)

    def user_dir(self, user: str) -> Path:
        # ".scripts", not ".sieve": no user's directory is another user's old file.
        return self.root / (self._user_key(user) + ".scripts")

    def _script(self, user: str, name: str) -> Path:
        check_name(name)
        return self.user_dir(user) / _encode(name)

    # ------------------------------------------------------------ helpers (lock held)

    def _migrate(self, user: str) -> None:
        legacy = self.path_for(user)
        try:
            data = legacy.read_bytes()
        except FileNotFoundError:
            return
        directory = self.user_dir(user)
        directory.mkdir(parents=True, exist_ok=True)
        atomicfile.write_bytes(directory / _encode(DEFAULT_NAME), data)
        atomicfile.write_text(directory / _ACTIVE, DEFAULT_NAME)
        legacy.unlink()
        atomicfile.fsync_dir(self.root)

    def _active(self, user: str) -> str | None:
        try:
            name = (self.user_dir(user) / _ACTIVE).read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None
        try:
            exists = self._script(user, name).exists()
        except BadScriptName:
            return None
        return name if exists else None

    def _names(self, user: str) -> list[str]:
        try:
            entries = os.listdir(self.user_dir(user))
        except FileNotFoundError:
            return []
        return sorted(_decode(e) for e in entries if e.endswith(_SUFFIX))

    def _write(self, user: str, name: str, text: str) -> None:
        path = self._script(user, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_text(path, text)

    def _point(self, user: str, name: str | None) -> None:
        pointer = self.user_dir(user) / _ACTIVE
        if name is not None:
            atomicfile.write_text(pointer, name)
            return
        try:
            pointer.unlink()
        except FileNotFoundError:
            return
        atomicfile.fsync_dir(pointer.parent)

    # ------------------------------------------------------------ the active script

    def active_name(self, user: str) -> str | None:
        with self._lock:
            self._migrate(user)
            return self._active(user)

    def get_script(self, user: str) -> str | None:
        """The active script's text, or None when no script is active."""
        with self._lock:
            self._migrate(user)
            name = self._active(user)
            if name is None:
                return None
            try:
                return self._script(user, name).read_bytes().decode("utf-8")
            except FileNotFoundError:
                return None

    def save_script(self, user: str, text: str) -> None:
        """Validate, then replace the active script; with none active, create one
        (``pillarbox``, or ``pillarbox-N`` when that name holds an inactive script)
        and activate it."""
        validate(text)
        with self._lock:
            self._migrate(user)
            name = self._active(user)
            if name is not None:
                self._write(user, name, text)
                return
            taken = set(self._names(user))
            name = DEFAULT_NAME
            n = 0
            while name in taken:
                n += 1
                name = f"{DEFAULT_NAME}-{n}"
            self._write(user, name, text)
            self._point(user, name)

    def delete_script(self, user: str) -> bool:
        """Deactivate and remove the active script; False when none was active."""
        with self._lock:
            self._migrate(user)
            name = self._active(user)
            if name is None:
                return False
            self._point(user, None)
            self._script(user, name).unlink()
            atomicfile.fsync_dir(self.user_dir(user))
            return True

    def compiled(self, user: str) -> list[Command] | None:
        """The parsed active script, or None when the user has none. Raises
        SieveSyntaxError for a broken file (written behind the store's back)."""
        with self._lock:
            self._migrate(user)
            name = self._active(user)
            if name is None:
                return None
            path = self._script(user, name)
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            stamp = (name, st.st_mtime_ns, st.st_size)
            key = self._user_key(user)
            with self._cache_lock:
                cached = self._cache.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            text = path.read_bytes().decode("utf-8")
        script = parse(text)
        with self._cache_lock:
            self._cache[key] = (stamp, script)
        return script

    # ------------------------------------------------------------ scripts by name

    def list_scripts(self, user: str) -> list[tuple[str, bool]]:
        """(name, active) for each script, sorted by name."""
        with self._lock:
            self._migrate(user)
            active = self._active(user)
            return [(name, name == active) for name in self._names(user)]

    def read(self, user: str, name: str) -> str:
        with self._lock:
            self._migrate(user)
            try:
                return self._script(user, name).read_bytes().decode("utf-8")
            except FileNotFoundError:
                raise NoSuchScript(name) from None

    def put(self, user: str, name: str, text: str, *, max_scripts: int | None = None) -> None:
        """Validate and store ``name`` (replacing a script of that name, active or not).
        TooManyScripts when it is new and the user has ``max_scripts`` already."""
        check_name(name)
        validate(text)
        with self._lock:
            self._migrate(user)
            names = self._names(user)
            if max_scripts is not None and name not in names and len(names) >= max_scripts:
                raise TooManyScripts(name)
            self._write(user, name, text)

    def set_active(self, user: str, name: str | None) -> None:
        """Make ``name`` the active script; None deactivates (RFC 5804 2.8)."""
        with self._lock:
            self._migrate(user)
            if name is not None and not self._script(user, name).exists():
                raise NoSuchScript(name)
            self._point(user, name)

    def delete(self, user: str, name: str) -> None:
        with self._lock:
            self._migrate(user)
            path = self._script(user, name)
            if not path.exists():
                raise NoSuchScript(name)
            if self._active(user) == name:
                raise ScriptActive(name)  # RFC 5804 2.10
            path.unlink()
            atomicfile.fsync_dir(path.parent)

    def rename(self, user: str, old: str, new: str) -> None:
        """RFC 5804 2.11.1: the active script stays active under its new name. The new
        name is linked before the pointer moves and the old one is removed last, so a
        crash leaves the active script reachable (at worst under both names)."""
        with self._lock:
            self._migrate(user)
            source, target = self._script(user, old), self._script(user, new)
            if not source.exists():
                raise NoSuchScript(old)
            if target.exists():
                raise ScriptExists(new)
            os.link(source, target)
            atomicfile.fsync_dir(target.parent)
            if self._active(user) == old:
                self._point(user, new)
            source.unlink()
            atomicfile.fsync_dir(source.parent)


def store_for(data_dir: Path) -> SieveStore:
    """The store the daemon uses: ``<data_dir>/sieve`` (pass ``config.data_dir``)."""
    return SieveStore(data_dir / "sieve")
