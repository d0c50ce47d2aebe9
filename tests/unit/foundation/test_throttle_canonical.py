"""Issue 16 item 4: the login throttle keys on the canonical account id, per source IP,
with a per-account ceiling that slows but never refuses a correct password."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.accounts import Accounts, Authenticator, LoginThrottle

PW = "correct horse battery"
BOB = "bob@example.org"
SPELLINGS = [BOB, "bob@example.org.", "<bob@example.org>", " bob@example.org", "BOB@Example.ORG"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def acc(tmp_path: Path) -> Accounts:
    a = Accounts(tmp_path / "accounts.sqlite")
    a.add_domain("example.org")
    a.add_user(BOB, PW)
    a.add_user("carol@example.org", PW)
    return a


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_is_one_canonical_id(acc: Accounts, spelling: str) -> None:
    assert acc.canonical_login(spelling) == BOB
    assert acc.authenticate(spelling, PW) is not None  # the lookup agrees with the key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nobody", " NOBODY."),
        ("<ghost@nowhere.example>", "ghost@NOWHERE.example."),
        ("<x y@z>", " <X Y@Z> "),
    ],
)
def test_unknown_spellings_share_a_key(acc: Accounts, a: str, b: str) -> None:
    assert acc.canonical_login(a) == acc.canonical_login(b)


def test_spelling_variants_share_one_budget(acc: Accounts) -> None:
    clock = FakeClock()
    auth = Authenticator(acc, LoginThrottle(free_failures=3, clock=clock))

    async def run() -> None:
        for spelling in SPELLINGS[1:4]:
            assert (await auth.authenticate(spelling, "wrong guess 1", "192.0.2.1")).user is None
        # The right password in a fourth spelling is refused without being checked.
        res = await auth.authenticate(SPELLINGS[4], PW, "192.0.2.1")
        assert res.user is None and res.retry_after > 0
        # Another account from the same address is not held back (IP budget is larger).
        assert (await auth.authenticate("carol@example.org", PW, "192.0.2.1")).ok
        # The owner on another address gets in.
        assert (await auth.authenticate(BOB, PW, "198.51.100.7")).ok

    asyncio.run(run())


def test_account_ceiling_slows_but_never_refuses() -> None:
    clock = FakeClock()
    t = LoginThrottle(
        free_failures=3, account_ceiling=6, account_delay=0.5, account_delay_cap=2.0, clock=clock
    )
    for i in range(6):  # two failures from each of three addresses: no pair throttled
        assert t.slowdown(BOB) == 0
        t.failure(BOB, f"192.0.2.{i % 3}")
    assert t.slowdown(BOB) == pytest.approx(0.5)
    assert t.retry_after(BOB, "198.51.100.7") == 0  # slowed, not refused
    for i in range(6):
        t.failure(BOB, f"203.0.113.{i}")
    assert t.slowdown(BOB) == pytest.approx(1.0)  # doubles per further ceiling
    for i in range(100):
        t.failure(BOB, f"10.0.{i}.1")
    assert t.slowdown(BOB) == pytest.approx(2.0)  # bounded
    assert t.retry_after(BOB, "198.51.100.7") == 0
    assert t.slowdown("carol@example.org") == 0
    t.success(BOB, "198.51.100.7")
    assert t.slowdown(BOB) == pytest.approx(2.0)  # the owner's login does not reset it
    clock.now += 3601
    assert t.slowdown(BOB) == 0  # forgotten an hour after the last failure


def test_authenticator_sleeps_past_the_ceiling(
    acc: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    throttle = LoginThrottle(account_ceiling=4, account_delay=3.0, clock=clock)
    auth = Authenticator(acc, throttle)
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    async def run() -> None:
        for i, spelling in enumerate(SPELLINGS[:4]):
            assert (await auth.authenticate(spelling, "bad guess 12", f"192.0.2.{i}")).user is None
        assert slept == []
        monkeypatch.setattr(asyncio, "sleep", fake_sleep)
        res = await auth.authenticate(" <BOB@example.org.>", PW, "198.51.100.9")
        assert res.ok and slept == [3.0]

    asyncio.run(run())


def test_key_count_stays_bounded() -> None:
    from appliance.accounts import throttle as mod

    t = LoginThrottle(clock=FakeClock())
    for i in range(mod.MAX_KEYS // 3 + 10):
        t.failure(f"user{i}@example.org", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(t._state) <= mod.MAX_KEYS


def test_ipv6_sources_count_per_64() -> None:
    t = LoginThrottle(free_failures=2, clock=FakeClock())
    t.failure(BOB, "2001:db8:1:2::1")
    t.failure(BOB, "2001:db8:1:2:ffff::9")  # same /64, another address
    assert t.retry_after(BOB, "2001:db8:1:2::abcd") > 0
    assert t.retry_after(BOB, "2001:db8:1:3::1") == 0  # the next /64 is another source
    t.failure(BOB, "::ffff:192.0.2.5")
    t.failure(BOB, "192.0.2.5")
    assert t.retry_after(BOB, "192.0.2.5") > 0  # IPv4-mapped is the IPv4 address


def test_numbers_come_from_limits(tmp_path: Path) -> None:
    from appliance import config

    path = tmp_path / "pillarbox.toml"
    path.write_text(
        'dev = true\nhostname = "mail.pillarbox.test"\ndata_dir = "."\n[limits]\n'
        "login_free_failures = 5\nlogin_ip_free_failures = 40\nlogin_backoff_cap = 60\n"
        "login_account_ceiling = 50\nlogin_account_delay_cap = 4\n"
    )
    t = LoginThrottle.from_limits(config.load(path).limits)
    assert (t.free_failures, t.ip_free_failures, t.cap) == (5, 40, 60.0)
    assert (t.account_ceiling, t.account_delay_cap) == (50, 4.0)
    d = LoginThrottle.from_limits(config.Limits())
    assert (d.free_failures, d.ip_free_failures, d.cap) == (3, 10, 300.0)
    assert (d.account_ceiling, d.account_delay, d.account_delay_cap) == (20, 1.0, 8.0)


def test_shared_sources_count_for_the_account_only() -> None:
    """Issue 21: loopback carries every webmail user's logins while webmail is on."""
    clock = FakeClock()
    t = LoginThrottle(clock=clock, shared_sources=("127.0.0.1", "::1"))
    for ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1"):
        for i in range(30):
            t.failure(f"user{i}@example.org", ip)
            t.failure(BOB, ip)
        assert t.retry_after(BOB, ip) == 0.0
    assert t.slowdown(BOB) > 0  # the account itself is still slowed past its ceiling
    for _ in range(t.free_failures):
        t.failure(BOB, "192.0.2.1")
    assert t.retry_after(BOB, "192.0.2.1") > 0  # any other address: as before
