"""What every `pillarbox` command module shares: where the config file is, loading it,
and the error a command reports (``pillarbox: <message>``, exit code 1).

Below :mod:`appliance.cli`, :mod:`appliance.devrun` and :mod:`appliance.backup.cli`, so
none of them imports another for it. The config file is found from --config, then
$PILLARBOX_CONFIG, then /etc/pillarbox/pillarbox.toml (appliance), then
./var/pillarbox.toml (dev).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from appliance import config

APPLIANCE_CONFIG = Path("/etc/pillarbox/pillarbox.toml")
DEV_CONFIG = Path("var/pillarbox.toml")


class CliError(Exception):
    """Reported as 'pillarbox: <message>' with exit code 1."""


def default_config_path() -> Path:
    env = os.environ.get("PILLARBOX_CONFIG")
    if env:
        return Path(env)
    if APPLIANCE_CONFIG.exists():
        return APPLIANCE_CONFIG
    return DEV_CONFIG


def load_config(args: argparse.Namespace) -> config.Config:
    path: Path = getattr(args, "config", None) or default_config_path()
    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise CliError(f"config: {exc}") from None
