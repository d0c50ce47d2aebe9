"""``python -m appliance.webmail COMMAND --config CFG``

- ``serve``: prepare Roundcube's data directory, write php-fpm's config and exec php-fpm
  in the foreground (the box's systemd unit and dev mode run this).
- ``enabled``: exit 0 when ``[webmail] enabled`` is true and Roundcube and php-fpm are
  installed, else 1 (a systemd ExecCondition).
- ``prepare``: only write the data directory (config, key, database).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from appliance import config
from appliance import log as applog
from appliance.cliconfig import default_config_path
from appliance.webmail.fpm import fpm_binary, fpm_command, write_fpm_config
from appliance.webmail.roundcube import WebmailError, installed, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.webmail")
    parser.add_argument("command", choices=("serve", "enabled", "prepare"))
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        cfg = config.load(args.config or default_config_path())
    except config.ConfigError as exc:
        print(f"webmail: config: {exc}", file=sys.stderr)
        return 2
    binary = fpm_binary()
    if args.command == "enabled":
        return 0 if cfg.webmail.enabled and installed() and binary is not None else 1
    applog.setup()
    try:
        confdir = prepare(cfg)
    except (WebmailError, OSError) as exc:
        print(f"webmail: {exc}", file=sys.stderr)
        return 1
    if args.command == "prepare":
        return 0
    if binary is None:
        print("webmail: php-fpm is not installed (Debian package php8.2-fpm)", file=sys.stderr)
        return 1
    conf = write_fpm_config(cfg, confdir)
    command = fpm_command(binary, conf)
    os.execv(command[0], command)  # noqa: S606 (a fixed argv: the binary and our config)


if __name__ == "__main__":
    sys.exit(main())
