"""What every view needs: the config file, accounts, throttle, resolver, daemon, helper,
and the web UI's own SQLite file (sessions, second factors).

One :class:`WebContext` lives in ``app.extensions["pillarbox"]``; views reach it through
:func:`web`. The config is re-read when the file changes, so the wizard always shows the
desired state on disk (the daemon picks it up on ``ctl reload``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from flask import current_app

from appliance import config
from appliance.accounts import Accounts, LoginThrottle
from appliance.ctl.client import CtlClient
from appliance.dns import SyncLookup
from webui.acme_issue import AcmeSettings, ChallengeStore
from webui.disks import Disk
from webui.dnscheck import Status
from webui.helper import RootHelper
from webui.jobs import JobRunner
from webui.relaycheck import Probe
from webui.sessions import SessionStore
from webui.sizing import Hardware
from webui.smart import SMART_HELPER_TIMEOUT, SmartCache
from webui.webdb import WebDb


class Ctl(Protocol):
    def call(self, cmd: str, **args: Any) -> Any: ...


@dataclass
class WebContext:
    config_path: Path
    accounts: Accounts
    throttle: LoginThrottle
    resolver: SyncLookup
    helper: RootHelper
    jobs: JobRunner
    ctl_factory: Callable[[Path], Ctl]
    disks: Callable[[], list[Disk]]
    measure: Callable[[Path], Hardware]
    webdb: WebDb
    sessions: SessionStore
    clock: Callable[[], float] = time.time
    idle_timeout: float = 30 * 60
    acme: AcmeSettings = field(default_factory=AcmeSettings)
    challenges: ChallengeStore = field(default_factory=ChallengeStore)
    dns_cache: dict[str, tuple[float, Status]] = field(default_factory=dict)
    smart_reader: Callable[[str], dict[str, Any]] | None = None
    smart_cache: SmartCache = field(default_factory=SmartCache)
    relay_probe: Probe = field(default_factory=Probe)
    _cached: tuple[float, config.Config] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def config(self) -> config.Config:
        """The config on disk, re-read when its modification time changes."""
        mtime = self.config_path.stat().st_mtime_ns
        with self._lock:
            if self._cached is None or self._cached[0] != mtime:
                self._cached = (mtime, config.load(self.config_path))
            return self._cached[1]

    def ctl(self) -> Ctl:
        return self.ctl_factory(self.config().ctl_socket)

    def slow_ctl(self) -> Ctl:
        """The ctl client for a command that does real work before it answers (creating
        a backup repository: restic's key derivation and a USB disk on a small board)."""
        if self.ctl_factory is default_ctl:
            return CtlClient(self.config().ctl_socket, timeout=SLOW_CTL_TIMEOUT)
        return self.ctl_factory(self.config().ctl_socket)

    def read_smart(self, device: str) -> dict[str, Any]:
        """The SMART summary of ``device`` (root helper ``smart``); raises HelperError."""
        if self.smart_reader is not None:
            return self.smart_reader(device)
        helper = dataclasses.replace(self.helper, timeout=SMART_HELPER_TIMEOUT)
        data = helper.call("smart", device=device).get("smart")
        return data if isinstance(data, dict) else {}


SLOW_CTL_TIMEOUT = 120.0


def default_ctl(path: Path) -> Ctl:
    return CtlClient(path, timeout=5.0)


def web() -> WebContext:
    return cast(WebContext, current_app.extensions["pillarbox"])
