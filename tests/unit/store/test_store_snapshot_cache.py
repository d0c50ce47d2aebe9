"""The in-memory snapshot cache always agrees with a snapshot read from the index."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from appliance.store.base import INBOX, DeliveryTarget
from appliance.store.maildir import MaildirStore
from tests.unit.store.conftest import USER

Msg = Callable[..., Path]


def test_cache_matches_uncached_under_random_operations(tmp_path: Path, message: Msg) -> None:
    root = tmp_path / "mail"
    cached = MaildirStore(root, lambda e: None, lambda p: b"")
    plain = MaildirStore(root, lambda e: None, lambda p: b"", snapshot_cache=0)
    cached.ensure_user(USER)
    rng = random.Random(7)
    src = message()
    drops = 0
    for step in range(150):
        uids = [m.uid for m in plain.snapshot(USER, INBOX).messages]
        op = rng.choice(["deliver", "deliver", "flag", "expunge", "drop", "copyin", "claim"])
        if op == "deliver" or not uids:
            cached.deliver([DeliveryTarget(USER)], src)
        elif op == "flag":
            pick = rng.sample(uids, min(len(uids), rng.randint(1, 4)))
            flag = rng.choice(["\\Seen", "\\Deleted", "$K1", "\\Flagged"])
            cached.store_flags(USER, INBOX, pick, rng.choice(["add", "remove", "set"]), [flag])
        elif op == "expunge":
            cached.expunge(USER, INBOX)
        elif op == "drop":
            drops += 1
            (cached.user_dir(USER) / "new" / f"17000{drops}.ext.host").write_bytes(b"x\r\n")
        elif op == "copyin":
            cached.append(USER, "Archive", src)
            arch = [m.uid for m in plain.snapshot(USER, "Archive").messages]
            cached.move(USER, "Archive", arch[-1:], INBOX)
        else:
            cached.snapshot(USER, INBOX, claim_recent=True)
        if step % 3 == 0:
            a = cached.snapshot(USER, INBOX)
            b = plain.snapshot(USER, INBOX)
            assert a.messages == b.messages, f"step {step} after {op}"
            assert a.status == b.status
    assert len(plain.snapshot(USER, INBOX).messages) > 10
