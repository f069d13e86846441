"""Alert rules as code, in Grafana's file-provisioning format for alerting (apiVersion 1:
`groups` of rules, `muteTimes`), written by dashboards.build beside the dashboards:

- a machine left on (idle or processing: power at or above its idle threshold) while the
  workshop is closed, for longer than `left_on_for` (the rule is muted during the opening
  hours, which a mute timing in the site's zone states);
- an edge box whose forwarding backlog keeps growing, or that stopped reporting;
- a meter or controller down, one alert per device (the collector's point per device).

Each rule names its site and says in its summary what is wrong and what to look at. The rules
route to `receiver` (a contact point of the Grafana they go to) through per-rule notification
settings, so provisioning them replaces no notification policy.
"""

from __future__ import annotations

import re
from typing import Any

from dashboards import queries as q
from dashboards.provisioning import DATASOURCE_UID, FOLDER
from devices import vocabulary as v
from devices.site import WEEKDAYS, Site

DEFAULT_RECEIVER = "grafana-default-email"
IDLE_SHARE_OF_RATED = 0.03  # the analysis' fallback idle threshold (analytics.states): 3 % of rated power

Json = dict[str, Any]


def slug(text: str, length: int = 24) -> str:
    """Lower-case letters, digits and hyphens, for uids (Grafana: at most 40 characters)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].strip("-") or "site"


def _query_rule(uid: str, title: str, query: str, window_s: int, comparison: str, threshold: float,
                pending: str, summary: str, labels: dict[str, str], *, reducer: str = "last",
                no_data: str = "OK", settings: Json | None = None) -> Json:
    """A rule: InfluxQL A over the last window_s, reduced to one number per series (B), compared
    with threshold (C); firing once C has held for `pending`."""
    rule: Json = {
        "uid": uid, "title": title, "condition": "C",
        "data": [
            {"refId": "A", "relativeTimeRange": {"from": window_s, "to": 0}, "datasourceUid": DATASOURCE_UID,
             "model": {"refId": "A", "query": query, "rawQuery": True, "resultFormat": "time_series",
                       "intervalMs": 60000, "maxDataPoints": 43200}},
            {"refId": "B", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": "__expr__",
             "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": reducer,
                       "settings": {"mode": "dropNN"}}},
            {"refId": "C", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": "__expr__",
             "model": {"refId": "C", "type": "threshold", "expression": "B",
                       "conditions": [{"evaluator": {"type": comparison, "params": [threshold]}}]}},
        ],
        "noDataState": no_data, "execErrState": "Error", "for": pending,
        "annotations": {"summary": summary}, "labels": labels, "isPaused": False,
    }
    if settings:
        rule["notification_settings"] = settings
    return rule


def idle_threshold_w(site: Site, machine: str) -> float:
    """Power at or above which a machine is on (idle or processing) [W]: its configured idle
    threshold, else the analysis' fallback share of its rated power."""
    m = site.machines[machine]
    return m.thresholds.idle_w if m.thresholds else IDLE_SHARE_OF_RATED * m.rated_power_w


def opening_hours_mute_timing(site: Site, name: str) -> Json:
    """A mute timing covering the opening hours, weekday by weekday, in the site's zone."""
    intervals = []
    for weekday, day in enumerate(WEEKDAYS):
        for start, end in site.opening_hours.ranges(weekday):
            intervals.append({"times": [{"start_time": start.strftime("%H:%M"),
                                         "end_time": end.strftime("%H:%M") if end else "24:00"}],
                              "weekdays": [day], "location": site.site.timezone})
    return {"orgId": 1, "name": name, "time_intervals": intervals}


def alert_rules(site: Site, *, left_on_for: str = "30m", backlog_for: str = "15m", receiver: str = DEFAULT_RECEIVER,
                stopped_after_s: int = 300) -> Json:
    """The provisioning document of the site's alert rules (groups and the mute timing)."""
    name = site.site.name
    key = slug(name, 16)
    where_site = (f'"site" = {q.string(name)}',)
    labels = {"site": name, "source": "wattelier"}
    closed = f"wattelier-opening-hours-{key}"
    rules = []
    for machine in sorted(site.machines):
        threshold = idle_threshold_w(site, machine)
        query = q.select(['mean("power_w")'], v.METER, (*where_site, f'"machine" = {q.string(machine)}'))
        rules.append(_query_rule(
            f"wl-lefton-{key}-{slug(machine, 12)}", f"{name}: {machine} left on outside opening hours", query,
            600, "gt", threshold, left_on_for,
            f"{machine} at {name} has drawn more than {threshold:g} W (idle or processing) for {left_on_for} "
            "while the workshop is closed: switch it off or check who runs it.",
            {**labels, "machine": machine, "severity": "warning"}, reducer="mean",
            settings={"receiver": receiver, "mute_time_intervals": [closed]}))
    rules.append(_query_rule(
        f"wl-backlog-{key}", f"{name}: forwarding backlog grows",
        q.select(['last("backlog") - first("backlog")'], v.COLLECTOR, where_site), 900, "gt", 0, backlog_for,
        f"The edge box of {name} has journaled more points than InfluxDB accepted for {backlog_for}: "
        "InfluxDB is unreachable or refusing writes (see the Collector health dashboard and the log).",
        {**labels, "severity": "warning"}, settings={"receiver": receiver}))
    rules.append(_query_rule(
        f"wl-silent-{key}", f"{name}: edge box stopped reporting",
        q.select(['count("uptime_s")'], v.COLLECTOR, where_site), stopped_after_s, "lt", 1, "0s",
        f"No self-metrics from the edge box of {name} for {stopped_after_s // 60} minutes: the collector "
        "stopped, or its forwarding did (check `systemctl status wattelier` on the box).",
        {**labels, "severity": "critical"}, reducer="last", no_data="Alerting", settings={"receiver": receiver}))
    rules.append(_query_rule(
        f"wl-devdown-{key}", f"{name}: meter or controller down",
        q.select(['last("up")'], v.COLLECTOR, where_site, by=(v.TAG_DEVICE,)), 300, "lt", 1, "5m",
        f"At {name}, {{{{ $labels.device }}}} has not answered for 5 minutes (one alert per device: "
        "`meter:NAME` or `controller:NAME` of the site file); the collector's log says why "
        "(`journalctl -u wattelier`).", {**labels, "severity": "warning"}, settings={"receiver": receiver}))
    return {"apiVersion": 1,
            "groups": [{"orgId": 1, "name": f"wattelier {key}", "folder": FOLDER, "interval": "1m", "rules": rules}],
            "muteTimes": [opening_hours_mute_timing(site, closed)]}
