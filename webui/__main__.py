"""``python -m webui [--config] CONFIG``: serve the wizard (default ./var/pillarbox.toml)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from appliance import log as applog
from webui.serve import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webui", description=__doc__)
    parser.add_argument("config", nargs="?", type=Path, help="pillarbox.toml")
    parser.add_argument("-c", "--config", dest="config_opt", type=Path, help="pillarbox.toml")
    args = parser.parse_args(argv)
    path: Path = args.config_opt or args.config or Path("var/pillarbox.toml")
    applog.setup()  # the daemon's format: one log format in dev (mixed on one stderr)
    # Ctrl-C in `make run` reaches this process too: end quietly, as SIGTERM does, not
    # with a KeyboardInterrupt traceback (the parent daemon stops it anyway).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    serve(path)


if __name__ == "__main__":
    main()
