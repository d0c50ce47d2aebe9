"""Sieve "date" extension (RFC 5260): date-parts of a moment and of a header's date.

Pure: the interpreter (appliance.filters.sieve_eval) passes the current time in, so the
``currentdate`` test is testable with a fixed clock.
"""

from __future__ import annotations

import datetime as dt
import email.utils

_MJD_EPOCH = dt.date(1858, 11, 17)  # RFC 5260 4.2: "julian" counts days from here


def zone_of(text: str) -> dt.tzinfo:
    """'+hhmm' / '-hhmm' (checked by the parser) as a fixed offset."""
    sign = -1 if text[0] == "-" else 1
    return dt.timezone(sign * dt.timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


def _zone_text(moment: dt.datetime, colon: bool) -> str:
    offset = moment.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{mins:02d}"


def date_part(moment: dt.datetime, part: str) -> str:
    """The RFC 5260 4.2 date-part ``part`` of an aware datetime, as the test compares it."""
    part = part.lower()
    if part == "year":
        return f"{moment.year:04d}"
    if part == "month":
        return f"{moment.month:02d}"
    if part == "day":
        return f"{moment.day:02d}"
    if part == "date":
        return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    if part == "julian":
        return str((moment.date() - _MJD_EPOCH).days)
    if part == "hour":
        return f"{moment.hour:02d}"
    if part == "minute":
        return f"{moment.minute:02d}"
    if part == "second":
        return f"{moment.second:02d}"
    if part == "time":
        return f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if part == "iso8601":
        # RFC 5260 4.2: the RFC 3339 date-time form with a numeric offset.
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + _zone_text(moment, colon=True)
    if part == "std11":
        return email.utils.format_datetime(moment)  # RFC 5260 4.2: the RFC 2822 form
    if part == "zone":
        return _zone_text(moment, colon=False)
    if part == "weekday":
        return str((moment.weekday() + 1) % 7)  # RFC 5260 4.2: 0 is Sunday
    raise ValueError(f"unknown date-part {part!r}")


def header_date(value: str, name: str) -> dt.datetime | None:
    """The moment a header field names, or None when it holds no usable date.

    RFC 5260 4.3: for Received the date is what follows the last semicolon."""
    if name.lower() == "received":
        if ";" not in value:
            return None
        value = value.rsplit(";", 1)[1]
    try:
        moment = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # RFC 5322 3.3: -0000 is UTC, origin unknown
    return moment
