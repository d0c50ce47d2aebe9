"""Copy every folder of an IMAP account into a local user, resumably.

Per folder: EXAMINE, fetch metadata (UID, RFC822.SIZE, FLAGS, INTERNALDATE, Message-ID,
X-GM-MSGID on Gmail) in UID windows, then bodies in batches bounded by count and bytes,
each batch stored with its flags and internal date, then the state saved. A drop or a
rate-limit answer pauses (doubling from ``pause`` up to ``max_pause``), reconnects and
resumes; ``max_retries`` consecutive failures without progress end the job with the
reason. A folder that cannot be opened any more is reported and the job goes on.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance.migrate import state as st
from appliance.migrate.dest import Destination, Item, QuotaFull, key_of, storable_flags
from appliance.migrate.folders import plan_folders
from appliance.migrate.imapsource import (
    ConnectionLost,
    FolderGone,
    ImapSettings,
    ImapSource,
    RemoteFolder,
    RemoteMessage,
    ServerBusy,
    SourceError,
)
from appliance.store.base import MailStore, StoreError
from appliance.store.quota import exceeds

log = logging.getLogger(__name__)

GmailMode = Literal["dedupe", "skip"]


class ImportFailed(Exception):
    """The import stopped; the text says why and that what was copied stays."""


@dataclass(frozen=True)
class Limits:
    batch_messages: int = 100
    batch_bytes: int = 8 * 1024 * 1024
    pause: float = 2.0  # first pause after a drop or [LIMIT]; doubles per retry
    max_pause: float = 120.0
    max_retries: int = 6


@dataclass(frozen=True)
class ImapJob:
    settings: ImapSettings
    user: str
    folder_map: dict[str, str] = field(default_factory=dict)
    gmail_all_mail: GmailMode = "dedupe"
    limits: Limits = Limits()

    def source(self) -> str:
        s = self.settings
        return f"imap://{s.user}@{s.host}:{s.port}"


@dataclass(frozen=True)
class PlannedFolder:
    name: str
    dest: str | None  # None = skipped
    why: str  # "special-use \\Sent", "Gmail All Mail (de-duplicated)", ...
    messages: int = 0
    size: int = 0


@dataclass(frozen=True)
class DryRun:
    folders: tuple[PlannedFolder, ...]
    messages: int
    size: int
    used: int
    quota: int

    @property
    def fits(self) -> bool:
        return not exceeds(self.used, self.size, self.quota)


class ImapImporter:
    def __init__(
        self,
        job: ImapJob,
        store: MailStore,
        data_dir: Path,
        quota_bytes: int,
        *,
        source_factory: Callable[[ImapSettings], ImapSource] = ImapSource,
        sleep: Callable[[float], None] = time.sleep,
        cancel: threading.Event | None = None,
        on_progress: Callable[[st.JobState], None] = lambda _s: None,
    ) -> None:
        self.job = job
        self.store = store
        self.data_dir = data_dir
        self.quota_bytes = quota_bytes
        self.source = source_factory(job.settings)
        self.sleep = sleep
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        jid = st.job_id("imap", job.user, job.source())
        self.state = st.load(data_dir, jid) or st.JobState(
            job_id=jid, kind="imap", user=job.user, params=self._params()
        )
        self.dest = Destination(store, job.user, quota_bytes, st.state_dir(data_dir) / "spool")

    def _params(self) -> dict[str, object]:
        s = self.job.settings
        return {
            "host": s.host,
            "port": s.port,
            "security": s.security,
            "login": s.user,
            "verify": s.verify,
            "folder_map": dict(self.job.folder_map),
            "gmail_all_mail": self.job.gmail_all_mail,
        }

    # -------------------------------------------------------------- planning

    def _plan(self) -> list[tuple[RemoteFolder, PlannedFolder]]:
        return plan_folders(
            self.source.folders(),
            self.dest.special_folders(),
            self.job.folder_map,
            gmail=self.source.gmail,
            all_mail=self.job.gmail_all_mail,
        )

    def dry_run(self) -> DryRun:
        self._connect_once()
        try:
            out: list[PlannedFolder] = []
            for remote, planned in self._plan():
                if planned.dest is None:
                    out.append(planned)
                    continue
                try:
                    info = self.source.select(remote)
                except FolderGone:
                    continue
                size = sum(m.size for m in self.source.metadata(0, info.uidnext))
                out.append(
                    PlannedFolder(planned.name, planned.dest, planned.why, info.exists, size)
                )
        finally:
            self.source.close()
        used = self.store.usage(self.job.user).bytes
        total = sum(f.messages for f in out)
        size = sum(f.size for f in out)
        return DryRun(tuple(out), total, size, used, self.quota_bytes)

    # -------------------------------------------------------------- running

    def _connect_once(self) -> None:
        """Connect and log in; a busy server or a drop is retried with the same pauses."""
        lim = self.job.limits
        for attempt in range(lim.max_retries + 1):
            try:
                self.source.connect()
                return
            except (ConnectionLost, ServerBusy) as exc:
                if attempt == lim.max_retries:
                    raise ImportFailed(
                        f"gave up after {lim.max_retries} reconnects without progress: {exc}"
                    ) from None
                self.sleep(min(lim.pause * 2**attempt, lim.max_pause))
            except SourceError as exc:
                raise ImportFailed(str(exc)) from None

    def _save(self) -> None:
        st.save(self.data_dir, self.state)
        self.on_progress(self.state)

    def run(self) -> st.JobState:
        s = self.state
        base = s.copied
        s.status, s.message, s.finished = "running", "", 0.0
        s.params = self._params()
        self._save()
        try:
            self._connect_once()
            try:
                self._run_all()
            finally:
                self.source.close()
        except (ImportFailed, SourceError, ConnectionLost, ServerBusy) as exc:
            s.status, s.message = "failed", f"{exc}; what was copied stays, run again to resume"
        except QuotaFull as exc:
            s.status = "failed"
            s.message = f"{exc}; what was copied stays, raise the quota and run again to resume"
        except StoreError as exc:
            s.status = "failed"
            s.message = f"local store: {exc}; what was copied stays, run again to resume"
        else:
            s.status = "cancelled" if self.cancel.is_set() else "done"
            if s.status == "done":
                s.message = (
                    f"copied {s.copied} ({s.copied - base} in this run), "
                    f"skipped {s.skipped} duplicates, failed {s.failed}"
                )
        s.folder = ""
        s.finished = time.time()
        self._save()
        return s

    def _run_all(self) -> None:
        planned = self._plan()
        s = self.state
        s.total = sum(self.source.count(r) for r, p in planned if p.dest is not None)
        self._save()
        gm_keys: set[str] = set()
        for remote, plan in planned:
            if self.cancel.is_set():
                return
            if plan.dest is None:
                continue
            dedupe_against = None
            if plan.why.startswith("Gmail All Mail"):
                gm_keys = self._label_keys(planned)
                dedupe_against = gm_keys
            self._with_retries(functools.partial(self._folder, remote, plan, dedupe_against))

    def _label_keys(self, planned: Sequence[tuple[RemoteFolder, PlannedFolder]]) -> set[str]:
        """Keys of every message in the label folders being copied (for All Mail)."""
        keys: set[str] = set()
        for remote, plan in planned:
            if plan.dest is None or plan.why.startswith("Gmail All Mail"):
                continue

            def collect(r: RemoteFolder = remote) -> None:
                info = self.source.select(r)
                keys.update(m.key() for m in self.source.metadata(0, info.uidnext))

            try:
                self._with_retries(collect)
            except ImportFailed:
                raise
        return keys

    def _with_retries(self, step: Callable[[], None]) -> None:
        lim = self.job.limits
        failures = 0
        while True:
            progress_before = self.state.copied + self.state.skipped
            try:
                step()
                return
            except FolderGone as exc:
                self.state.fail(str(exc))
                log.warning("migrate=folder-gone job=%s %s", self.state.job_id, exc)
                self._save()
                return
            except (ConnectionLost, ServerBusy) as exc:
                if self.state.copied + self.state.skipped > progress_before:
                    failures = 0
                failures += 1
                if failures > lim.max_retries:
                    raise ImportFailed(
                        f"gave up after {lim.max_retries} reconnects without progress: {exc}"
                    ) from None
                pause = min(lim.pause * 2 ** (failures - 1), lim.max_pause)
                log.warning(
                    "migrate=retry job=%s attempt=%d pause=%.1f reason=%s",
                    self.state.job_id,
                    failures,
                    pause,
                    exc,
                )
                self.source.close()
                self.sleep(pause)
                if self.cancel.is_set():
                    return
                try:
                    self.source.connect()
                except (ConnectionLost, ServerBusy):
                    continue  # counted on the next round
                except SourceError as err:
                    raise ImportFailed(str(err)) from None
            except SourceError as exc:
                raise ImportFailed(str(exc)) from None

    def _folder(self, remote: RemoteFolder, plan: PlannedFolder, dedupe: set[str] | None) -> None:
        s = self.state
        assert plan.dest is not None
        fs = s.folders.setdefault(remote.name, st.FolderState())
        info = self.source.select(remote)
        check_all = False
        if fs.uidvalidity and fs.uidvalidity != info.uidvalidity:
            # RFC 9051 2.3.1.1: the old UIDs mean nothing now; fall back to Message-ID
            log.info("migrate=uidvalidity-changed folder=%s", remote.name)
            fs.last_uid, fs.inflight, fs.done, check_all = 0, None, False, True
        fs.uidvalidity = info.uidvalidity
        fs.dest = self.dest.ensure(plan.dest)
        s.folder = remote.name
        self._save()
        for batch in self._batches(self.source.metadata(fs.last_uid, info.uidnext)):
            if self.cancel.is_set():
                return
            self._copy_batch(fs, batch, check_all, dedupe)
        fs.done = True
        self._save()

    def _batches(self, metas: Iterator[RemoteMessage]) -> Iterator[list[RemoteMessage]]:
        lim = self.job.limits
        batch: list[RemoteMessage] = []
        size = 0
        for m in metas:
            if batch and (len(batch) >= lim.batch_messages or size + m.size > lim.batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append(m)
            size += m.size
        if batch:
            yield batch

    def _copy_batch(
        self,
        fs: st.FolderState,
        batch: list[RemoteMessage],
        check_all: bool,
        dedupe: set[str] | None,
    ) -> None:
        s = self.state
        low, high = batch[0].uid, batch[-1].uid
        # a batch in flight when the last run stopped may be stored already
        resumed = fs.inflight is not None and fs.inflight[0] <= high and low <= fs.inflight[1]
        check = check_all or resumed
        known = self.dest.known(fs.dest) if check else set()
        wanted: list[RemoteMessage] = []
        skipped = 0
        for m in batch:
            gmail_dup = dedupe is not None and m.key() in dedupe
            if gmail_dup or (check and m.message_id and f"{m.message_id}|{m.size}" in known):
                skipped += 1
            else:
                wanted.append(m)
        fs.inflight = [low, high]
        self._save()
        bodies = self.source.bodies([m.uid for m in wanted]) if wanted else {}
        items: list[Item] = []
        for m in wanted:
            data = bodies.get(m.uid)
            if data is None:
                s.fail(f"{fs.dest}: message UID {m.uid} vanished from the server during the copy")
                continue
            if check and key_of(data) in known:
                skipped += 1
                continue
            items.append(Item(data, storable_flags(m.flags), m.internal_date))
        try:
            stored = self.dest.store_batch(fs.dest, items)
        except QuotaFull:
            self._save()
            raise
        s.copied += stored
        s.copied_bytes += sum(len(i.data) for i in items)
        s.skipped += skipped
        fs.copied += stored
        fs.skipped += skipped
        fs.last_uid = high
        fs.inflight = None
        self._save()
