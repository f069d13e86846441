"""Opening hours as UTC windows, computed in the site's time zone.

See docs/design.md, "Time is UTC inside, the site's time zone at the edges".

Local wall-clock ranges are turned into instants with zoneinfo, so days keep their opening
hours across daylight-saving changes (a 08:30-12:30 morning is 4 h on both sides of a change).
"""

from __future__ import annotations

import datetime as dt

from devices.site import Site


def opening_windows(site: Site, start_s: float, end_s: float) -> list[tuple[float, float]]:
    """Opening windows [(open_s, close_s), ...] (Unix seconds) overlapping [start_s, end_s)."""
    tz = site.tz
    closed = set(site.opening_hours.closed_dates)
    day = dt.datetime.fromtimestamp(start_s, tz).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end_s, tz).date()
    windows = []
    while day <= last:
        if day not in closed:
            for opens, closes in site.opening_hours.ranges(day.weekday()):
                a = dt.datetime.combine(day, opens, tz).timestamp()
                if closes is None:
                    b = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz).timestamp()
                else:
                    b = dt.datetime.combine(day, closes, tz).timestamp()
                if b > start_s and a < end_s and b > a:
                    windows.append((max(a, start_s), min(b, end_s)))
        day += dt.timedelta(days=1)
    windows.sort()
    merged: list[tuple[float, float]] = []
    for a, b in windows:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged
