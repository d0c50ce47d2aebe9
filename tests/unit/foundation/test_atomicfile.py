"""appliance.atomicfile: old or new content, never a part, and no temporary file left."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance import atomicfile
from tests.unit.foundation.atomicfile_worker import body

REPO = Path(__file__).resolve().parents[3]
WORKER = "tests.unit.foundation.atomicfile_worker"


def _spawn(*args: str) -> subprocess.Popen[str]:
    # -m from the repository root: the worker imports this checkout's appliance package.
    return subprocess.Popen(
        [sys.executable, "-m", WORKER, *args], stdout=subprocess.PIPE, text=True, cwd=REPO
    )


def _run(*args: str) -> tuple[int, str]:
    proc = _spawn(*args)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- in-process


def test_write_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomicfile.write_bytes(path, b"one")
    assert path.read_bytes() == b"one"
    atomicfile.write_text(path, "två\n")
    assert path.read_text(encoding="utf-8") == "två\n"
    atomicfile.write_text(path, "ascii\n", encoding="ascii")
    assert path.read_bytes() == b"ascii\n"
    assert _temps(tmp_path) == []


def test_mode_is_exact_and_default_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomicfile.write_bytes(tmp_path / "public.txt", b"p", mode=0o644)
        atomicfile.write_bytes(tmp_path / "secret", b"s", mode=0o600)
        atomicfile.write_bytes(tmp_path / "plain", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "public.txt") == 0o644  # wider than the umask allows: chmod'ed
    assert _mode(tmp_path / "secret") == 0o600
    assert _mode(tmp_path / "plain") == 0o600  # 0666 less the umask 077
    os.umask(0o022)
    try:
        atomicfile.write_bytes(tmp_path / "plain", b"y")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "plain") == 0o644


def test_writing_keeps_the_target_on_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomicfile.writing(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("the writer failed")
    assert path.read_bytes() == b"old"
    assert _temps(tmp_path) == []
    with atomicfile.writing(path, mode=0o600) as fh:
        fh.write(b"new, ")
        fh.write(b"streamed")
    assert path.read_bytes() == b"new, streamed"
    assert _mode(path) == 0o600


def test_tmp_dir_holds_the_temporary_file(tmp_path: Path) -> None:
    final, scratch = tmp_path / "meta", tmp_path / "tmp"
    final.mkdir()
    scratch.mkdir()
    seen: list[str] = []
    with atomicfile.writing(final / "A.json", tmp_dir=scratch) as fh:
        fh.write(b"{}")
        seen = os.listdir(scratch)
    assert len(seen) == 1 and seen[0].startswith(".A.json.")
    assert (final / "A.json").read_bytes() == b"{}"
    assert os.listdir(scratch) == []


def test_create_keeps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert atomicfile.create(path, b"first", mode=0o600)
    assert not atomicfile.create(path, b"second", mode=0o600)
    assert path.read_bytes() == b"first"
    assert _mode(path) == 0o600
    assert _temps(tmp_path) == []


def test_leftovers_of_dead_or_old_writers_are_swept(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(proc.stdout)  # exited: no process has this pid (unless reused, unlikely here)
    leftovers = {
        "dead": tmp_path / f".state.json.{dead}-0badc0de.tmp",
        "live": tmp_path / f".state.json.{os.getpid()}-00000001.tmp",
        "old": tmp_path / f".state.json.{os.getpid()}-00000002.tmp",
        "other file": tmp_path / f".other.json.{dead}-00000003.tmp",
        "not ours": tmp_path / "state.json.tmp",
    }
    for p in leftovers.values():
        p.write_bytes(b"half")
    long_ago = time.time() - atomicfile.STALE_TEMP_SECONDS - 60
    os.utime(leftovers["old"], (long_ago, long_ago))
    atomicfile.write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert not leftovers["dead"].exists()
    assert not leftovers["old"].exists()
    assert leftovers["live"].exists()  # a writer of this process may be busy with it
    assert leftovers["other file"].exists()
    assert leftovers["not ours"].exists()


# ---------------------------------------------------------------- killed writers


@pytest.mark.parametrize(
    ("die", "survivor"),
    [
        ("die:open:1", 1),  # before the temporary file exists
        ("die:fsync:1", 1),  # new version written, not yet durable
        ("die:replace:1", 1),  # durable, not yet renamed
        ("die:open:2", 2),  # renamed, directory not yet opened for its fsync
        ("die:fsync:2", 2),  # renamed, directory not yet fsynced
    ],
)
def test_write_killed_at_each_step(tmp_path: Path, die: str, survivor: int) -> None:
    path = tmp_path / "state.json"
    assert _run("write", str(path), "1") == (0, "DONE 1\n")
    code, out = _run("write", str(path), "2", die)
    assert code == -signal.SIGKILL
    assert out == ""
    assert path.read_bytes() == body(survivor)  # the old or the new version, whole
    assert _run("write", str(path), "3") == (0, "DONE 3\n")
    assert path.read_bytes() == body(3)
    assert _temps(tmp_path) == []  # the killed writer's leftover is gone


def test_stream_killed_halfway_keeps_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert _run("write", str(path), "1") == (0, "DONE 1\n")
    code, _ = _run("stream", str(path), "2")
    assert code == -signal.SIGKILL
    assert path.read_bytes() == body(1)
    [leftover] = _temps(tmp_path)  # half of version 2, beside the target
    assert 0 < (tmp_path / leftover).stat().st_size < len(body(2))
    assert _run("write", str(path), "3") == (0, "DONE 3\n")
    assert path.read_bytes() == body(3)
    assert _temps(tmp_path) == []


@pytest.mark.parametrize(
    ("die", "made"),
    [
        ("die:fsync:1", False),  # written, not durable, not linked
        ("die:link:1", False),  # durable, not linked
        ("die:unlink:1", True),  # linked, temporary name not yet removed
        ("die:fsync:2", True),  # linked, directory not yet fsynced
    ],
)
def test_create_killed_at_each_step(tmp_path: Path, die: str, made: bool) -> None:
    path = tmp_path / "key"
    code, out = _run("create", str(path), "1", die)
    assert code == -signal.SIGKILL
    assert out == ""
    assert path.exists() == made
    if made:
        assert path.read_bytes() == body(1)
    code, out = _run("create", str(path), "2")
    assert code == 0
    assert out == ("KEPT 2\n" if made else "CREATED 2\n")
    assert path.read_bytes() == body(1 if made else 2)
    assert _mode(path) == 0o600
    assert _temps(tmp_path) == []


def test_killed_at_random_times_never_leaves_a_part(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    rng = random.Random(4321)
    assert _run("write", str(path), "0") == (0, "DONE 0\n")
    acked = 0
    for _ in range(6):
        proc = _spawn("loop", str(path), str(acked + 1))
        assert proc.stdout is not None
        wanted = rng.randint(1, 15)
        deadline = time.monotonic() + 30
        got = 0
        while got < wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked = int(line.split()[1])
            got += 1
        time.sleep(rng.uniform(0, 0.02))
        os.kill(proc.pid, signal.SIGKILL)
        # Through the text stream, not communicate(): it reads the pipe directly and
        # would skip acknowledgements readline() has buffered already.
        rest = proc.stdout.read()
        proc.wait(timeout=10)
        for line in rest.splitlines():
            acked = int(line.split()[1])
        assert got == wanted, "the writer did not write"
        data = path.read_bytes()
        # The last acknowledged version, or the next one when the kill fell between
        # its rename and its acknowledgement; never anything older, never a part.
        assert data in (body(acked), body(acked + 1))
        acked = acked + 1 if data == body(acked + 1) else acked
    assert _run("write", str(path), str(acked + 1)) == (0, f"DONE {acked + 1}\n")
    assert path.read_bytes() == body(acked + 1)
    assert _temps(tmp_path) == []
