"""Disk usage over time: hourly samples of the mail file system, and their chart.

``<data_dir>/web/disk-usage.json`` holds ``{"version": 1, "samples": [[time, used, total],
...]}`` (Unix seconds, bytes), oldest first: at most one sample an hour, none older than
90 days (about 2,200 samples, under 100 KB). It is replaced atomically (temporary file,
fsync, rename); a file that cannot be read is logged and started afresh.

Samples are taken when the dashboard is shown and the newest is over an hour old, and by
the thread :func:`start` runs beside the web server. The chart is inline SVG made here:
no JavaScript, no outside assets, nothing the page's CSP would block.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from appliance import atomicfile, config
from webui import sizing

if TYPE_CHECKING:
    from webui.context import WebContext

log = logging.getLogger(__name__)

USAGE_FILE = Path("web") / "disk-usage.json"
INTERVAL = 3600.0  # at most one sample an hour
KEEP_SECONDS = 90 * 86400.0
COMPARE_SECONDS = 30 * 86400.0  # "now" against about this long ago in the summary
GAP_SECONDS = 3 * INTERVAL  # a longer silence (box off) breaks the line
MIN_WAIT = 60.0
CLOCK_SLACK = 300.0  # samples further in the future than this came from a wrong clock

_lock = threading.Lock()  # the dashboard and the sampler thread write the same file


@dataclass(frozen=True)
class Sample:
    time: float
    used: int
    total: int

    @property
    def fraction(self) -> float:
        return min(max(self.used / self.total, 0.0), 1.0) if self.total > 0 else 0.0


def usage_path(cfg: config.Config) -> Path:
    return cfg.data_dir / USAGE_FILE


def _sample(row: object) -> Sample | None:
    if not isinstance(row, list) or len(row) != 3:
        return None
    ts, used, total = row
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
    if not numbers or total <= 0 or not 0 <= used <= total:
        return None
    return Sample(float(ts), int(used), int(total))


def load(path: Path) -> list[Sample]:
    """The samples in ``path``, oldest first; [] when it is missing or unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("disk-usage=unreadable path=%s error=%s (starting afresh)", path, exc)
        return []
    rows = raw.get("samples") if isinstance(raw, dict) else None
    if not isinstance(rows, list):
        log.warning("disk-usage=unreadable path=%s error=no sample list (starting afresh)", path)
        return []
    samples = [s for s in map(_sample, rows) if s is not None]
    return sorted(samples, key=lambda s: s.time)


def save(path: Path, samples: list[Sample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [[round(s.time, 1), s.used, s.total] for s in samples]
    data = json.dumps({"version": 1, "samples": rows}, separators=(",", ":"))
    atomicfile.write_text(path, data)


def record(path: Path, now: float, used: int, total: int) -> list[Sample]:
    """Add a sample unless the newest is under an hour old; drop what is over 90 days
    old (or from the future). Returns the samples, oldest first. Never raises for a bad
    file or a failed write: the history is a nicety, the page must still work."""
    with _lock:
        samples = [s for s in load(path) if now - KEEP_SECONDS <= s.time <= now + CLOCK_SLACK]
        if samples and now - samples[-1].time < INTERVAL:
            return samples
        if total <= 0:
            return samples
        samples.append(Sample(now, min(max(used, 0), total), total))
        try:
            save(path, samples)
        except OSError as exc:
            log.warning("disk-usage=not-saved path=%s error=%s", path, exc)
        return samples


def sample(ctx: WebContext) -> list[Sample]:
    """Measure the file system holding the mail and record it (if an hour has passed)."""
    cfg = ctx.config()
    hw = ctx.measure(cfg.mail_dir)
    return record(usage_path(cfg), ctx.clock(), hw.disk_total - hw.disk_free, hw.disk_total)


def start(ctx: WebContext, stop: threading.Event) -> threading.Thread:
    """Sample hourly until ``stop`` is set (a daemon thread beside the web server)."""

    def loop() -> None:
        while not stop.is_set():
            wait = INTERVAL
            try:
                samples = sample(ctx)
                if samples:
                    due = samples[-1].time + INTERVAL - ctx.clock()
                    wait = min(INTERVAL, max(MIN_WAIT, due + 1))
            except Exception:  # a broken config or disk must not end the history for good
                log.exception("disk-usage=sample-failed")
            stop.wait(wait)

    thread = threading.Thread(target=loop, name="disk-usage", daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------ presentation


def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts)


def _ago(seconds: float) -> str:
    hours = round(seconds / 3600)
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    return f"{round(hours / 24)} days ago"


def summary(samples: list[Sample]) -> str:
    """One sentence for people who cannot see the chart."""
    if not samples:
        return "No disk usage recorded yet."
    last = samples[-1]
    now = f"Used {last.fraction:.0%} now ({sizing.human(last.used)} of {sizing.human(last.total)})"
    if len(samples) < 2:
        return now + "."
    target = last.time - COMPARE_SECONDS
    before = [s for s in samples[:-1] if s.time <= target]
    ref = before[-1] if before else samples[0]
    return f"{now}, {ref.fraction:.0%} {_ago(last.time - ref.time)}."


# Chart geometry (SVG user units; the SVG scales to the card's width).
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 14, 12, 34
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _y(fraction: float) -> float:
    return TOP + PLOT_H * (1 - fraction)


def _date_label(ts: float, span: float) -> str:
    when = _local(ts)
    return f"{when:%H:%M}" if span < 2 * 86400 else f"{when.day} {when:%b}"


def chart(samples: list[Sample]) -> Markup:
    """The used share of the disk over time as an inline SVG line chart ('' when there
    are fewer than two samples: one point is not a line)."""
    if len(samples) < 2:
        return Markup("")
    first, last = samples[0].time, samples[-1].time
    span = max(last - first, 1.0)

    def x(ts: float) -> float:
        return LEFT + PLOT_W * (ts - first) / span

    parts = [
        f'<svg class="usage-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="usage-chart-title" aria-describedby="usage-summary" '
        'xmlns="http://www.w3.org/2000/svg" font-size="12" '
        'font-family="system-ui, sans-serif">',
        f'<title id="usage-chart-title">Share of the mail disk in use, '
        f"{escape(_local(first).strftime('%Y-%m-%d'))} to "
        f"{escape(_local(last).strftime('%Y-%m-%d'))}</title>",
    ]
    for pct in (0, 25, 50, 75, 100):
        y = _y(pct / 100)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#dde3ea" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#5d6878">'
            f"{pct}%</text>"
        )
    for pct, colour in ((80, "#e3b341"), (90, "#c62828")):
        y = _y(pct / 100)
        parts.append(
            f'<line class="usage-limit" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
            f'y2="{y:.1f}" stroke="{colour}" stroke-width="1" stroke-dasharray="4 4"/>'
        )
    ticks = [first, last] if span < 4 * INTERVAL else [first, first + span / 2, last]
    for ts in ticks:
        anchor = "start" if ts == first else "end" if ts == last else "middle"
        parts.append(
            f'<text x="{x(ts):.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}" fill="#5d6878">'
            f"{escape(_date_label(ts, span))}</text>"
        )
    segments: list[list[Sample]] = [[samples[0]]]
    for prev, cur in itertools.pairwise(samples):
        if cur.time - prev.time > GAP_SECONDS:
            segments.append([])
        segments[-1].append(cur)
    for seg in segments:
        points = " ".join(f"{x(s.time):.1f},{_y(s.fraction):.1f}" for s in seg)
        if len(seg) == 1:
            cx, cy = points.split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="#1f6feb"/>')
        else:
            parts.append(
                f'<polyline class="usage-line" points="{points}" fill="none" '
                'stroke="#1f6feb" stroke-width="2" stroke-linejoin="round"/>'
            )
    end_y = _y(samples[-1].fraction)
    parts.append(f'<circle cx="{x(last):.1f}" cy="{end_y:.1f}" r="3.5" fill="#1f6feb"/>')
    parts.append("</svg>")
    # Only numbers formatted here and escape()d text went into the markup above.
    return Markup("".join(parts))  # noqa: S704
