"""Long operations (format, SMART test, certificate work) in background threads.

A view starts a job and redirects to its progress page, which polls ``/jobs/<id>.json``;
the request that started it returns at once. Jobs live in memory: a restart of the web
UI forgets them (the operation itself, run by the root helper, still completes).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

log = logging.getLogger(__name__)

JobState = Literal["running", "done", "failed"]
MAX_JOBS = 100


@dataclass(frozen=True)
class Job:
    id: str
    title: str
    state: JobState
    message: str
    started: float
    finished: float | None = None
    result: dict[str, Any] | None = None
    back: str = "/"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "state": self.state,
            "message": self.message,
            "elapsed": round((self.finished or time.time()) - self.started, 1),
            "back": self.back,
        }


Work = Callable[[Callable[[str], None]], dict[str, Any]]


class JobRunner:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, title: str, work: Work, back: str = "/") -> Job:
        """Run ``work(progress)`` in a thread; ``progress(text)`` updates the message."""
        job = Job(secrets.token_urlsafe(12), title, "running", "Starting…", time.time(), back=back)
        with self._lock:
            if len(self._jobs) >= MAX_JOBS:
                for old in sorted(self._jobs.values(), key=lambda j: j.started)[: MAX_JOBS // 2]:
                    if old.state != "running":
                        del self._jobs[old.id]
            self._jobs[job.id] = job

        def progress(text: str) -> None:
            self._update(job.id, message=text)

        def run() -> None:
            try:
                result = work(progress)
            except Exception as exc:
                log.exception("job=failed id=%s title=%s", job.id, title)
                # Views raise RuntimeError with words for the person; anything else is a
                # bug whose detail belongs in the log, not on the page.
                text = str(exc) if isinstance(exc, RuntimeError) and str(exc) else ""
                self._update(
                    job.id,
                    state="failed",
                    message=text or "Something went wrong; the system log has the details.",
                    finished=time.time(),
                )
            else:
                self._update(
                    job.id,
                    state="done",
                    result=result,
                    finished=time.time(),
                    message=str(result.get("message", "Finished.")),
                )

        threading.Thread(target=run, name=f"job-{job.id}", daemon=True).start()
        log.info("job=started id=%s title=%s", job.id, title)
        return job

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def wait(self, job_id: str, timeout: float) -> Job | None:
        """For tests and the CLI: poll until the job ends or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job is None or job.state != "running":
                return job
            time.sleep(0.02)
        return self.get(job_id)
