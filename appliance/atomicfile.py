"""Replace or create a file atomically: a reader, or the box after a crash or power cut,
sees the old content or the new, never a part.

The data goes to a temporary file beside the target (or in ``tmp_dir``, which must be on
the same filesystem), is fsynced, renamed over the target (or linked to it, for
:func:`create`), and the directory is fsynced so the rename itself is durable.

A temporary file is named ``.<name>.<pid>-<random>.tmp``. One left behind by a writer
that was killed is removed by the next write of the same file: when its process no
longer exists, or when it is older than :data:`STALE_TEMP_SECONDS`.

Blocking (disk, fsync): async callers use ``asyncio.to_thread``. The root helper in
firmware-hooks/ keeps its own copy (it runs with the standard library alone), and
Maildir delivery (tmp/ -> new/) is the store's own protocol.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from appliance import pids

__all__ = ["STALE_TEMP_SECONDS", "create", "fsync_dir", "write_bytes", "write_text", "writing"]

# A temporary file this old is a leftover even when its writer's pid is alive again.
STALE_TEMP_SECONDS = 3600.0
_SUFFIX = ".tmp"


def _prefix(path: Path) -> str:
    return f".{path.name}."


def _sweep(directory: Path, path: Path) -> None:
    """Remove leftovers of killed writers of ``path`` from ``directory``."""
    prefix = _prefix(path)
    limit = time.time() - STALE_TEMP_SECONDS
    try:
        entries = list(os.scandir(directory))
    except OSError:  # missing or unreadable: the write itself reports what matters
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(_SUFFIX)):
            continue
        owner = name[len(prefix) : -len(_SUFFIX)].partition("-")[0]
        try:
            stale = (owner.isdigit() and not pids.alive(int(owner))) or (
                entry.stat(follow_symlinks=False).st_mtime < limit
            )
            if stale:
                os.unlink(entry.path)
        except OSError:  # gone already, or not ours to remove
            continue


def fsync_dir(directory: Path) -> None:
    """Make the entries of ``directory`` durable (after a rename, link or unlink in it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_temp(path: Path, mode: int | None, tmp_dir: Path | None) -> tuple[Path, BinaryIO]:
    directory = tmp_dir if tmp_dir is not None else path.parent
    _sweep(directory, path)
    tmp = directory / f"{_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        return tmp, os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def _finish(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


@contextlib.contextmanager
def writing(
    path: Path, *, mode: int | None = None, tmp_dir: Path | None = None
) -> Iterator[BinaryIO]:
    """``with writing(path) as fh: fh.write(...)``: on a clean exit the bytes written
    replace ``path``; on an exception ``path`` is untouched and no temporary file stays.

    ``mode`` None: a new file's usual mode (0666 less the umask); else exactly ``mode``.
    """
    tmp, fh = _open_temp(path, mode, tmp_dir)
    try:
        with fh:
            yield fh
            _finish(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes(
    path: Path, data: bytes, *, mode: int | None = None, tmp_dir: Path | None = None
) -> None:
    """Replace ``path`` with ``data``, atomically and durably."""
    with writing(path, mode=mode, tmp_dir=tmp_dir) as fh:
        fh.write(data)


def write_text(path: Path, text: str, *, encoding: str = "utf-8", mode: int | None = None) -> None:
    """Replace ``path`` with ``text``, atomically and durably."""
    write_bytes(path, text.encode(encoding), mode=mode)


def create(path: Path, data: bytes, *, mode: int | None = None) -> bool:
    """Create ``path`` holding ``data`` unless it exists, atomically and durably.

    False, and nothing changed, when ``path`` exists already (another process made it
    first: its content is kept). A reader never sees ``path`` empty or partial."""
    tmp, fh = _open_temp(path, mode, None)
    try:
        with fh:
            fh.write(data)
            _finish(fh)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True
