from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from appliance.accounts import (
    AccountError,
    Accounts,
    AlreadyExists,
    Authenticator,
    LoginThrottle,
    NotFound,
    WeakPassword,
    hashing,
)

PW = "correct horse battery"


@pytest.fixture
def acc(tmp_path: Path) -> Accounts:
    a = Accounts(tmp_path / "accounts.sqlite")
    a.add_domain("example.org")
    return a


def test_domains(acc: Accounts) -> None:
    assert acc.add_domain("Example.NET.") == "example.net"
    assert acc.list_domains() == ["example.net", "example.org"]
    assert acc.is_local_domain("EXAMPLE.org")
    assert not acc.is_local_domain("other.org")
    with pytest.raises(AlreadyExists):
        acc.add_domain("example.net")
    with pytest.raises(AccountError):
        acc.add_domain("no_dots")
    acc.add_user("a@example.net", PW)
    with pytest.raises(AccountError, match="still has 1 user"):
        acc.remove_domain("example.net")
    acc.remove_user("a@example.net")
    acc.remove_domain("example.net")
    with pytest.raises(NotFound):
        acc.remove_domain("example.net")


def test_idn_domain_is_stored_as_ace(acc: Accounts) -> None:
    assert acc.add_domain("bücher.example") == "xn--bcher-kva.example"


def test_users_and_passwords(acc: Accounts) -> None:
    user = acc.add_user("Alice@Example.org", PW, quota_bytes=1000)
    assert user.email == "alice@example.org"
    assert acc.get_user("ALICE@example.org") == user
    with pytest.raises(AlreadyExists):
        acc.add_user("alice@example.org", PW)
    with pytest.raises(NotFound, match="not served"):
        acc.add_user("bob@elsewhere.org", PW)
    with pytest.raises(WeakPassword):
        acc.add_user("bob@example.org", "short")
    with pytest.raises(AccountError):
        acc.add_user("not an address", PW)
    assert acc.authenticate("alice@example.org", PW) == user
    assert acc.authenticate("alice@example.org", PW + "x") is None
    assert acc.authenticate("nobody@example.org", PW) is None
    acc.set_password("alice@example.org", "another long password")
    assert acc.authenticate("alice@example.org", PW) is None
    assert acc.authenticate("alice@example.org", "another long password") is not None
    acc.set_disabled("alice@example.org", True)
    assert acc.authenticate("alice@example.org", "another long password") is None


def test_passwords_are_argon2_hashed_not_stored(acc: Accounts, tmp_path: Path) -> None:
    acc.add_user("alice@example.org", PW)
    raw = (
        sqlite3.connect(tmp_path / "accounts.sqlite")
        .execute("SELECT password_hash FROM users")
        .fetchone()[0]
    )
    assert raw.startswith("$argon2id$")
    assert PW not in raw
    assert hashing.verify_password(raw, PW)


def test_aliases_catch_all_subaddress_and_forwarding(acc: Accounts) -> None:
    acc.add_user("alice@example.org", PW)
    acc.add_user("bob@example.org", PW)
    acc.add_alias("team@example.org", "alice@example.org")
    acc.add_alias("team@example.org", "bob@example.org")
    acc.add_alias("team@example.org", "carol@remote.example")
    acc.add_alias("info@example.org", "team@example.org")
    r = acc.resolve("INFO@example.org")
    assert set(r.local) == {"alice@example.org", "bob@example.org"}
    assert r.remote == ("carol@remote.example",)
    assert acc.resolve("alice+news@example.org").local == ("alice@example.org",)
    assert not acc.resolve("nobody@example.org").exists
    assert not acc.resolve("alice@other.org").exists
    acc.add_alias("@example.org", "bob@example.org")
    assert acc.resolve("nobody@example.org").local == ("bob@example.org",)
    with pytest.raises(AlreadyExists, match="is a user"):
        acc.add_alias("alice@example.org", "bob@example.org")
    with pytest.raises(AccountError, match="itself"):
        acc.add_alias("x@example.org", "x@example.org")
    assert acc.addresses_of("alice@example.org") == {
        "alice@example.org",
        "team@example.org",
        "info@example.org",
    }
    assert acc.remove_alias("team@example.org") == 3
    with pytest.raises(NotFound):
        acc.remove_alias("team@example.org")


def test_alias_loops_terminate(acc: Accounts) -> None:
    acc.add_alias("a@example.org", "b@example.org")
    acc.add_alias("b@example.org", "a@example.org")
    assert not acc.resolve("a@example.org").exists


def test_app_passwords(acc: Accounts) -> None:
    acc.add_user("alice@example.org", PW)
    app, secret = acc.add_app_password("alice@example.org", "phone")
    assert len(secret) >= 24
    assert acc.authenticate("alice@example.org", secret) is not None
    (listed,) = acc.list_app_passwords("alice@example.org")
    assert listed.label == "phone" and listed.last_used is not None
    acc.remove_app_password("alice@example.org", app.id)
    assert acc.authenticate("alice@example.org", secret) is None


def test_concurrent_threads_share_the_database(acc: Accounts) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            acc.add_alias(f"list{i}@example.org", "x@remote.example")
            assert acc.resolve(f"list{i}@example.org").remote == ("x@remote.example",)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(acc.list_aliases()) == 8


def test_backup_to_is_a_consistent_copy(acc: Accounts, tmp_path: Path) -> None:
    acc.add_user("alice@example.org", PW)
    acc.backup_to(tmp_path / "copy.sqlite")
    copy = Accounts(tmp_path / "copy.sqlite")
    assert copy.authenticate("alice@example.org", PW) is not None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_exponential_backoff() -> None:
    clock = FakeClock()
    t = LoginThrottle(free_failures=3, base=1.0, cap=60.0, ip_free_failures=5, clock=clock)
    for _ in range(3):
        assert t.retry_after("a@x.org", "1.2.3.4") == 0
        t.failure("a@x.org", "1.2.3.4")
    assert t.retry_after("a@x.org", "1.2.3.4") == pytest.approx(1.0)
    assert t.retry_after("a@x.org", "9.9.9.9") == 0  # per account and source
    assert t.retry_after("b@x.org", "1.2.3.4") == 0  # the IP's own budget is larger
    clock.now += 1.0
    t.failure("a@x.org", "1.2.3.4")
    assert t.retry_after("a@x.org", "1.2.3.4") == pytest.approx(2.0)
    t.failure("b@x.org", "1.2.3.4")  # 5th failure from this IP
    assert t.retry_after("b@x.org", "1.2.3.4") == pytest.approx(1.0)  # per IP
    assert t.retry_after("b@x.org", "9.9.9.9") == 0
    for _ in range(20):
        t.failure("a@x.org", "1.2.3.4")
    assert t.retry_after("a@x.org", "1.2.3.4") == pytest.approx(60.0)
    t.success("a@x.org", "1.2.3.4")
    assert t.retry_after("a@x.org", "5.5.5.5") == 0  # account and source cleared
    assert t.retry_after("c@x.org", "1.2.3.4") > 0  # IP not cleared by a success
    clock.now += 4000
    assert t.retry_after("c@x.org", "1.2.3.4") == 0  # forgotten after an hour


def test_authenticator_refuses_without_hashing_while_throttled(acc: Accounts) -> None:
    acc.add_user("alice@example.org", PW)
    clock = FakeClock()
    auth = Authenticator(acc, LoginThrottle(free_failures=2, clock=clock))
    calls: list[str] = []
    real = acc.authenticate

    def counting(login: str, password: str) -> object:
        calls.append(login)
        return real(login, password)

    acc.authenticate = counting  # type: ignore[method-assign]

    async def scenario() -> None:
        assert not (await auth.authenticate("alice@example.org", "wrong1", "10.0.0.1")).ok
        assert not (await auth.authenticate("alice@example.org", "wrong2", "10.0.0.1")).ok
        blocked = await auth.authenticate("alice@example.org", PW, "10.0.0.1")
        assert not blocked.ok and blocked.retry_after > 0
        assert len(calls) == 2
        clock.now += 10
        ok = await auth.authenticate("alice@example.org", PW, "10.0.0.1")
        assert ok.ok and ok.user is not None and ok.user.email == "alice@example.org"

    asyncio.run(scenario())
