"""Calling the root helper: one typed JSON request on stdin, one JSON answer on stdout.

The web UI runs unprivileged; the appliance's sudoers file lets it run exactly this
helper (``sudo -n /usr/lib/pillarbox/root_helper.py``) and nothing else. Tests point
``argv`` at the helper script with PILLARBOX_ROOT_HELPER_FAKE set, which records the
commands instead of running them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_ARGV: tuple[str, ...] = ("sudo", "-n", "/usr/lib/pillarbox/root_helper.py")
# The box's web unit cannot use sudo (NoNewPrivileges): it names the socket-activated
# helper's client here (firmware-hooks/systemd/pillarbox-web.service).
CLIENT_ENV = "PILLARBOX_ROOT_HELPER"


def default_argv() -> tuple[str, ...]:
    client = os.environ.get(CLIENT_ENV)
    return (client,) if client else DEFAULT_ARGV


class HelperError(Exception):
    """The helper refused or failed; the text is safe to show."""


@dataclass(frozen=True)
class RootHelper:
    argv: tuple[str, ...] = field(default_factory=default_argv)
    env: dict[str, str] | None = field(default=None, hash=False)
    timeout: float = 3600.0

    def call(self, action: str, **args: Any) -> dict[str, Any]:
        request = json.dumps({"action": action, "args": args})
        log.info("helper=call action=%s", action)
        try:
            proc = subprocess.run(
                list(self.argv),
                input=request,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=self.env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("helper=unavailable action=%s error=%s", action, exc)
            raise HelperError(
                f"the system helper could not be run ({exc.__class__.__name__})"
            ) from None
        try:
            reply = json.loads(proc.stdout)
        except json.JSONDecodeError:
            log.warning(
                "helper=bad-reply action=%s rc=%s stderr=%s",
                action,
                proc.returncode,
                proc.stderr[-500:],
            )
            raise HelperError("the system helper gave no answer") from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = reply.get("error", "failed") if isinstance(reply, dict) else "failed"
            raise HelperError(str(error))
        return reply


def in_words(exc: HelperError, doing: str) -> str:
    """A helper failure as a sentence: a missing helper (dev mode, a plain computer) is
    said as such instead of as an exception name."""
    text = str(exc).rstrip(".")
    if "could not be run" in text or "gave no answer" in text:
        return (
            f"This machine has no system helper, so the box cannot {doing} here "
            "(normal when Pillarbox runs on an ordinary computer)."
        )
    return f"The box could not {doing}: {text}."


def helper_from_argv(argv: Sequence[str], env: dict[str, str] | None = None) -> RootHelper:
    return RootHelper(tuple(argv), env)
