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


def searched_places(args: argparse.Namespace) -> list[str]:
    """Where the config was looked for, in order, each with why it was a candidate."""
    explicit = getattr(args, "config", None)
    if explicit:
        return [f"{explicit} (--config)"]
    env = os.environ.get("PILLARBOX_CONFIG")
    if env:
        return [f"{env} ($PILLARBOX_CONFIG)"]
    return [
        f"{APPLIANCE_CONFIG} (the appliance)",
        f"{DEV_CONFIG.absolute()} (dev mode: `pillarbox run --dev` creates it)",
    ]


def load_config(args: argparse.Namespace) -> config.Config:
    path: Path = getattr(args, "config", None) or default_config_path()
    if not path.exists():
        places = "".join(f"\n  {p}" for p in searched_places(args))
        raise CliError(
            f"no config file found. Looked in:{places}\nUse --config FILE or set $PILLARBOX_CONFIG."
        )
    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise CliError(f"config: {exc}") from None
