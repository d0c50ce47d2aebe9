"""SieveStore: named scripts with one active, the old single-file layout migrated, and
activation, rename and migration killed at each step leaving exactly one usable state."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.filters.sieve_store import (
    BadScriptName,
    NoSuchScript,
    ScriptActive,
    ScriptExists,
    SieveStore,
    SieveSyntaxError,
    TooManyScripts,
    check_name,
)

REPO = Path(__file__).resolve().parents[3]
WORKER = "tests.unit.filters.sieve_store_worker"
USER = "alice@pillarbox.test"
ONE = 'require "fileinto";\nfileinto "One";\n'
TWO = 'require "fileinto";\nfileinto "Two";\n'


def _run(root: Path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", WORKER, str(root), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    return proc.returncode, proc.stdout


@pytest.fixture
def store(tmp_path: Path) -> SieveStore:
    return SieveStore(tmp_path / "sieve")


def test_named_scripts_one_active(store: SieveStore) -> None:
    assert store.list_scripts(USER) == []
    store.put(USER, "one", ONE)
    store.put(USER, "two", TWO)
    assert store.list_scripts(USER) == [("one", False), ("two", False)]
    assert store.get_script(USER) is None and store.compiled(USER) is None
    store.set_active(USER, "two")
    assert store.list_scripts(USER) == [("one", False), ("two", True)]
    assert store.get_script(USER) == TWO
    compiled = store.compiled(USER)
    assert compiled is not None and compiled[1].name == "fileinto"
    store.set_active(USER, "one")
    assert store.get_script(USER) == ONE
    with pytest.raises(ScriptActive):
        store.delete(USER, "one")
    store.delete(USER, "two")
    with pytest.raises(NoSuchScript):
        store.delete(USER, "two")
    with pytest.raises(NoSuchScript):
        store.set_active(USER, "two")
    store.set_active(USER, None)
    assert store.get_script(USER) is None
    assert store.read(USER, "one") == ONE
    with pytest.raises(NoSuchScript):
        store.read(USER, "none")


def test_put_validates_and_counts(store: SieveStore) -> None:
    with pytest.raises(SieveSyntaxError) as info:
        store.put(USER, "bad", 'keep;\nfileinto "x";')
    assert (info.value.line, info.value.column) == (2, 1)
    assert store.list_scripts(USER) == []
    store.put(USER, "a", ONE, max_scripts=2)
    store.put(USER, "b", ONE, max_scripts=2)
    store.put(USER, "a", TWO, max_scripts=2)  # a replacement is no new script
    with pytest.raises(TooManyScripts):
        store.put(USER, "c", ONE, max_scripts=2)
    assert [n for n, _ in store.list_scripts(USER)] == ["a", "b"]


@pytest.mark.parametrize(
    "name", ["", "a\x00b", "tab\there", "del\x7f", "c1\x85", "ls\u2028", "x" * 81, "e\u0301"]
)
def test_bad_names_refused(store: SieveStore, name: str) -> None:
    with pytest.raises(BadScriptName):
        store.put(USER, name, ONE)


@pytest.mark.parametrize("name", ["../etc/passwd", ".", "..", "active", "a b/c", "Ünïcødé ✓"])
def test_odd_names_stay_inside_the_user_directory(store: SieveStore, name: str) -> None:
    check_name(name)
    store.put(USER, name, ONE)
    store.set_active(USER, name)
    assert store.list_scripts(USER) == [(name, True)]
    files = sorted(p.name for p in store.root.rglob("*") if p.is_file())
    assert len(files) == 2 and "active" in files
    assert all(p.parent == store.user_dir(USER) for p in store.root.rglob("*") if p.is_file())


def test_rename_keeps_the_active_script_active(store: SieveStore) -> None:
    store.put(USER, "one", ONE)
    store.put(USER, "two", TWO)
    store.set_active(USER, "one")
    with pytest.raises(ScriptExists):
        store.rename(USER, "one", "two")
    with pytest.raises(NoSuchScript):
        store.rename(USER, "nope", "three")
    store.rename(USER, "one", "first")
    assert store.list_scripts(USER) == [("first", True), ("two", False)]
    assert store.get_script(USER) == ONE


def test_web_save_creates_and_activates_pillarbox(store: SieveStore) -> None:
    store.save_script(USER, ONE)
    assert store.list_scripts(USER) == [("pillarbox", True)]
    store.save_script(USER, TWO)  # replaces the active script in place
    assert store.list_scripts(USER) == [("pillarbox", True)]
    assert store.read(USER, "pillarbox") == TWO
    store.put(USER, "mine", ONE)
    store.set_active(USER, "mine")
    store.save_script(USER, TWO)  # the web page edits whatever script is active
    assert store.read(USER, "mine") == TWO and store.read(USER, "pillarbox") == TWO
    store.set_active(USER, None)
    store.save_script(USER, ONE)  # none active: an inactive "pillarbox" is kept
    assert store.list_scripts(USER) == [
        ("mine", False),
        ("pillarbox", False),
        ("pillarbox-1", True),
    ]
    assert store.delete_script(USER)
    assert store.list_scripts(USER) == [("mine", False), ("pillarbox", False)]
    assert not store.delete_script(USER)


def test_old_single_file_is_migrated(store: SieveStore) -> None:
    store.root.mkdir(parents=True)
    store.path_for(USER).write_text(ONE)
    assert store.get_script("Alice@Pillarbox.test") == ONE
    assert store.list_scripts(USER) == [("pillarbox", True)]
    assert not store.path_for(USER).exists()
    # A backup restore brings an old file back: it becomes the active "pillarbox" again.
    store.put(USER, "other", TWO)
    store.set_active(USER, "other")
    store.path_for(USER).write_text(TWO + "# restored\n")
    assert store.compiled(USER) is not None
    assert store.active_name(USER) == "pillarbox"
    assert store.get_script(USER) == TWO + "# restored\n"


# ---------------------------------------------------------------- killed at each step


def _two_scripts(root: Path) -> SieveStore:
    store = SieveStore(root)
    store.put(USER, "one", ONE)
    store.put(USER, "two", TWO)
    store.set_active(USER, "one")
    return store


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")]


@pytest.mark.parametrize(
    ("die", "active"),
    [
        ("die:open:1", "one"),  # before the new pointer's temporary file exists
        ("die:fsync:1", "one"),  # new pointer written, not durable
        ("die:replace:1", "one"),  # durable, not yet renamed over the old pointer
        ("die:open:2", "two"),  # renamed, directory not yet fsynced
        ("die:fsync:2", "two"),
    ],
)
def test_activation_killed_at_each_step(tmp_path: Path, die: str, active: str) -> None:
    root = tmp_path / "sieve"
    _two_scripts(root)
    code, out = _run(root, "activate", "two", die)
    assert (code, out) == (-signal.SIGKILL, "")
    store = SieveStore(root)
    assert store.list_scripts(USER) == [("one", active == "one"), ("two", active == "two")]
    assert store.get_script(USER) == (ONE if active == "one" else TWO)
    assert _run(root, "activate", "two") == (0, "DONE\n")
    assert store.active_name(USER) == "two"
    assert _temps(root) == []


@pytest.mark.parametrize(("die", "active"), [("die:unlink:1", "one"), ("die:open:1", None)])
def test_deactivation_killed(tmp_path: Path, die: str, active: str | None) -> None:
    root = tmp_path / "sieve"
    _two_scripts(root)
    assert _run(root, "activate", "", die) == (-signal.SIGKILL, "")
    assert SieveStore(root).active_name(USER) == active


@pytest.mark.parametrize(
    ("die", "names", "active"),
    [
        ("die:link:1", ["one", "two"], "one"),
        ("die:replace:1", ["first", "one", "two"], "one"),  # linked, pointer not moved
        ("die:unlink:1", ["first", "one", "two"], "first"),  # pointer moved, old name left
        ("die:fsync:4", ["first", "two"], "first"),  # old name removed, not durable
    ],
)
def test_rename_of_the_active_script_killed(
    tmp_path: Path, die: str, names: list[str], active: str
) -> None:
    root = tmp_path / "sieve"
    _two_scripts(root)
    assert _run(root, "rename", "one", "first", die) == (-signal.SIGKILL, "")
    store = SieveStore(root)
    assert store.list_scripts(USER) == [(n, n == active) for n in names]
    assert store.get_script(USER) == ONE


@pytest.mark.parametrize("die", ["die:open:1", "die:replace:1", "die:replace:2", "die:unlink:1"])
def test_migration_killed_at_each_step(tmp_path: Path, die: str) -> None:
    root = tmp_path / "sieve"
    root.mkdir()
    SieveStore(root).path_for(USER).write_text(ONE)
    assert _run(root, "migrate", die) == (-signal.SIGKILL, "")
    store = SieveStore(root)
    assert store.get_script(USER) == ONE  # the next access finishes the migration
    assert store.list_scripts(USER) == [("pillarbox", True)]
    assert not store.path_for(USER).exists()
    assert _temps(root) == []
