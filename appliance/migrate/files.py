"""Import an mbox file or an old Maildir into a local user's folders.

Maildir: the directory's own cur/ and new/ are one folder (INBOX or the ``--to``
folder), Maildir++ subfolders (``.Sent``, ``.Work.Projects``, modified UTF-7) become
folders below it; flags come from the file name's info (``:2,DFPRST``, Dovecot's
keyword letters through ``dovecot-keywords``), the internal date from the file's mtime.
mbox: one folder; with ``gmail_labels`` (a Google Takeout file) each message goes to
the folders of its X-Gmail-Labels. Re-running is safe: a message whose key (Message-ID
and size, else its bytes' hash) is already in the target folder is skipped.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance import mutf7
from appliance.migrate import mbox
from appliance.migrate import state as st
from appliance.migrate.dest import Destination, Item, QuotaFull, key_of
from appliance.migrate.folders import LOCAL_DEFAULT, NAME_HINTS
from appliance.store.base import INBOX, StoreError

BATCH_MESSAGES = 100
BATCH_BYTES = 8 * 1024 * 1024
MAX_MESSAGE = 256 * 1024 * 1024  # a bigger "message" in a file is a damaged file

# Maildir info letters (cr.yp.to/proto/maildir.html) -> IMAP flags
MAILDIR_FLAGS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
# Takeout's system labels: flags or nothing, not folders
GMAIL_SYSTEM_LABELS = {"unread", "opened", "starred", "important", "archived"}
GMAIL_LABEL_FOLDERS = {
    "inbox": INBOX,
    "sent": "\\Sent",
    "drafts": "\\Drafts",
    "trash": "\\Trash",
    "spam": "\\Junk",
}


class FileImportError(Exception):
    pass


@dataclass(frozen=True)
class FileJob:
    kind: str  # mbox | maildir
    path: Path
    user: str
    folder: str = ""  # "" = INBOX (maildir: the root folder; subfolders go below it)
    variant: mbox.Variant = "mboxrd"
    gmail_labels: bool = False

    def source(self) -> str:
        return f"{self.kind}:{self.path.resolve()}:{self.folder}"


# ------------------------------------------------------------------ Maildir reading


def _keywords(folder: Path) -> dict[str, str]:
    """Dovecot's dovecot-keywords: "0 $Label1" lines; letter a = 0, b = 1, ..."""
    out: dict[str, str] = {}
    try:
        text = (folder / "dovecot-keywords").read_text("utf-8", "replace")
    except OSError:
        return out
    for line in text.splitlines():
        num, _, name = line.partition(" ")
        if num.isdigit() and name and int(num) < 26:
            out[chr(ord("a") + int(num))] = name.strip()
    return out


def maildir_flags(filename: str, keywords: dict[str, str]) -> frozenset[str]:
    _, sep, info = filename.rpartition(":2,")
    if not sep:
        return frozenset()
    flags = {MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS}
    flags.update(keywords[c] for c in info if c in keywords)
    return frozenset(flags)


def maildir_folders(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative folder name, directory) of a Maildir and its Maildir++ subfolders."""
    if not (root / "cur").is_dir() and not (root / "new").is_dir():
        raise FileImportError(f"{root} is not a Maildir (no cur/ or new/ directory)")
    yield "", root
    subs = sorted(
        e.name
        for e in os.scandir(root)
        if e.is_dir() and e.name.startswith(".") and len(e.name) > 1
    )
    for name in subs:
        if name in (".", ".."):
            continue
        try:
            decoded = mutf7.decode(name[1:])
        except ValueError:
            decoded = name[1:]
        yield "/".join(p.replace("/", "_") for p in decoded.split(".") if p), root / name


def maildir_messages(folder: Path) -> Iterator[tuple[Path, frozenset[str], float]]:
    keywords = _keywords(folder)
    for sub in ("cur", "new"):
        d = folder / sub
        if not d.is_dir():
            continue
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            if entry.is_file() and not entry.name.startswith("."):
                flags = maildir_flags(entry.name, keywords)
                yield Path(entry.path), flags, entry.stat().st_mtime


def thunderbird_folders(root: Path) -> Iterator[tuple[str, Path]]:
    """(folder name, mbox file) of a Thunderbird "Local Folders" directory: one mbox
    file per folder (no extension), subfolders in ``<name>.sbd/``; Inbox is the root."""
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel = Path(dirpath).relative_to(root)
        parents = [p.removesuffix(".sbd") for p in rel.parts]
        for name in sorted(files):
            path = Path(dirpath) / name
            if name.startswith(".") or "." in name or path.stat().st_size == 0:
                continue  # .msf indexes, popstate.dat, filterlog.html, empty folders
            with path.open("rb") as fh:
                if fh.read(5) != b"From ":
                    continue
            folder = "/".join([*parents, name])
            yield ("" if folder.lower() == "inbox" else folder), path


# ------------------------------------------------------------------ the import


class FileImporter:
    def __init__(
        self,
        job: FileJob,
        dest: Destination,
        data_dir: Path,
        *,
        cancel: threading.Event | None = None,
        on_progress: Callable[[st.JobState], None] = lambda _s: None,
    ) -> None:
        self.job = job
        self.dest = dest
        self.data_dir = data_dir
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        jid = st.job_id(job.kind, job.user, job.source())
        self.state = st.JobState(
            job_id=jid,
            kind=job.kind,
            user=job.user,
            params={"path": str(job.path), "folder": job.folder, "labels": job.gmail_labels},
        )
        self._pending: dict[str, list[Item]] = {}
        self._pending_bytes = 0

    def _save(self) -> None:
        st.save(self.data_dir, self.state)
        self.on_progress(self.state)

    def _target(self, relative: str) -> str:
        base = self.job.folder
        if not relative:
            return base or INBOX
        if not base:
            use = NAME_HINTS.get(relative.lower())
            if use in LOCAL_DEFAULT:
                return self.dest.special_folders().get(use, LOCAL_DEFAULT[use])
            return relative
        return f"{base}/{relative}"

    def _add(self, folder: str, item: Item) -> None:
        dest = self.dest.ensure(folder)
        if key_of(item.data) in self.dest.known(dest):
            self.state.skipped += 1
            return
        self._pending.setdefault(dest, []).append(item)
        self._pending_bytes += len(item.data)
        if len(self._pending[dest]) >= BATCH_MESSAGES or self._pending_bytes >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        for folder, items in list(self._pending.items()):
            self.state.folder = folder
            stored = self.dest.store_batch(folder, items)
            self.state.copied += stored
            self.state.copied_bytes += sum(len(i.data) for i in items)
            del self._pending[folder]
        self._pending_bytes = 0
        self._save()

    def run(self) -> st.JobState:
        s = self.state
        s.status = "running"
        self._save()
        try:
            if self.job.kind == "mbox":
                self._mbox()
            else:
                self._maildir()
            self._flush()
        except mbox.MboxError as exc:
            self._flush_quietly()
            s.status = "failed"
            s.message = f"{exc}; the {s.copied} messages before it were copied and stay"
        except QuotaFull as exc:
            s.status = "failed"
            s.message = f"{exc}; what was copied stays, raise the quota and run again to resume"
        except (FileImportError, StoreError) as exc:
            self._flush_quietly()
            s.status = "failed"
            s.message = f"{exc}; what was copied stays"
        except OSError as exc:
            self._flush_quietly()
            s.status = "failed"
            where = exc.filename or self.job.path
            s.message = f"cannot read {where}: {exc.strerror}; what was copied stays"
        else:
            s.status = "cancelled" if self.cancel.is_set() else "done"
            if s.status == "done":
                s.message = f"copied {s.copied}, skipped {s.skipped} duplicates, failed {s.failed}"
        s.folder = ""
        s.finished = time.time()
        self._save()
        return s

    def _flush_quietly(self) -> None:
        with contextlib.suppress(QuotaFull, StoreError):
            self._flush()

    def _mbox(self) -> None:
        if self.job.path.is_dir():
            for relative, path in thunderbird_folders(self.job.path):
                self._mbox_file(path, relative)
        else:
            self._mbox_file(self.job.path, "")

    def _mbox_file(self, path: Path, relative: str) -> None:
        with path.open("rb") as fh:
            try:
                for msg in mbox.read(fh, self.job.variant):
                    if self.cancel.is_set():
                        return
                    item = Item(msg.data, msg.flags(), msg.date())
                    folders = [self._target(relative)]
                    if self.job.gmail_labels:
                        folders = self._label_folders(msg.gmail_labels())
                    for folder in folders:
                        self._add(folder, item)
            except mbox.MboxError as exc:
                raise mbox.MboxError(exc.line, exc.text, str(path)) from None

    def _label_folders(self, labels: list[str]) -> list[str]:
        out: list[str] = []
        special = self.dest.special_folders()
        for label in labels:
            low = label.lower()
            if low in GMAIL_SYSTEM_LABELS or low.startswith("category "):
                continue
            mapped = GMAIL_LABEL_FOLDERS.get(low, label)
            if mapped.startswith("\\"):
                mapped = special.get(mapped, LOCAL_DEFAULT[mapped])
            name = mapped if mapped == INBOX else self._target(mapped)
            if self.job.folder and mapped == INBOX:
                name = self.job.folder
            if name not in out:
                out.append(name)
        if not out:  # archived: no folder label left
            out.append(self._target("") if self.job.folder else special.get("\\Archive", "Archive"))
        return out

    def _maildir(self) -> None:
        for relative, directory in maildir_folders(self.job.path):
            target = self._target(relative)
            for path, flags, mtime in maildir_messages(directory):
                if self.cancel.is_set():
                    return
                try:
                    size = path.stat().st_size
                    if size > MAX_MESSAGE:
                        self.state.fail(f"{path}: {size} bytes is too big for one message")
                        continue
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue  # moved by the program that owns the Maildir
                self._add(target, Item(data, flags, mtime))
