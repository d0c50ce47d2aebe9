"""Subprocess for the Sieve store crash tests.

python -m tests.unit.filters.sieve_store_worker ROOT activate NAME    -> "DONE" ("" deactivates)
python -m tests.unit.filters.sieve_store_worker ROOT rename OLD NEW   -> "DONE"
python -m tests.unit.filters.sieve_store_worker ROOT migrate          -> "DONE"
A trailing "die:<os function>:<k>" makes the process SIGKILL itself on the k-th call of
that os function (tests.unit.store.crash_worker.die_on).
"""

from __future__ import annotations

import sys
from pathlib import Path

from appliance.filters.sieve_store import SieveStore
from tests.unit.store.crash_worker import die_on

USER = "alice@pillarbox.test"


def main() -> None:
    if sys.argv[-1].startswith("die:"):
        _, name, k = sys.argv.pop().split(":")
        die_on(name, int(k))
    store = SieveStore(Path(sys.argv[1]))
    mode = sys.argv[2]
    if mode == "activate":
        store.set_active(USER, sys.argv[3] or None)
    elif mode == "rename":
        store.rename(USER, sys.argv[3], sys.argv[4])
    elif mode == "migrate":
        store.active_name(USER)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
