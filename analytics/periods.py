"""Calendar periods (days, weeks, months) in the site's time zone, as UTC instants.

Boundaries are local midnights turned into instants with zoneinfo, so a day is 23 h or 25 h
long on a daylight-saving change and every instant belongs to exactly one day (docs/design.md,
"Time is UTC inside, the site's time zone at the edges"). Weeks start on Monday (ISO 8601);
months on the 1st.

References
----------
.. [1] ISO 8601-1:2019, Date and time — Representations for information interchange (weeks).
.. [2] PEP 615 (zoneinfo) and PEP 495 (local times around a change).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np

from analytics.arrays import clamp
from analytics.intervals import union

PERIODS = ("day", "week", "month")


def _local_midnight_s(day: dt.date, tz: dt.tzinfo) -> float:
    return dt.datetime.combine(day, dt.time(0), tz).timestamp()


def _period_start(day: dt.date, period: str) -> dt.date:
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"period must be one of {PERIODS}, got {period!r}")


def _next_start(day: dt.date, period: str) -> dt.date:
    if period == "day":
        return day + dt.timedelta(days=1)
    if period == "week":
        return day + dt.timedelta(days=7)
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def period_edges(tz: dt.tzinfo | str, start_s: float, end_s: float, period: str = "day") -> np.ndarray:
    """Boundaries [s] of the site-local periods overlapping [start_s, end_s).

    The first boundary is the start of the period holding start_s, the last the end of the
    period holding the last instant before end_s, so ``len(edges) - 1`` periods cover the
    window (at least one when end_s > start_s, none when end_s <= start_s).

    Parameters
    ----------
    tz : tzinfo or IANA name
        The site's time zone (``Site.tz``).
    start_s, end_s : float [s]
        The window (Unix seconds).
    period : "day", "week" or "month"
    """
    if isinstance(tz, str):
        tz = zoneinfo.ZoneInfo(tz)
    if not end_s > start_s:
        return np.zeros(0)
    day = _period_start(dt.datetime.fromtimestamp(start_s, tz).date(), period)
    edges = [_local_midnight_s(day, tz)]
    while edges[-1] < end_s:
        day = _next_start(day, period)
        edges.append(_local_midnight_s(day, tz))
    return np.array(edges)


def clipped_periods(tz: dt.tzinfo | str, start_s: float, end_s: float,
                    period: str = "day") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(period_start_s, piece_start_s, piece_end_s): each period's local start and its part
    inside [start_s, end_s)."""
    edges = period_edges(tz, start_s, end_s, period)
    if len(edges) < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return edges[:-1], clamp(edges[:-1], start_s, end_s), clamp(edges[1:], start_s, end_s)


def local_date(tz: dt.tzinfo | str, time_s: float) -> dt.date:
    """The site-local calendar date of an instant."""
    if isinstance(tz, str):
        tz = zoneinfo.ZoneInfo(tz)
    return dt.datetime.fromtimestamp(time_s, tz).date()


def local_time_ranges(tz: dt.tzinfo | str, start_s: float, end_s: float,
                      ranges: list[tuple[dt.time, dt.time | None]]) -> tuple[np.ndarray, np.ndarray]:
    """Instants of daily wall-clock ranges (e.g. off-peak 22:00-24:00) overlapping a window.

    ``ranges``: (from, to) local times; ``to`` None means the end of the day (24:00); a range
    whose end is not after its start runs past midnight. Returns a disjoint sorted set (starts,
    ends) clipped to [start_s, end_s), correct across daylight-saving changes.
    """
    if isinstance(tz, str):
        tz = zoneinfo.ZoneInfo(tz)
    if not end_s > start_s or not ranges:
        return np.zeros(0), np.zeros(0)
    day = dt.datetime.fromtimestamp(start_s, tz).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end_s, tz).date()
    starts, ends = [], []
    while day <= last:
        for opens, closes in ranges:
            a = dt.datetime.combine(day, opens, tz).timestamp()
            if closes is None or closes <= opens:
                end_day = day + dt.timedelta(days=1)
                b = dt.datetime.combine(end_day, closes or dt.time(0), tz).timestamp()
            else:
                b = dt.datetime.combine(day, closes, tz).timestamp()
            starts.append(a)
            ends.append(b)
        day += dt.timedelta(days=1)
    a, b = union(clamp(starts, start_s, end_s), clamp(ends, start_s, end_s))
    return a, b
