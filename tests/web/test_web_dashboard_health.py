"""Dashboard rows for disk health (SMART) and the last backup, the disk usage history and
its chart, and the mail service's uptime phrase."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance import config
from tests.harness import free_port, write_config
from tests.web.web_helpers import SPARE, SYSTEM, Env, backup_run
from webui import diskusage, serve, smart
from webui.context import WebContext
from webui.disks import Disk, Partition
from webui.helper import HelperError
from webui.sizing import GiB, Hardware

HOUR, DAY = 3600.0, 86400.0
ROW_RE = re.compile(
    r'<li class="check check-(\w+)">.*?check-title">([^<]+)</span>\s*'
    r'<span class="check-text">([^<]+)</span>\s*'
    r'(?:<a href="([^"]+)" class="fix">([^<]+)</a>)?',
    re.S,
)


@dataclasses.dataclass(frozen=True)
class Row:
    level: str
    text: str
    link: str
    link_text: str


def page(admin: FlaskClient) -> str:
    ctx_of(admin).idle_timeout = 365 * DAY  # the fake clock jumps hours between views
    r = admin.get("/")
    assert r.status_code == 200
    return r.get_data(as_text=True)


def rows(admin: FlaskClient) -> dict[str, Row]:
    return {
        title: Row(level, text.replace("&#39;", "'"), link, link_text)
        for level, title, text, link, link_text in ROW_RE.findall(page(admin))
    }


def ctx_of(admin: FlaskClient) -> WebContext:
    ctx = admin.application.extensions["pillarbox"]
    assert isinstance(ctx, WebContext)
    return ctx


def mail_disk(env: Env, **changes: Any) -> Disk:
    """A disk whose partition is mounted where the test box keeps its mail."""
    mount = str(env.cfg_path.parent)
    assert env.cfg.mail_dir.resolve().is_relative_to(Path(mount).resolve())
    disk = dataclasses.replace(
        SPARE,
        name="sdc",
        path="/dev/sdc",
        model="Mail HDD",
        bus="ata",
        partitions=(Partition("sdc1", "ext4", "u-2", "pillarbox", mount),),
    )
    return dataclasses.replace(disk, **changes)


@pytest.fixture
def on_disk(env: Env) -> Disk:
    disk = mail_disk(env)
    env.disks = [SYSTEM, SPARE, disk]
    return disk


# ------------------------------------------------------------------ disk health (SMART)


def test_smart_passed_is_ok_and_links_to_storage(
    admin: FlaskClient, env: Env, on_disk: Disk
) -> None:
    env.smart[on_disk.path] = {"passed": True, "temperature": 36, "power_on_hours": 1200}
    row = rows(admin)["Disk health"]
    assert row.level == "ok"
    assert "Mail HDD (/dev/sdc) is healthy" in row.text and "36 °C" in row.text
    assert (row.link, row.link_text) == ("/storage", "Details")
    assert env.smart_reads == ["/dev/sdc"]  # the disk holding the mail, not the others


def test_smart_failed_is_an_error(admin: FlaskClient, env: Env, on_disk: Disk) -> None:
    env.smart[on_disk.path] = {"passed": False, "temperature": 40}
    row = rows(admin)["Disk health"]
    assert row.level == "error" and "failing" in row.text
    assert (row.link, row.link_text) == ("/storage", "Fix this")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"passed": True, "reallocated_sectors": 8}, "8 reallocated sectors"),
        ({"passed": True, "pending_sectors": 1}, "1 sector waiting to be remapped"),
        (  # the helper's summary of a disk with some of each (its parsing of smartctl's
            # attribute table is tested in test_web_root_helper)
            {"passed": True, "temperature": 30, "reallocated_sectors": 0, "pending_sectors": 3},
            "3 sectors waiting to be remapped",
        ),
        ({"passed": True, "temperature": 61}, "running hot at 61 °C"),
    ],
)
def test_smart_wear_and_heat_are_warnings(
    admin: FlaskClient, env: Env, on_disk: Disk, data: dict[str, Any], words: str
) -> None:
    env.smart[on_disk.path] = data
    row = rows(admin)["Disk health"]
    assert row.level == "warning" and words in row.text
    assert row.link == "/storage"


def test_nvme_may_run_warmer(admin: FlaskClient, env: Env) -> None:
    disk = mail_disk(env, name="nvme0n1", path="/dev/nvme0n1")
    env.disks = [disk]
    env.smart[disk.path] = {"passed": True, "temperature": 61}
    assert rows(admin)["Disk health"].level == "ok"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"bus": "usb"}, "USB bridge"),
        ({"name": "vda", "path": "/dev/vda", "bus": "virtio"}, "virtual disk"),
        ({"model": "QEMU HARDDISK"}, "virtual disk"),
        ({"name": "mmcblk0", "path": "/dev/mmcblk0", "bus": ""}, "SD card"),
        ({}, "virtual disk or USB bridge"),
    ],
)
def test_smart_unavailable_is_a_warning_that_says_why(
    admin: FlaskClient, env: Env, changes: dict[str, Any], why: str
) -> None:
    disk = mail_disk(env, **changes)
    env.disks = [disk]
    env.smart[disk.path] = {}  # no verdict: what the helper reports behind such a disk
    row = rows(admin)["Disk health"]
    assert row.level == "warning"
    assert row.text.startswith(f"SMART not available for this disk ({why}): ")
    assert disk.path in row.text
    assert ("this USB bridge hides SMART" in row.text) is (changes.get("bus") == "usb")


def test_smartctl_failing_on_the_disk_is_a_warning(
    admin: FlaskClient, env: Env, on_disk: Disk
) -> None:
    env.smart[on_disk.path] = HelperError("smartctl could not read /dev/sdc (exit 2)")
    row = rows(admin)["Disk health"]
    assert row.level == "warning"
    assert row.text == (
        "SMART not available for this disk (virtual disk or USB bridge): "
        "Mail HDD (/dev/sdc); smartctl could not read /dev/sdc (exit 2)."
    )


def test_helper_failing_is_a_warning(admin: FlaskClient, env: Env, on_disk: Disk) -> None:
    env.smart[on_disk.path] = HelperError("the system helper could not be run (OSError)")
    row = rows(admin)["Disk health"]
    assert row.level == "warning" and row.link == "/storage"
    assert row.text == (  # issue 19: in words, no exception class
        "Disk health isn't available on this machine: it has no system helper to read the "
        "health report of Mail HDD (/dev/sdc)."
    )


def test_unexpected_reader_failure_is_a_warning(
    admin: FlaskClient, env: Env, on_disk: Disk
) -> None:
    env.smart[on_disk.path] = RuntimeError("boom")
    row = rows(admin)["Disk health"]
    assert row.level == "warning" and "boom" not in row.text  # issue 19: no raw errors
    assert "could not be read; the system log has the details" in row.text


def test_mail_on_no_known_disk_is_a_warning(admin: FlaskClient, env: Env) -> None:
    env.disks = [SPARE]  # not mounted anywhere
    row = rows(admin)["Disk health"]
    assert row.level == "warning" and "Could not tell which disk" in row.text
    assert env.smart_reads == []


def test_disk_listing_failure_is_a_warning(admin: FlaskClient) -> None:
    def broken() -> list[Disk]:
        raise OSError("udev is not running")

    ctx_of(admin).disks = broken
    row = rows(admin)["Disk health"]
    assert row.level == "warning" and "udev is not running" in row.text


def test_smart_is_cached_for_half_an_hour(admin: FlaskClient, env: Env, on_disk: Disk) -> None:
    env.smart[on_disk.path] = {"passed": True}
    assert rows(admin)["Disk health"].level == "ok"
    env.smart[on_disk.path] = {"passed": False}
    env.clock[0] += smart.SMART_CACHE_SECONDS - 1
    assert rows(admin)["Disk health"].level == "ok"
    assert len(env.smart_reads) == 1
    env.clock[0] += 2
    assert rows(admin)["Disk health"].level == "error"
    assert len(env.smart_reads) == 2


def test_a_slow_smart_read_does_not_hold_the_page(
    admin: FlaskClient, env: Env, on_disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smart, "SMART_WAIT_SECONDS", 0.05)
    release = threading.Event()

    def slow(device: str) -> dict[str, Any]:
        release.wait(10)
        return {"passed": True}

    ctx_of(admin).smart_reader = slow
    started = time.monotonic()
    row = rows(admin)["Disk health"]
    assert time.monotonic() - started < 2
    assert row.level == "warning" and "Reading the health report" in row.text
    release.set()
    deadline = time.monotonic() + 5
    while rows(admin)["Disk health"].level != "ok":
        assert time.monotonic() < deadline, "the background read never reported"
        time.sleep(0.02)


def test_disk_holding_ignores_other_file_systems() -> None:
    root = dataclasses.replace(SYSTEM, partitions=(Partition("sda1", "ext4", "", "", "/"),))
    proc = dataclasses.replace(SPARE, mountpoint="/proc")
    # /proc is its own file system: "/" is above it but does not hold it.
    assert smart.disk_holding(Path("/proc/cpuinfo"), [root]) is None
    assert smart.disk_holding(Path("/proc/cpuinfo"), [root, proc]) == proc
    assert smart.disk_holding(Path("/proc/no/such/dir"), [root, proc]) == proc


# ------------------------------------------------------------------ last backup


def set_backup(env: Env, **status: Any) -> None:
    assert env.ctl.backup is not None
    env.ctl.backup.update({"target": "local", "state": "idle", **status})


def test_backups_off_is_a_warning(admin: FlaskClient) -> None:
    row = rows(admin)["Last backup"]
    assert row.level == "warning" and row.text.startswith("Backups are off")
    assert (row.link, row.link_text) == ("/backup/", "Fix this")


def test_recent_backup_is_ok(admin: FlaskClient, env: Env) -> None:
    run = backup_run(True, env.clock[0] - 3 * HOUR)
    set_backup(env, last=run, last_success=run)
    row = rows(admin)["Last backup"]
    assert row == Row("ok", "Saved 3 hours ago.", "/backup/", "Details")
    assert "backup_status" in env.ctl.calls


def test_backup_time_as_iso_string(admin: FlaskClient, env: Env) -> None:
    when = dt.datetime.fromtimestamp(env.clock[0] - 2 * HOUR).astimezone()
    run = {**backup_run(True, 0), "finished": when.isoformat()}
    set_backup(env, last=run, last_success=run)
    assert rows(admin)["Last backup"].text == "Saved 2 hours ago."


@pytest.mark.parametrize(
    ("age", "level"),
    [(25 * HOUR, "ok"), (27 * HOUR, "warning"), (2.9 * DAY, "warning"), (3.1 * DAY, "error")],
)
def test_backup_age_levels(admin: FlaskClient, env: Env, age: float, level: str) -> None:
    run = backup_run(True, env.clock[0] - age)
    set_backup(env, last=run, last_success=run)
    row = rows(admin)["Last backup"]
    assert row.level == level
    if level != "ok":
        assert "The last successful backup was" in row.text


def test_failed_backup_is_an_error_with_its_message(admin: FlaskClient, env: Env) -> None:
    ok = backup_run(True, env.clock[0] - 26.5 * HOUR)
    failed = backup_run(False, env.clock[0] - 2 * HOUR, "restic: repository is locked")
    set_backup(env, last=failed, last_success=ok)
    row = rows(admin)["Last backup"]
    assert row.level == "error"
    assert row.text == "The last backup failed: restic: repository is locked."


def test_manual_backups_only_warn_when_old(admin: FlaskClient, env: Env) -> None:
    run = backup_run(True, env.clock[0] - 5 * DAY)
    set_backup(env, schedule="off", last=run, last_success=run)
    row = rows(admin)["Last backup"]
    assert row.level == "warning" and "Automatic backups are off" in row.text


def test_no_backup_yet_is_a_warning(admin: FlaskClient, env: Env) -> None:
    set_backup(env, state="never")
    row = rows(admin)["Last backup"]
    assert row.text == "No backup has been made yet. The first runs at 03:30."
    assert row.level == "warning"
    set_backup(env, state="running")
    row = rows(admin)["Last backup"]
    assert row == Row(
        "warning", "A backup is running now. No backup has been made yet.", "/backup/", "Fix this"
    )


def test_backup_saved_but_not_pruned_is_a_warning(admin: FlaskClient, env: Env) -> None:
    run = backup_run(True, env.clock[0] - HOUR, "old snapshots were not pruned: timeout")
    set_backup(env, last=run, last_success=run)
    row = rows(admin)["Last backup"]
    assert row.level == "warning" and "not pruned" in row.text


def test_running_backup_is_mentioned(admin: FlaskClient, env: Env) -> None:
    run = backup_run(True, env.clock[0] - 20 * HOUR)
    set_backup(env, state="running", last=run, last_success=run)
    row = rows(admin)["Last backup"]
    assert row.level == "ok" and row.text.startswith("A backup is running now.")


def test_backup_state_unknown_without_the_daemon(admin: FlaskClient, env: Env) -> None:
    env.ctl.running = False
    row = rows(admin)["Last backup"]
    assert row.level == "warning" and row.link == "/backup/"


def test_backup_status_command_failing_is_a_warning(admin: FlaskClient, env: Env) -> None:
    env.ctl.backup = None  # a daemon without the backup service
    row = rows(admin)["Last backup"]
    assert row.level == "warning" and "could not be read" in row.text
    assert rows(admin)["Mail service"].level == "ok"


# ------------------------------------------------------------------ disk usage history


def usage_file(env: Env) -> Path:
    return env.cfg.data_dir / "web" / "disk-usage.json"


def stored(env: Env) -> list[list[float]]:
    rows_: list[list[float]] = json.loads(usage_file(env).read_text())["samples"]
    return rows_


def used(env: Env, gib: int) -> None:
    env.hw = Hardware(
        cpus=2, ram=2 * GiB, disk_path="/", disk_total=1000 * GiB, disk_free=(1000 - gib) * GiB
    )


def test_views_record_at_most_one_sample_an_hour(admin: FlaskClient, env: Env) -> None:
    t0 = env.clock[0]
    used(env, 400)
    page(admin)
    assert stored(env) == [[t0, 400 * GiB, 1000 * GiB]]
    env.clock[0] += HOUR - 1
    used(env, 410)
    page(admin)
    assert len(stored(env)) == 1
    env.clock[0] += 1
    page(admin)
    assert stored(env)[-1] == [t0 + HOUR, 410 * GiB, 1000 * GiB]
    assert len(stored(env)) == 2
    leftovers = [p.name for p in usage_file(env).parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_samples_older_than_90_days_are_dropped(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    now = env.clock[0]
    old = [[now - d * DAY, 100, 1000] for d in (120, 91, 89, 10)]
    path.write_text(json.dumps({"version": 1, "samples": old}))
    samples = diskusage.record(path, now, 500, 1000)
    assert [round((now - s.time) / DAY) for s in samples] == [89, 10, 0]
    assert [r[0] for r in json.loads(path.read_text())["samples"]] == [s.time for s in samples]


def test_samples_from_a_wrong_clock_do_not_block_recording(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    diskusage.record(path, 2_000_000_000.0, 1, 10)  # clock far ahead, then set right
    samples = diskusage.record(path, 1_800_000_000.0, 2, 10)
    assert [(s.time, s.used) for s in samples] == [(1_800_000_000.0, 2)]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b'{"samples": 5}',
        b"[1, 2, 3]",
        b'{"samples": [[1, "x", 3], [1, 5, 2], null, [true, 1, 2]]}',
    ],
)
def test_corrupt_usage_file_starts_afresh(admin: FlaskClient, env: Env, content: bytes) -> None:
    usage_file(env).parent.mkdir(parents=True, exist_ok=True)
    usage_file(env).write_bytes(content)
    body = page(admin)
    assert stored(env) == [[env.clock[0], 400 * GiB, 1000 * GiB]]
    assert "<svg" not in body


def test_bad_rows_are_skipped_good_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    good = [1_799_990_000.0, 5, 10]
    path.write_text(json.dumps({"samples": [[1, 20, 10], good, "x", [2, -1, 10]]}))
    assert [(s.time, s.used, s.total) for s in diskusage.load(path)] == [(good[0], 5, 10)]


def test_sampler_thread_records_and_stops(admin: FlaskClient, env: Env) -> None:
    stop = threading.Event()
    thread = diskusage.start(ctx_of(admin), stop)
    deadline = time.monotonic() + 5
    while not usage_file(env).exists():
        assert time.monotonic() < deadline, "no sample from the thread"
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert stored(env) == [[env.clock[0], 400 * GiB, 1000 * GiB]]


def test_web_server_samples_disk_usage_in_the_background(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, listeners={"web": [f"127.0.0.1:{free_port()}"], "webs": []})
    path = diskusage.usage_path(config.load(cfg_path))
    server = serve.create_server(cfg_path)
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, "create_server started no sampler"
            time.sleep(0.02)
        [[_ts, used_bytes, total]] = json.loads(path.read_text())["samples"]
        assert 0 < used_bytes <= total
    finally:
        server.close()
    deadline = time.monotonic() + 5
    while any(t.name == "disk-usage" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the sampler outlived the server"
        time.sleep(0.02)


# ------------------------------------------------------------------ the chart


def history(env: Env, points: list[tuple[float, int]]) -> None:
    """Samples (days before the fake clock, GiB used of 1000) in the usage file."""
    now = env.clock[0]
    rows_ = [[now - days * DAY, gib * GiB, 1000 * GiB] for days, gib in points]
    usage_file(env).parent.mkdir(parents=True, exist_ok=True)
    usage_file(env).write_text(json.dumps({"version": 1, "samples": rows_}))


def polylines(body: str) -> list[list[tuple[float, float]]]:
    lines = []
    for points in re.findall(r'<polyline class="usage-line" points="([^"]+)"', body):
        pairs = [p.split(",") for p in points.split()]
        lines.append([(float(x), float(y)) for x, y in pairs])
    return lines


def test_chart_with_history(admin: FlaskClient, env: Env) -> None:
    # Every two hours for 60 days, growing from 500 to 700 GiB; 600 GiB 30 days ago.
    steps = range(720, 0, -1)
    history(env, [(n / 12, round(700 - 200 * n / 720)) for n in steps])
    used(env, 700)
    body = page(admin)
    assert '<svg class="usage-chart"' in body and 'role="img"' in body
    assert 'aria-describedby="usage-summary"' in body
    assert ">0%</text>" in body and ">100%</text>" in body  # the percent axis
    summary = re.search(r'<figcaption id="usage-summary">([^<]+)<', body)
    assert summary is not None
    assert summary.group(1) == "Used 70% now (700.0 GB of 1000.0 GB), 60% 30 days ago."
    [line] = polylines(body)
    assert len(line) == 721  # the stored samples and the one this view took
    xs, ys = [p[0] for p in line], [p[1] for p in line]
    assert xs == sorted(xs) and xs[0] < xs[-1]
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]  # more used: higher up
    first = dt.datetime.fromtimestamp(env.clock[0] - 60 * DAY)
    assert f">{first.day} {first:%b}</text>" in body  # the date axis starts at the first


def test_chart_breaks_where_the_box_was_off(admin: FlaskClient, env: Env) -> None:
    history(env, [(10, 400), (9.95, 400), (2, 410), (1.95, 410)])
    body = page(admin)
    assert [len(line) for line in polylines(body)] == [2, 2]  # and a dot for this view


def test_summary_uses_the_oldest_sample_when_history_is_short(admin: FlaskClient, env: Env) -> None:
    history(env, [(2, 300), (1, 350)])
    body = page(admin)
    assert "Used 40% now (400.0 GB of 1000.0 GB), 30% 2 days ago." in body


def test_no_chart_with_a_single_sample(admin: FlaskClient, env: Env) -> None:
    body = page(admin)
    assert "<svg" not in body and "usage-line" not in body
    assert "Used 40% now" in body and "The chart appears once" in body
    env.clock[0] += HOUR
    body = page(admin)
    assert "<svg" in body and len(polylines(body)) == 1


# ------------------------------------------------------------------ uptime


@pytest.mark.parametrize(
    ("uptime", "text"),
    [
        (0.0, "Running (just started)."),
        (59.9, "Running (just started)."),
        (60.0, "Running for 1 minute."),
        (180.0, "Running for 3 minutes."),
        (3599.0, "Running for 59 minutes."),
        (3600.0, "Running for 1 hour."),
        (5 * HOUR + 59 * 60, "Running for 5 hours."),
        (47 * HOUR, "Running for 47 hours."),
        (2 * DAY, "Running for 2 days."),
        (10 * DAY + 3 * HOUR, "Running for 10 days."),
    ],
)
def test_uptime_phrase(admin: FlaskClient, env: Env, uptime: float, text: str) -> None:
    env.ctl.uptime = uptime
    assert rows(admin)["Mail service"] == Row("ok", text, "", "")
