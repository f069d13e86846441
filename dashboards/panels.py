"""Grafana's classic dashboard JSON (schemaVersion 41), built from plain dicts by small typed
helpers: the one place that knows Grafana's model, so the dashboards only say what they show.

Why our own helpers and not a library (README, "Dashboards"): grafanalib 0.7.1 writes
schemaVersion 12 with legacy keys (`graph`, `singlestat`, `rows`) that the current schema
refuses; grafana-foundation-sdk on PyPI is versioned by epoch (its highest version is the
Grafana 10.1 model, schemaVersion 36) and has no InfluxDB query type. Plain dicts checked
against Grafana's own JSON Schemas in the tests (tests/data/grafana-jsonschema) give exactly
the output wanted with nothing to install; the dashboards never see a dict layout, only these
functions, so a library can come back behind them.

Every panel gets a unit, a description and the data source variable `${ds}` (dashboards.lint
checks it). Tables whose columns have different units use unit "none" and name each column's
unit in its header (an `organize` transformation): the published schema types an override's
value as an object, so a per-column unit override (a string) would not validate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 41
DATASOURCE_TYPE = "influxdb"
DATASOURCE_VARIABLE = "ds"
DATASOURCE = {"type": DATASOURCE_TYPE, "uid": "${" + DATASOURCE_VARIABLE + "}"}
DASHBOARD_TAG = "wattelier"
GRID_WIDTH = 24

Json = dict[str, Any]

# state colours of the state timelines (machine states of devices.vocabulary.MACHINE_STATES)
STATE_COLOURS = {"off": "#808080", "standby": "#8AB8FF", "idle": "#FADE2A", "processing": "#73BF69",
                 "setup": "#FF9830", "fault": "#F2495C"}


@dataclass
class Layout:
    """Places panels left to right, then on the next row: grid positions never overlap."""

    x: int = 0
    y: int = 0
    row_height: int = 0

    def place(self, width: int, height: int) -> Json:
        """Grid position of the next panel of width (of 24 columns) and height (rows)."""
        if self.x + width > GRID_WIDTH:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        position = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return position


@dataclass
class Target:
    """One InfluxQL query of a panel; table: answer as one table (tags as columns)."""

    query: str
    table: bool = False
    alias: str = ""

    def to_json(self, ref_id: str) -> Json:
        out: Json = {"refId": ref_id, "datasource": dict(DATASOURCE), "query": self.query, "rawQuery": True,
                     "resultFormat": "table" if self.table else "time_series"}
        if self.alias:
            out["alias"] = self.alias
        return out


@dataclass
class Panel:
    """What every panel kind shares. unit: a Grafana unit id (`kwatth`, `watt`, `masskg`,
    `currencyEUR`, `s`, `percentunit`, ...); time_from: a relative range of its own (`6h`,
    `now/d`) that replaces the dashboard's, for panels that read raw samples or show "today"."""

    title: str
    description: str
    unit: str
    targets: list[Target]
    time_from: str | None = None
    min_interval: str | None = None
    decimals: int | None = None
    transformations: list[Json] = field(default_factory=list)
    mappings: list[Json] = field(default_factory=list)
    color: Json | None = None


def _legend(placement: str = "bottom", calcs: list[str] | None = None, table: bool = False) -> Json:
    return {"displayMode": "table" if table else "list", "placement": placement, "showLegend": True,
            "calcs": calcs or []}


def _tooltip() -> Json:
    return {"mode": "multi", "sort": "desc"}


def _reduce(calcs: str = "lastNotNull", fields: str = "") -> Json:
    return {"values": False, "calcs": [calcs], "fields": fields}


def _base(kind: str, panel: Panel, panel_id: int, grid: Json, options: Json, custom: Json | None) -> Json:
    defaults: Json = {"unit": panel.unit, "mappings": panel.mappings,
                      "thresholds": {"mode": "absolute", "steps": [{"value": None, "color": "green"}]},
                      "color": panel.color or {"mode": "palette-classic"}}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if custom is not None:
        defaults["custom"] = custom
    out: Json = {
        "type": kind, "id": panel_id, "title": panel.title, "description": panel.description,
        "datasource": dict(DATASOURCE), "gridPos": grid,
        "targets": [t.to_json(chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options, "transformations": panel.transformations,
    }
    if panel.time_from:
        out["timeFrom"] = panel.time_from
    if panel.min_interval:
        out["interval"] = panel.min_interval
    return out


def timeseries(panel: Panel, panel_id: int, grid: Json, *, bars: bool = False, stacked: bool = False,
               legend_calcs: list[str] | None = None) -> Json:
    """Lines over time (bars: one bar per bucket, e.g. per day)."""
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 80 if bars else 10,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stacked else "none", "group": "A"}}
    options = {"legend": _legend("bottom", legend_calcs, table=bool(legend_calcs)), "tooltip": _tooltip()}
    return _base("timeseries", panel, panel_id, grid, options, custom)


def state_timeline(panel: Panel, panel_id: int, grid: Json) -> Json:
    """Text states over time, one row per series (state colours from STATE_COLOURS)."""
    if not panel.mappings:
        panel.mappings = [{"type": "value", "options": {
            state: {"color": colour, "index": i} for i, (state, colour) in enumerate(STATE_COLOURS.items())}}]
    options = {"showValue": "never", "rowHeight": 0.8, "mergeValues": True, "alignValue": "left",
               "legend": _legend(), "tooltip": _tooltip()}
    return _base("state-timeline", panel, panel_id, grid, options, {"lineWidth": 0, "fillOpacity": 80})


def stat(panel: Panel, panel_id: int, grid: Json, *, calcs: str = "lastNotNull", fields: str = "") -> Json:
    """One big number per series (reduced by calcs)."""
    options = {"graphMode": "none", "colorMode": "none", "justifyMode": "auto", "textMode": "auto",
               "wideLayout": True, "showPercentChange": False, "reduceOptions": _reduce(calcs, fields),
               "percentChangeColorMode": "standard", "orientation": "auto"}
    return _base("stat", panel, panel_id, grid, options, None)


def bar_gauge(panel: Panel, panel_id: int, grid: Json, *, calcs: str = "lastNotNull") -> Json:
    """One horizontal bar per series (per machine, per member)."""
    options = {"displayMode": "basic", "valueMode": "text", "namePlacement": "left", "showUnfilled": True,
               "sizing": "auto", "minVizWidth": 8, "minVizHeight": 16, "maxVizHeight": 300,
               "legend": _legend(), "reduceOptions": _reduce(calcs), "orientation": "horizontal"}
    return _base("bargauge", panel, panel_id, grid, options, None)


def pie(panel: Panel, panel_id: int, grid: Json) -> Json:
    """Each series' share of the total."""
    options = {"pieType": "donut", "displayLabels": ["percent"], "tooltip": _tooltip(),
               "reduceOptions": _reduce("sum"), "orientation": "auto",
               "legend": {**_legend("right", table=True), "values": ["value", "percent"]}}
    return _base("piechart", panel, panel_id, grid, options, {"hideFrom": {"legend": False, "tooltip": False,
                                                                          "viz": False}})


def table(panel: Panel, panel_id: int, grid: Json, *, headers: dict[str, str] | None = None,
          hidden: list[str] | None = None) -> Json:
    """Rows of a table answer; headers: column -> header (with its unit, when the panel's unit
    is "none"); hidden: columns left out."""
    if headers or hidden:
        panel.transformations = [*panel.transformations, {"id": "organize", "options": {
            "excludeByName": {name: True for name in hidden or []},
            "renameByName": headers or {}, "indexByName": {}}}]
    options = {"frameIndex": 0, "showHeader": True, "cellHeight": "sm"}
    return _base("table", panel, panel_id, grid, options, {"align": "auto", "inspect": False})


def variable_datasource() -> Json:
    """The data source variable `ds` (InfluxDB data sources), defaulting to the provisioned one."""
    from dashboards.provisioning import DATASOURCE_NAME, DATASOURCE_UID

    return {"type": "datasource", "name": DATASOURCE_VARIABLE, "label": "Data source", "query": DATASOURCE_TYPE,
            "current": {"text": DATASOURCE_NAME, "value": DATASOURCE_UID}, "hide": 0, "refresh": 1,
            "regex": "", "multi": False, "includeAll": False, "options": []}


def variable_query(name: str, label: str, query: str, *, multi: bool = True) -> Json:
    """A variable whose values a query lists (SHOW TAG VALUES ...), All included."""
    return {"type": "query", "name": name, "label": label, "query": query, "datasource": dict(DATASOURCE),
            "refresh": 1, "hide": 0, "multi": multi, "includeAll": True, "sort": 1, "regex": "",
            "current": {"text": "All", "value": "$__all"}, "options": []}


def dashboard_links() -> list[Json]:
    """Links to the other wattelier dashboards, keeping the time range and the variables."""
    return [{"title": "wattelier", "type": "dashboards", "tags": [DASHBOARD_TAG], "asDropdown": False,
             "icon": "external link", "tooltip": "", "url": "", "targetBlank": False,
             "includeVars": True, "keepTime": True}]


def dashboard(uid: str, title: str, description: str, panels: list[Json], variables: list[Json], *,
              timezone: str, time_from: str = "now-7d", refresh: str = "") -> Json:
    """A whole dashboard: variables, panels, links to the others, the site's time zone."""
    out: Json = {
        "uid": uid, "title": title, "description": description, "tags": [DASHBOARD_TAG],
        "timezone": timezone, "editable": True, "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"}, "schemaVersion": SCHEMA_VERSION, "version": 1,
        "fiscalYearStartMonth": 0, "weekStart": "monday", "liveNow": False,
        "panels": panels, "templating": {"list": variables},
        "annotations": {"list": []}, "links": dashboard_links(),
    }
    if refresh:
        out["refresh"] = refresh
    return out
