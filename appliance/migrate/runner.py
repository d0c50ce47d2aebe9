"""Build and run an import from JSON-able parameters (the ctl command's and the CLI's).

Parameters: ``kind`` (imap | mbox | maildir), ``user`` and, for imap: ``host``,
``port``, ``security`` (tls | starttls | plain), ``login``, ``verify``, ``folder_map``
({source: local}), ``gmail_all_mail`` (dedupe | skip), ``pause``; for files: ``path``,
``folder``, ``variant`` (mboxrd | mboxo), ``labels`` (Takeout X-Gmail-Labels).
The password travels separately and is never saved.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from appliance.accounts import Accounts
from appliance.config import Config
from appliance.delivery.recipients import quota_of
from appliance.migrate import state as st
from appliance.migrate.dest import Destination
from appliance.migrate.engine import ImapImporter, ImapJob, Limits
from appliance.migrate.files import FileImporter, FileJob
from appliance.migrate.imapsource import ImapSettings
from appliance.store.base import MailStore

DEFAULT_PORTS = {"tls": 993, "starttls": 143, "plain": 143}


class BadRequest(Exception):
    pass


def _user(accounts: Accounts, params: dict[str, Any]) -> str:
    user = str(params.get("user", "")).strip().lower()
    if not user or accounts.get_user(user) is None:
        raise BadRequest(f"no local user {user!r}; create it first")
    return user


def imap_job(params: dict[str, Any], password: str, user: str) -> ImapJob:
    security = str(params.get("security", "tls"))
    if security not in DEFAULT_PORTS:
        raise BadRequest("security must be tls, starttls or plain")
    host = str(params.get("host", "")).strip()
    login = str(params.get("login", "")).strip()
    if not host or not login:
        raise BadRequest("an IMAP import needs a host and a login")
    try:
        port = int(params.get("port") or DEFAULT_PORTS[security])
        pause = float(params.get("pause", Limits.pause))
    except (TypeError, ValueError):
        raise BadRequest("port and pause must be numbers") from None
    if not 0 < port < 65536 or not 0 <= pause <= 3600:
        raise BadRequest("port must be 1-65535 and pause 0-3600 seconds")
    gm = str(params.get("gmail_all_mail", "dedupe"))
    if gm not in ("dedupe", "skip"):
        raise BadRequest("gmail_all_mail must be dedupe or skip")
    fmap = params.get("folder_map") or {}
    if not isinstance(fmap, dict):
        raise BadRequest("folder_map must map source folder names to local ones")
    settings = ImapSettings(
        host,
        port,
        login,
        password,
        security,  # type: ignore[arg-type]
        bool(params.get("verify", True)),
    )
    return ImapJob(
        settings,
        user,
        {str(k): str(v) for k, v in fmap.items()},
        gm,  # type: ignore[arg-type]
        Limits(pause=pause),
    )


def file_job(params: dict[str, Any], user: str) -> FileJob:
    kind = str(params.get("kind"))
    path = Path(str(params.get("path", "")))
    if not path.is_absolute():
        raise BadRequest("the path must be absolute")
    variant = str(params.get("variant", "mboxrd"))
    if variant not in ("mboxrd", "mboxo"):
        raise BadRequest("variant must be mboxrd or mboxo")
    folder = str(params.get("folder", "")).strip("/")
    return FileJob(kind, path, user, folder, variant, bool(params.get("labels")))  # type: ignore[arg-type]


def run(
    cfg: Config,
    accounts: Accounts,
    store: MailStore,
    params: dict[str, Any],
    password: str = "",
    *,
    cancel: threading.Event | None = None,
    on_progress: Callable[[st.JobState], None] = lambda _s: None,
    sleep: Callable[[float], None] | None = None,
) -> st.JobState:
    user = _user(accounts, params)
    with _job_lock(cfg.data_dir, planned_job_id(params, user)):
        return _run(cfg, accounts, store, params, password, user, cancel, on_progress, sleep)


@contextlib.contextmanager
def _job_lock(data_dir: Path, jid: str) -> Iterator[None]:
    """One run per job across processes (the daemon and a CLI with --here)."""
    d = st.state_dir(data_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(d / f"{jid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadRequest(
                "this import is running already (in the daemon or another command)"
            ) from None
        yield
    finally:
        os.close(fd)


def job_busy(data_dir: Path, jid: str) -> bool:
    """Another run of this job holds its lock."""
    try:
        with _job_lock(data_dir, jid):
            return False
    except BadRequest:
        return True


def _run(
    cfg: Config,
    accounts: Accounts,
    store: MailStore,
    params: dict[str, Any],
    password: str,
    user: str,
    cancel: threading.Event | None,
    on_progress: Callable[[st.JobState], None],
    sleep: Callable[[float], None] | None,
) -> st.JobState:
    quota = quota_of(accounts, user, cfg.limits.default_quota)
    kind = params.get("kind")
    if kind == "imap":
        job = imap_job(params, password, user)
        kw: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        importer = ImapImporter(
            job, store, cfg.data_dir, quota, cancel=cancel, on_progress=on_progress, **kw
        )
        return importer.run()
    if kind in ("mbox", "maildir"):
        fjob = file_job(params, user)
        spool = st.state_dir(cfg.data_dir) / "spool"
        dest = Destination(store, user, quota, spool)
        return FileImporter(fjob, dest, cfg.data_dir, cancel=cancel, on_progress=on_progress).run()
    raise BadRequest("kind must be imap, mbox or maildir")


def planned_job_id(params: dict[str, Any], user: str) -> str:
    """The job id a start with these parameters will have (for status polling)."""
    if params.get("kind") == "imap":
        return st.job_id("imap", user, imap_job(params, "", user).source())
    return st.job_id(str(params.get("kind")), user, file_job(params, user).source())
