from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from appliance.backup import password


def test_generated_passwords_are_grouped_and_strong() -> None:
    pw = password.generate()
    groups = pw.split("-")
    assert len(groups) == password.GROUPS
    assert all(len(g) == password.GROUP_LEN for g in groups)
    assert set("".join(groups)) <= set(password.ALPHABET)
    assert password.entropy_bits() >= 128
    assert len(set(password.ALPHABET)) == 32
    assert not set("ilou") & set(password.ALPHABET)  # no look-alikes


def test_generation_uses_the_injected_randomness() -> None:
    rng = random.Random(7)
    a = password.generate(rng.choice)
    rng = random.Random(7)
    assert password.generate(rng.choice) == a
    assert password.generate() != password.generate()


def test_password_file_is_private_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "backup" / "repository-password"
    password.write_new(path, "abcd-efgh")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert password.read(path) == "abcd-efgh"
    with pytest.raises(password.PasswordError, match="already exists"):
        password.write_new(path, "other")
    assert password.read(path) == "abcd-efgh"


def test_missing_or_empty_password_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(password.PasswordError, match="no repository password"):
        password.read(tmp_path / "nope")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(password.PasswordError, match="empty"):
        password.read(tmp_path / "empty")


def test_sheet_shows_the_password_until_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "repository-password"
    password.write_new(path, "1234-5678")
    st = password.sheet_state(path)
    assert st.password == "1234-5678" and not st.acknowledged
    password.acknowledge(path)
    st = password.sheet_state(path)
    assert st.password is None and st.acknowledged
