"""When the next scheduled backup is due (pure functions, injected clock and time zone).

Daily at ``backup.time`` (local time of the box). A box that was off at that time, or has
never been backed up, catches up ``CATCH_UP_DELAY`` seconds after the daemon starts
when the last successful backup is older than ``CATCH_UP_AGE``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

CATCH_UP_AGE = 36 * 3600.0
CATCH_UP_DELAY = 300.0
RETRY_AFTER = 3600.0  # a failed catch-up is tried again after this long, not at once


def parse_hhmm(text: str) -> tuple[int, int]:
    hh, sep, mm = text.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit()):
        raise ValueError(f"{text!r} is not HH:MM")
    h, m = int(hh), int(mm)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"{text!r} is not HH:MM")
    return h, m


def next_daily(now: float, at: str, tz: tzinfo | None = None) -> float:
    """The first instant strictly after ``now`` whose local wall-clock time is ``at``."""
    h, m = parse_hhmm(at)
    local = datetime.fromtimestamp(now, tz).astimezone(tz)
    candidate = local.replace(hour=h, minute=m, second=0, microsecond=0)
    if candidate.timestamp() <= now:
        candidate = (local + timedelta(days=1)).replace(hour=h, minute=m, second=0, microsecond=0)
    return candidate.timestamp()


def due(now: float, at: str, last_success: float | None, tz: tzinfo | None = None) -> bool:
    """For a timer that fires often (hourly, Persistent=true): is a run owed? Yes when no
    backup succeeded since the latest daily slot, so a box that was off, or a run that
    failed, is caught up at the next tick."""
    slot = next_daily(now - 48 * 3600, at, tz)  # surely at or before now, even across DST
    while (following := next_daily(slot, at, tz)) <= now:
        slot = following
    return last_success is None or last_success < slot


def next_run(
    now: float,
    at: str,
    last_success: float | None,
    started: float,
    tz: tzinfo | None = None,
    *,
    last_attempt: float | None = None,
    catch_up_age: float = CATCH_UP_AGE,
    catch_up_delay: float = CATCH_UP_DELAY,
) -> float:
    """The next run: the daily slot, or a catch-up shortly after ``started`` when the
    last success is too old (or missing); a failed attempt is retried after RETRY_AFTER."""
    daily = next_daily(now, at, tz)
    if last_success is None or now - last_success > catch_up_age:
        catch_up = max(now, started + catch_up_delay)
        if last_attempt is not None:
            catch_up = max(catch_up, last_attempt + RETRY_AFTER)
        return min(daily, catch_up)
    return daily
