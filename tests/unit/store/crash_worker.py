"""Subprocess for the crash tests: delivers or expunges and reports each acknowledgement.

python crash_worker.py deliver ROOT START COUNT   -> prints "ACK <n> <uid>" per delivery
python crash_worker.py expunge ROOT               -> prints "DONE <uids>" when finished
A trailing "die:<os function>:<k>" makes the process SIGKILL itself on the k-th call of
that function: an os function or module.attr (die:unlink:3 = killed mid-expunge).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore

USER = "alice@example.org"


def body(n: int) -> bytes:
    line = f"line of message {n} ".encode() * 4 + b"\r\n"
    return f"Subject: crash {n}\r\nX-N: {n}\r\n\r\n".encode() + line * 300 + f"END {n}\r\n".encode()


def die_on(name: str, k: int) -> None:
    module_name, _, attr = name.rpartition(".")
    owner: Any = importlib.import_module(module_name) if module_name else os
    real = getattr(owner, attr)
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, attr, wrapper)


def main() -> None:
    mode, root = sys.argv[1], Path(sys.argv[2])
    if sys.argv[-1].startswith("die:"):
        _, name, k = sys.argv.pop().split(":")
        die_on(name, int(k))
    store = MaildirStore(root, lambda e: None, lambda p: b"")
    if mode == "deliver":
        start, count = int(sys.argv[3]), int(sys.argv[4])
        src = root.parent / f"src-{start}.eml"
        for n in range(start, start + count):
            src.write_bytes(body(n))
            [a] = store.deliver([DeliveryTarget(USER)], src)
            print(f"ACK {n} {a.uid}", flush=True)
    elif mode == "expunge":
        removed = store.expunge(USER, INBOX)
        print("DONE " + " ".join(map(str, removed)), flush=True)


if __name__ == "__main__":
    main()
