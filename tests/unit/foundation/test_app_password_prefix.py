"""App passwords carry a public id so a login checks at most one app-password hash;
at most MAX_APP_PASSWORDS per user; ones made before the id still work. Timing-free:
the hash verifications are counted through the hashing module."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from appliance.accounts import MAX_APP_PASSWORDS, AccountError, Accounts, hashing

PW = "correct horse battery"
ANNA = "anna@example.org"


@pytest.fixture
def acc(tmp_path: Path) -> Accounts:
    a = Accounts(tmp_path / "accounts.sqlite")
    a.add_domain("example.org")
    a.add_user(ANNA, PW)
    return a


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = hashing.verify_password

    def counting(stored: str, password: str) -> bool:
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(hashing, "verify_password", counting)
    return calls


def _old_style(acc: Accounts, secret: str) -> None:
    """An app password as made before public ids: four groups, public_id NULL."""
    acc._conn().execute(
        "INSERT INTO app_passwords(email, label, password_hash, created) VALUES (?, ?, ?, ?)",
        (ANNA, "old phone", hashing.hash_password(secret), time.time()),
    )


def test_secret_starts_with_a_public_id(acc: Accounts) -> None:
    _, s1 = acc.add_app_password(ANNA, "phone")
    _, s2 = acc.add_app_password(ANNA, "laptop")
    for s in (s1, s2):
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{6}){4}", s)
    assert s1[:8] != s2[:8]


def test_one_app_password_hash_per_attempt(acc: Accounts, verifications: list[str]) -> None:
    secrets_ = [acc.add_app_password(ANNA, f"device {i}")[1] for i in range(10)]
    verifications.clear()
    assert acc.authenticate(ANNA, "a wrong guess") is None
    assert len(verifications) == 1  # the account password only
    verifications.clear()
    assert acc.authenticate(ANNA, secrets_[7]) is not None
    assert len(verifications) == 2  # account password, then that one app password
    verifications.clear()
    forged = secrets_[3][:9] + "000000-000000-000000-000000"  # a real id, wrong secret
    assert acc.authenticate(ANNA, forged) is None
    assert len(verifications) == 2
    verifications.clear()
    assert acc.authenticate(ANNA, "ffffffff-000000-000000-000000-000000") is None
    assert len(verifications) == 1  # unknown id: no app-password hash at all


def test_web_logins_take_no_app_password(acc: Accounts, verifications: list[str]) -> None:
    _, secret = acc.add_app_password(ANNA, "phone")
    verifications.clear()
    assert acc.authenticate(ANNA, secret, app_passwords=False) is None
    assert len(verifications) == 1
    assert acc.authenticate(ANNA, PW, app_passwords=False) is not None


def test_old_app_passwords_still_work_and_cost_only_their_shape(
    acc: Accounts, verifications: list[str]
) -> None:
    old = "a1b2c3-d4e5f6-0a1b2c-3d4e5f"
    _old_style(acc, old)
    _old_style(acc, "111111-222222-333333-444444")
    acc.add_app_password(ANNA, "new")
    verifications.clear()
    assert acc.authenticate(ANNA, old) is not None
    assert len(verifications) <= 3  # account password + the old rows, never the new one
    verifications.clear()
    assert acc.authenticate(ANNA, "not an app password") is None
    assert len(verifications) == 1
    (used,) = [a for a in acc.list_app_passwords(ANNA) if a.label == "old phone" and a.last_used]
    assert used.last_used is not None


def test_cap_per_user(acc: Accounts) -> None:
    for i in range(MAX_APP_PASSWORDS):
        acc.add_app_password(ANNA, f"d{i}")
    with pytest.raises(AccountError, match="at most"):
        acc.add_app_password(ANNA, "one too many")
    first = acc.list_app_passwords(ANNA)[0]
    acc.remove_app_password(ANNA, first.id)
    acc.add_app_password(ANNA, "fits again")
    assert len(acc.list_app_passwords(ANNA)) == MAX_APP_PASSWORDS


def test_database_from_before_public_ids_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "accounts.sqlite"
    a = Accounts(path)
    a.add_domain("example.org")
    a.add_user(ANNA, PW)
    a.close()
    db = sqlite3.connect(path)  # the old schema: no public_id column
    db.executescript(
        "DROP INDEX app_passwords_public_id; ALTER TABLE app_passwords DROP COLUMN public_id;"
    )
    db.close()
    keep = sqlite3.connect(path)  # an open connection keeps the -wal and -shm
    keep.execute("SELECT 1 FROM users").fetchall()
    ro = Accounts(path, readonly=True)  # a reader copes with the unmigrated schema
    assert ro.authenticate(ANNA, "111111-222222-333333-444444") is None
    b = Accounts(path)
    _, secret = b.add_app_password(ANNA, "after update")
    assert b.authenticate(ANNA, secret) is not None
    assert Accounts(path, readonly=True).authenticate(ANNA, secret) is not None
