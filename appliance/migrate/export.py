"""Export a user's mail: a Maildir++ tree, one mboxrd file per folder, or a tar stream.

Everything is read through the MailStore (snapshot, open_message) one message at a
time, so memory does not grow with the mailbox. Maildir export writes each message's
stored bytes unchanged (``<uid>.<date>.pillarbox:2,<flags>``; keywords listed in each
folder's ``dovecot-keywords``), so importing it again is byte-identical per message.
mbox turns CRLF into LF and quotes ``>*From `` lines (mboxrd). The tar stream
(:func:`tar_stream`) yields the Maildir tree as 64 KiB chunks for the web download.
"""

from __future__ import annotations

import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance import mutf7
from appliance.migrate import mbox
from appliance.store.base import INBOX, MailStore, MessageInfo
from appliance.store.names import LETTER_OF_FLAG

CHUNK = 64 * 1024
INFO_LETTERS = LETTER_OF_FLAG  # the store's own Maildir info letters


@dataclass(frozen=True)
class Exported:
    folders: int
    messages: int
    bytes: int


def folder_dir(name: str) -> str:
    """Maildir++ directory of a mailbox ("" for INBOX, ".A.B" for A/B)."""
    if name == INBOX:
        return ""
    return "." + ".".join(mutf7.encode(p) for p in name.split("/"))


class Keywords:
    """Keyword -> Dovecot letter (a..z) for one folder; the rest stay unexported."""

    def __init__(self) -> None:
        self.letters: dict[str, str] = {}

    def letter(self, keyword: str) -> str:
        if keyword not in self.letters and len(self.letters) < 26:
            self.letters[keyword] = chr(ord("a") + len(self.letters))
        return self.letters.get(keyword, "")

    def file(self) -> bytes:
        return "".join(f"{ord(v) - ord('a')} {k}\n" for k, v in self.letters.items()).encode()


def file_name(info: MessageInfo, keywords: Keywords) -> str:
    letters = sorted(INFO_LETTERS[f] for f in info.flags if f in INFO_LETTERS)
    kw = sorted(keywords.letter(f) for f in info.flags if f not in INFO_LETTERS)
    return f"{int(info.internal_date)}.{info.uid}.pillarbox:2,{''.join(letters + kw)}"


def _mailboxes(store: MailStore, user: str) -> list[str]:
    return [mb.name for mb in store.list_mailboxes(user) if mb.selectable]


def export_maildir(store: MailStore, user: str, out: Path) -> Exported:
    messages = size = 0
    boxes = _mailboxes(store, user)
    for name in boxes:
        folder = out / folder_dir(name)
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        keywords = Keywords()
        for info in store.snapshot(user, name).messages:
            path = folder / "cur" / file_name(info, keywords)
            try:
                src = store.open_message(user, name, info.uid)
            except OSError:
                continue
            with src, path.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
            os.utime(path, (info.internal_date, info.internal_date))
            messages += 1
            size += info.size
        if keywords.letters:
            (folder / "dovecot-keywords").write_bytes(keywords.file())
    return Exported(len(boxes), messages, size)


def export_mbox(store: MailStore, user: str, out: Path) -> Exported:
    messages = size = 0
    boxes = _mailboxes(store, user)
    out.mkdir(parents=True, exist_ok=True)
    for name in boxes:
        path = out.joinpath(*name.split("/")).with_name(name.split("/")[-1] + ".mbox")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            for info in store.snapshot(user, name).messages:
                try:
                    with store.open_message(user, name, info.uid) as src:
                        data = src.read()
                except OSError:
                    continue
                mbox.write(fh, data, info.internal_date)
                messages += 1
                size += info.size
    return Exported(len(boxes), messages, size)


# ------------------------------------------------------------------ streamed archive


def tar_stream(store: MailStore, user: str, prefix: str = "mail") -> Iterator[bytes]:
    """A tar of the user's Maildir++ tree, yielded in chunks (never whole in memory)."""
    now = time.time()
    for name in _mailboxes(store, user):
        base = f"{prefix}/{folder_dir(name)}".rstrip("/")
        for sub in ("cur", "new", "tmp"):
            yield _dir_header(f"{base}/{sub}", now)
        keywords = Keywords()
        for info in store.snapshot(user, name).messages:
            try:
                src = store.open_message(user, name, info.uid)
            except OSError:
                continue
            with src:
                size = os.fstat(src.fileno()).st_size
                header = tarfile.TarInfo(f"{base}/cur/{file_name(info, keywords)}")
                header.size = size
                header.mtime = int(info.internal_date)
                header.mode = 0o600
                yield header.tobuf(format=tarfile.PAX_FORMAT)
                left = size
                while left > 0:
                    chunk = src.read(min(CHUNK, left))
                    if not chunk:  # the file shrank: pad so the archive stays valid
                        chunk = b"\0" * min(CHUNK, left)
                    left -= len(chunk)
                    yield chunk
                if size % tarfile.BLOCKSIZE:
                    yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
        if keywords.letters:
            data = keywords.file()
            header = tarfile.TarInfo(f"{base}/dovecot-keywords")
            header.size = len(data)
            header.mtime = int(now)
            yield header.tobuf(format=tarfile.PAX_FORMAT)
            yield data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)
    yield b"\0" * (tarfile.BLOCKSIZE * 2)


def _dir_header(name: str, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o700
    info.mtime = int(mtime)
    return info.tobuf(format=tarfile.PAX_FORMAT)
