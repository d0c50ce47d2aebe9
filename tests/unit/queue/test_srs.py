"""SRS0 envelope rewriting for forwarded mail: round trip, hash and age checks, the secret
file, and the RCPT resolver sending a bounce to an SRS address back to the original sender."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appliance.accounts import Accounts
from appliance.delivery.errors import DeliveryFailed
from appliance.delivery.recipients import Resolver
from appliance.delivery.srs import MAX_AGE_DAYS, SECRET_FILE, Srs, SrsError, srs_for
from appliance.store.maildir import MaildirStore

DAY = 86400.0
NOW = 1_790_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def codec(clock: Clock | None = None) -> Srs:
    return Srs(b"k" * 32, clock=clock or Clock(NOW))


def test_round_trip_and_shape() -> None:
    srs = codec()
    addr = srs.forward("Carol.X=y@Sender.TEST", "pillarbox.test")
    local, _, domain = addr.rpartition("@")
    assert domain == "pillarbox.test"
    tag, digest, stamp, odomain, olocal = local.split("=", 4)
    assert (tag, odomain, olocal) == ("SRS0", "Sender.TEST", "Carol.X=y")
    assert len(digest) == 8 and len(stamp) == 2
    assert srs.reverse(local) == "Carol.X=y@Sender.TEST"
    assert srs.reverse(local.upper().replace("SRS0", "srs0")).lower() == "carol.x=y@sender.test"


def test_null_sender_stays_null() -> None:
    assert codec().forward("", "pillarbox.test") == ""


@pytest.mark.parametrize(
    "local",
    [
        "SRS0=aaaaaaaa=AB=sender.test=carol",  # forged hash
        "SRS0=x=y",  # malformed
        "SRS1=aaaa=AB=sender.test=carol",  # not SRS0
    ],
)
def test_forged_addresses_are_refused(local: str) -> None:
    with pytest.raises(SrsError):
        codec().reverse(local)


def test_other_secret_is_refused() -> None:
    local = codec().forward("carol@sender.test", "p.test").rpartition("@")[0]
    with pytest.raises(SrsError, match="hash"):
        Srs(b"z" * 32, clock=Clock(NOW)).reverse(local)


def test_expiry() -> None:
    clock = Clock(NOW)
    srs = codec(clock)
    local = srs.forward("carol@sender.test", "p.test").rpartition("@")[0]
    clock.now = NOW + MAX_AGE_DAYS * DAY
    assert srs.reverse(local) == "carol@sender.test"
    clock.now = NOW + (MAX_AGE_DAYS + 1) * DAY
    with pytest.raises(SrsError, match="expired"):
        srs.reverse(local)
    clock.now = NOW + 1024 * DAY  # the 10-bit day stamp wraps: fresh again, as in SRS0
    assert srs.reverse(local) == "carol@sender.test"


def test_secret_created_once_0600(tmp_path: Path) -> None:
    first = srs_for(tmp_path).forward("a@b.test", "p.test")
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    again = Srs(data_dir=tmp_path, clock=srs_for(tmp_path).clock)
    assert again.reverse(first.rpartition("@")[0]) == "a@b.test"


def test_resolver_reverses_and_refuses(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "accounts.sqlite")
    accounts.add_domain("pillarbox.test")
    accounts.add_user("alice@pillarbox.test", "correct horse battery")
    store = MaildirStore(tmp_path / "mail", notify=lambda *a: None, summarizer=lambda p: b"")
    srs = codec()
    resolver = Resolver(accounts, store, 0, srs)
    remote = srs.forward("carol@sender.test", "pillarbox.test").rpartition("@")[0]
    r = resolver.check(remote, "pillarbox.test", authenticated=False)
    assert r.remote == ("carol@sender.test",) and r.local == ()
    local = srs.forward("alice@pillarbox.test", "pillarbox.test").rpartition("@")[0]
    assert resolver.check(local, "pillarbox.test", False).local == ("alice@pillarbox.test",)
    with pytest.raises(DeliveryFailed) as info:
        resolver.check("SRS0=aaaaaaaa=AB=sender.test=carol", "pillarbox.test", False)
    assert info.value.code == 550
    accounts.close()
