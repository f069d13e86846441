"""Our own checks of a dashboard, beyond Grafana's JSON Schemas: what makes a panel right for a
workshop manager and cheap for InfluxDB. `lint_dashboard` returns one message per problem
("dashboard / panel: what is wrong"), none when the dashboard is right.

- every target has `$timeFilter` (a query without it reads the whole history);
- every bucket of a day or more has `tz('...')` (InfluxDB cuts days in UTC otherwise);
- every panel has a unit, a description and the data source `${ds}` (panel and targets);
- no deprecated panel type (`graph`, `singlestat`, `table-old`, the old plugin panels);
- panel ids unique; grid positions inside the 24 columns and not overlapping;
- the 1 Hz `meter` samples are read only by panels with a range of their own of at most 6 h;
- a table without a unit ("none") names its columns' units in renamed headers;
- links to the other dashboards keep the time range and the variables.
"""

from __future__ import annotations

import re
from typing import Any

from dashboards.panels import DATASOURCE_VARIABLE, GRID_WIDTH

DEPRECATED_TYPES = frozenset({"graph", "singlestat", "table-old", "grafana-piechart-panel",
                              "grafana-worldmap-panel", "grafana-singlestat-panel"})
DATASOURCE_UIDS = frozenset({"$" + DATASOURCE_VARIABLE, "${" + DATASOURCE_VARIABLE + "}"})
RAW_MEASUREMENTS = ("meter",)
RAW_RANGE_MAX_S = 6 * 3600.0
_DAY_BUCKET = re.compile(r"time\(\s*\d+\s*[dw]\b", re.IGNORECASE)
_TZ = re.compile(r"\btz\(\s*'[^']+'\s*\)", re.IGNORECASE)
_FROM = re.compile(r'\bFROM\s+"?([A-Za-z_][A-Za-z0-9_]*)"?', re.IGNORECASE)
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

Json = dict[str, Any]


def relative_seconds(text: str) -> float | None:
    """Seconds of a relative range (`6h`, `now-6h`), None for others (`now/d`, absolute)."""
    match = _RELATIVE.match(text.removeprefix("now-"))
    return float(match.group(1)) * _UNIT_S[match.group(2)] if match else None


def panels_of(dashboard: Json) -> list[Json]:
    """Every panel, those inside rows included (rows themselves left out)."""
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def lint_query(query: str) -> list[str]:
    """Problems of one InfluxQL query of a panel."""
    problems = []
    if "$timeFilter" not in query:
        problems.append("query has no $timeFilter")
    if _DAY_BUCKET.search(query) and not _TZ.search(query):
        problems.append("day bucket without tz('...'): days would be cut at UTC midnight")
    return problems


def _panel_problems(panel: Json) -> list[str]:
    problems = []
    kind = panel.get("type", "")
    if kind in DEPRECATED_TYPES:
        problems.append(f"deprecated panel type {kind!r}")
    if not str(panel.get("description", "")).strip():
        problems.append("no description")
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "")
    if not unit:
        problems.append("no unit")
    elif unit == "none" and kind == "table":
        renames = [t for t in panel.get("transformations", [])
                   if t.get("id") == "organize" and t.get("options", {}).get("renameByName")]
        if not renames:
            problems.append("table without a unit and without headers naming the units")
    elif unit == "none" and kind != "state-timeline":
        problems.append("unit 'none' (only state timelines and tables with unit headers may)")
    if panel.get("datasource", {}).get("uid") not in DATASOURCE_UIDS:
        problems.append(f"data source is not ${{{DATASOURCE_VARIABLE}}}")
    own_range = relative_seconds(panel["timeFrom"]) if panel.get("timeFrom") else None
    for target in panel.get("targets", []):
        ref = target.get("refId", "?")
        if target.get("datasource", {}).get("uid") not in DATASOURCE_UIDS:
            problems.append(f"target {ref}: data source is not ${{{DATASOURCE_VARIABLE}}}")
        query = target.get("query", "")
        problems += [f"target {ref}: {p}" for p in lint_query(query)]
        raw = [m for m in _FROM.findall(query) if m in RAW_MEASUREMENTS]
        if raw and (own_range is None or own_range > RAW_RANGE_MAX_S):
            problems.append(f"target {ref}: reads the 1 Hz {raw[0]!r} samples without a panel range of "
                            f"its own of at most 6 h (read power_rollup or the results)")
    return problems


def _overlap(a: Json, b: Json) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def lint_dashboard(dashboard: Json) -> list[str]:
    """Every problem of a dashboard, as "title / panel: problem"."""
    title = dashboard.get("title", "?")
    problems: list[str] = []
    seen: dict[int, str] = {}
    placed: list[tuple[str, Json]] = []
    top = dashboard.get("panels", [])
    for panel in top + [p for row in top if row.get("type") == "row" for p in row.get("panels", [])]:
        name = f"{title} / {panel.get('title', '?')}"
        panel_id = panel.get("id")
        if panel_id in seen:
            problems.append(f"{name}: id {panel_id} already used by {seen[panel_id]!r}")
        else:
            seen[panel_id] = panel.get("title", "?")
        grid = panel.get("gridPos")
        if grid is None:
            problems.append(f"{name}: no grid position")
        else:
            if grid["x"] + grid["w"] > GRID_WIDTH:
                problems.append(f"{name}: wider than the {GRID_WIDTH} columns")
            for other_name, other in placed:
                if _overlap(grid, other):
                    problems.append(f"{name}: overlaps {other_name!r}")
            placed.append((panel.get("title", "?"), grid))
        if panel.get("type") != "row":
            problems += [f"{name}: {p}" for p in _panel_problems(panel)]
    for link in dashboard.get("links", []):
        if link.get("type") == "dashboards" and not (link.get("includeVars") and link.get("keepTime")):
            problems.append(f"{title}: link {link.get('title', '?')!r} does not keep the variables and time")
    return problems
