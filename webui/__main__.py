"""``python -m webui [--config] CONFIG``: serve the wizard (default ./var/pillarbox.toml)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from webui.serve import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webui", description=__doc__)
    parser.add_argument("config", nargs="?", type=Path, help="pillarbox.toml")
    parser.add_argument("-c", "--config", dest="config_opt", type=Path, help="pillarbox.toml")
    args = parser.parse_args(argv)
    path: Path = args.config_opt or args.config or Path("var/pillarbox.toml")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    serve(path)


if __name__ == "__main__":
    main()
