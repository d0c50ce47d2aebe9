from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.backup import schedule

UTC = timezone(timedelta(0))
CET = timezone(timedelta(hours=1))


def ts(text: str, tz: timezone = UTC) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("now", "at", "expected"),
    [
        ("2026-11-23 01:00", "03:30", "2026-11-23 03:30"),
        ("2026-11-23 03:30", "03:30", "2026-11-24 03:30"),  # strictly after now
        ("2026-11-23 23:59", "00:00", "2026-11-24 00:00"),
        ("2026-12-31 05:00", "03:30", "2027-01-01 03:30"),
    ],
)
def test_next_daily(now: str, at: str, expected: str) -> None:
    assert schedule.next_daily(ts(now), at, UTC) == ts(expected)


def test_next_daily_uses_the_local_time_zone() -> None:
    # 03:30 CET is 02:30 UTC
    assert schedule.next_daily(ts("2026-11-23 01:00"), "03:30", CET) == ts("2026-11-23 02:30")


@pytest.mark.parametrize("bad", ["3", "24:00", "12:60", "ab:cd", ""])
def test_bad_times_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        schedule.parse_hhmm(bad)


def test_catch_up_when_never_backed_up() -> None:
    now = ts("2026-11-23 12:00")
    nxt = schedule.next_run(now, "03:30", None, started=now, tz=UTC, catch_up_delay=300)
    assert nxt == now + 300


def test_no_catch_up_after_a_recent_success() -> None:
    now = ts("2026-11-23 12:00")
    nxt = schedule.next_run(now, "03:30", now - 3600, started=now, tz=UTC)
    assert nxt == ts("2026-11-24 03:30")


def test_failed_catch_up_is_not_retried_at_once() -> None:
    now = ts("2026-11-23 12:00")
    nxt = schedule.next_run(now, "03:30", None, started=now - 7200, tz=UTC, last_attempt=now - 10)
    assert nxt == now - 10 + schedule.RETRY_AFTER


def test_daily_slot_wins_when_earlier_than_the_catch_up() -> None:
    now = ts("2026-11-23 03:29")
    nxt = schedule.next_run(now, "03:30", None, started=now, tz=UTC, catch_up_delay=300)
    assert nxt == ts("2026-11-23 03:30")


@pytest.mark.parametrize(
    ("now", "last_success", "expected"),
    [
        ("2026-11-23 03:00", None, True),  # never backed up
        ("2026-11-23 03:00", "2026-11-22 03:31", False),  # yesterday's slot is done
        ("2026-11-23 03:30", "2026-11-22 03:31", True),  # today's slot has come
        ("2026-11-23 04:00", "2026-11-23 03:35", False),
        ("2026-11-25 10:00", "2026-11-22 03:35", True),  # the box was off for days
        ("2026-11-23 04:00", "2026-11-23 03:29", True),  # finished before the slot
    ],
)
def test_timer_ticks_run_only_when_a_backup_is_owed(
    now: str, last_success: str | None, expected: bool
) -> None:
    last = ts(last_success) if last_success else None
    assert schedule.due(ts(now), "03:30", last, UTC) is expected
