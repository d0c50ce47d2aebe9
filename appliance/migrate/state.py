"""An import's saved state: one JSON file per job under ``<data_dir>/migrate/``.

Written atomically (the store's ``write_atomic``: tmp, fsync, rename, fsync the
directory) after every batch, so a job killed at any point resumes from its last
completed batch. Per source folder it keeps UIDVALIDITY, the highest UID copied and
the UID range of the batch being written (``inflight``): a batch found in flight on
resume may have been stored before the kill, so its messages are checked against the
destination by Message-ID and size (the same check that runs for a whole folder when
UIDVALIDITY changed) instead of being copied blindly. Passwords are never saved.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.store.folder import write_atomic

STATE_DIR = "migrate"
MAX_FAILURES = 100  # failures kept with their reasons; the count goes on


@dataclass
class FolderState:
    uidvalidity: int = 0
    last_uid: int = 0
    inflight: list[int] | None = None  # [low, high] of the batch being stored
    dest: str = ""
    copied: int = 0
    skipped: int = 0
    done: bool = False


@dataclass
class JobState:
    job_id: str
    kind: str  # imap | mbox | maildir
    user: str
    params: dict[str, Any]  # source description without any password
    status: str = "pending"  # pending | running | done | failed | interrupted | cancelled
    message: str = ""
    started: float = field(default_factory=time.time)
    finished: float = 0.0
    total: int = 0  # messages planned (0 = unknown yet)
    total_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    folder: str = ""  # the folder being copied now
    folders: dict[str, FolderState] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(reason)

    def summary(self) -> dict[str, Any]:
        elapsed = max((self.finished or time.time()) - self.started, 1e-6)
        data = asdict(self)
        data.pop("folders")
        data["folder_count"] = len(self.folders)
        data["elapsed"] = round(elapsed, 1)
        data["rate"] = round(self.copied / elapsed, 1)  # messages per second
        data["byte_rate"] = round(self.copied_bytes / elapsed)
        return data


def job_id(kind: str, user: str, source: str) -> str:
    """The same source into the same user is the same job (its state resumes)."""
    return hashlib.sha256(f"{kind}\0{user}\0{source}".encode()).hexdigest()[:16]


def state_dir(data_dir: Path) -> Path:
    return data_dir / STATE_DIR


def save(data_dir: Path, state: JobState) -> None:
    d = state_dir(data_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(d / f"{state.job_id}.json", json.dumps(asdict(state), indent=1).encode())


def load(data_dir: Path, jid: str) -> JobState | None:
    path = state_dir(data_dir) / f"{jid}.json"
    try:
        raw = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    folders = {k: FolderState(**v) for k, v in raw.pop("folders", {}).items()}
    return JobState(**raw, folders=folders)


def all_jobs(data_dir: Path) -> list[JobState]:
    d = state_dir(data_dir)
    if not d.is_dir():
        return []
    jobs = [load(data_dir, p.stem) for p in sorted(d.glob("*.json"))]
    return sorted((j for j in jobs if j is not None), key=lambda j: j.started)
