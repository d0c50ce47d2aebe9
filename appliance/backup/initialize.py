"""Create the restic repository (new password) or connect to an existing one (DR).

New box: a password is generated, stored 0600 and the repository is created; the password
is returned once so the caller can show it and offer the recovery sheet. If ``restic
init`` fails the fresh password file is removed again, so a retry starts clean.

Disaster recovery on a fresh box: the admin types the password from the recovery sheet;
it is stored only after it has opened the repository.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from appliance.backup import password
from appliance.backup.restic import BackupError, Restic, repository_for
from appliance.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitResult:
    location: str
    created: bool  # False: connected to an existing repository
    password: str | None  # the new password, to be shown once; None when connecting


def init_repository(
    cfg: Config, *, existing_password: str | None = None, restic: Restic | None = None
) -> InitResult:
    repo = repository_for(cfg)
    r = restic or Restic(repo)
    pw_file = repo.password_file

    if existing_password is not None:
        pw = password.normalise(existing_password)
        if not pw:
            raise BackupError("the repository password is empty")
        if pw_file.exists():
            raise BackupError(
                f"a repository password is already stored at {pw_file}; remove it first"
            )
        password.write_new(pw_file, pw)
        try:
            ok = r.is_initialized()
        except BackupError:
            pw_file.unlink()
            raise
        if not ok:
            pw_file.unlink()
            raise BackupError(f"no repository at {repo.display()} (or it cannot be reached)")
        password.acknowledge(pw_file)  # typed from the sheet: nothing new to write down
        log.info("backup=connected repo=%s", repo.display())
        return InitResult(repo.display(), False, None)

    if pw_file.exists():
        if r.is_initialized():
            raise BackupError(f"the repository at {repo.display()} is already initialised")
        # A password from an earlier attempt whose init failed (disk not attached...).
        r.init()
        log.info("backup=initialised repo=%s reused_password=yes", repo.display())
        return InitResult(repo.display(), True, password.read(pw_file))

    new = password.generate()
    password.write_new(pw_file, new)
    try:
        r.init()
    except BackupError:
        with contextlib.suppress(OSError):
            pw_file.unlink()
        raise
    log.info("backup=initialised repo=%s", repo.display())
    return InitResult(repo.display(), True, new)
