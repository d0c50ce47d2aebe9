"""Subprocess for the atomic-write crash tests.

python -m tests.unit.foundation.atomicfile_worker write PATH N    -> "DONE N" after the write
python -m tests.unit.foundation.atomicfile_worker create PATH N   -> "CREATED N" or "KEPT N"
python -m tests.unit.foundation.atomicfile_worker stream PATH N   -> SIGKILLs itself halfway
python -m tests.unit.foundation.atomicfile_worker loop PATH START -> "ACK n" per write, forever
A trailing "die:<os function>:<k>" makes the process SIGKILL itself on the k-th call of
that os function (die:replace:1 = killed just before the rename).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from appliance import atomicfile
from tests.unit.store.crash_worker import die_on

CHUNK = 4096


def body(n: int) -> bytes:
    """Version ``n`` of the file: 64 KiB, every line naming ``n``, so a part shows."""
    line = f"version {n:08d} of the file\n".encode()
    return line * (65536 // len(line)) + f"END {n}\n".encode()


def main() -> None:
    if sys.argv[-1].startswith("die:"):
        _, name, k = sys.argv.pop().split(":")
        die_on(name, int(k))
    mode, path, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if mode == "write":
        atomicfile.write_bytes(path, body(n))
        print(f"DONE {n}", flush=True)
    elif mode == "create":
        print(f"{'CREATED' if atomicfile.create(path, body(n), mode=0o600) else 'KEPT'} {n}")
    elif mode == "stream":
        data = body(n)
        with atomicfile.writing(path) as fh:
            for i in range(0, len(data), CHUNK):
                fh.write(data[i : i + CHUNK])
                if i >= len(data) // 2:
                    fh.flush()  # half of the new version is on disk in the temporary file
                    os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "loop":
        while True:
            atomicfile.write_bytes(path, body(n))
            print(f"ACK {n}", flush=True)
            n += 1


if __name__ == "__main__":
    main()
