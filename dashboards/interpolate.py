"""A dashboard's queries as Grafana sends them to InfluxDB: `$timeFilter`, `$__interval`, the
template variables and each panel's own range substituted. The tests run them against a real
InfluxDB, and benchmarks/dashboards.py times them; Grafana itself cannot run here.

What Grafana does (its InfluxDB data source and time-range code), and what this module does:
- `$timeFilter` becomes `time >= FROMms and time <= TOms`;
- `$__interval` is the range over the panel's data points (its width in pixels), rounded to a
  step of Grafana's table, never under the panel's min interval (`interval`);
- a panel's `timeFrom` replaces the dashboard's range: `6h` is the 6 hours before now, `now/d`
  is today from local midnight, `now/w` this week from Monday (the dashboard's time zone);
- a multi-valued or All variable in a regex becomes `(a|b)`, each value regex-escaped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dashboards.lint import panels_of, relative_seconds
from dashboards.panels import GRID_WIDTH, Json
from dashboards.variables import QUERIES

SCREEN_POINTS = 1800  # data points of a full-width panel (its width in pixels on a 1920 px screen)
# Grafana's interval rounding (rangeutil.roundInterval): below the bound [ms], the step
_ROUNDING = [(15, "10ms"), (35, "20ms"), (75, "50ms"), (150, "100ms"), (350, "200ms"), (750, "500ms"),
             (1500, "1s"), (3500, "2s"), (7500, "5s"), (12500, "10s"), (17500, "15s"), (25000, "20s"),
             (45000, "30s"), (90000, "1m"), (210000, "2m"), (450000, "5m"), (750000, "10m"),
             (1050000, "15m"), (1500000, "20m"), (2700000, "30m"), (5400000, "1h"), (9000000, "2h"),
             (16200000, "3h"), (24300000, "6h"), (64800000, "12h"), (129600000, "1d"),
             (864000000, "1w"), (float("inf"), "30d")]
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 604800000}
_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}/])")


@dataclass(frozen=True)
class GrafanaRange:
    """The dashboard's time range [s since the epoch]; to_s stands for "now"."""

    from_s: float
    to_s: float


def interval_ms(text: str) -> float:
    """Milliseconds of an interval (`10s`, `1h`, `500ms`)."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text.strip())
    if not match:
        raise ValueError(f"not an interval: {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def grafana_interval(from_s: float, to_s: float, points: int, min_interval: str | None = None) -> str:
    """`$__interval` for a range drawn on `points` data points."""
    raw_ms = (to_s - from_s) * 1000.0 / max(points, 1)
    step = next(step for bound, step in _ROUNDING if raw_ms < bound)
    if min_interval and interval_ms(min_interval) > interval_ms(step):
        return min_interval
    return step


def panel_range(panel: Json, grafana_range: GrafanaRange, timezone: str) -> tuple[float, float]:
    """The range a panel queries: its own `timeFrom` if it has one, else the dashboard's."""
    own = panel.get("timeFrom")
    if not own:
        return grafana_range.from_s, grafana_range.to_s
    now = grafana_range.to_s
    seconds = relative_seconds(own)
    if seconds is not None:
        return now - seconds, now
    local = dt.datetime.fromtimestamp(now, ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if own == "now/d":
        return midnight.timestamp(), now
    if own == "now/w":
        return (midnight - dt.timedelta(days=local.weekday())).timestamp(), now
    raise ValueError(f"panel range {own!r} not handled")


def regex_values(values: Sequence[str]) -> str:
    """A variable's values as Grafana writes them into a regex: escaped, `(a|b)` for several."""
    escaped = [_REGEX_SPECIAL.sub(r"\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand(query: str, values: Mapping[str, Sequence[str]], from_s: float | None = None,
           to_s: float | None = None, interval: str | None = None) -> str:
    """A query with the time filter, the interval and the variables substituted."""
    if from_s is not None and to_s is not None:
        query = query.replace("$timeFilter", f"time >= {int(from_s * 1000)}ms and time <= {int(to_s * 1000)}ms")
    if interval is not None:
        query = query.replace("$__interval", interval)
    for name in sorted(values, key=len, reverse=True):
        text = regex_values(values[name])
        query = query.replace("${" + name + "}", text).replace("$" + name, text)
    return query


def variable_queries() -> list[tuple[str, str]]:
    """(name, query) of the query variables, in order (each may use those before it)."""
    return [(name, query) for name, (_, query) in QUERIES.items()]


def expand_dashboard(dashboard: Json, grafana_range: GrafanaRange,
                     values: Mapping[str, Sequence[str]]) -> Iterator[tuple[str, str]]:
    """(panel title, query) of every target of every panel, as Grafana would send it."""
    timezone = dashboard.get("timezone", "UTC")
    for panel in panels_of(dashboard):
        from_s, to_s = panel_range(panel, grafana_range, timezone)
        points = int(SCREEN_POINTS * panel["gridPos"]["w"] / GRID_WIDTH)
        interval = grafana_interval(from_s, to_s, points, panel.get("interval"))
        for target in panel.get("targets", []):
            yield panel["title"], expand(target["query"], values, from_s, to_s, interval)


def expand_alert_queries(provisioning: Json, now_s: float) -> Iterator[tuple[str, str]]:
    """(rule title, query) of every InfluxDB query of provisioned alert rules, evaluated at now_s
    (each over its relativeTimeRange)."""
    for group in provisioning.get("groups", []):
        for rule in group["rules"]:
            for query in rule["data"]:
                if query.get("datasourceUid") == "__expr__":
                    continue
                span = query["relativeTimeRange"]
                model = query["model"]
                interval = f"{int(model.get('intervalMs', 60000))}ms"
                yield rule["title"], expand(model["query"], {}, now_s - span["from"], now_s - span["to"], interval)
