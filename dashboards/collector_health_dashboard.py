"""Collector health, per edge box (`site`): backlog and its oldest unsent point, last report,
drops by reason, quarantine, devices up and down and which device when, reconnects (the
collector's self-metrics, measurement `collector`: the site's points, and one per device tagged
`device`)."""

from __future__ import annotations

from dashboards import queries as q
from dashboards.context import SiteContext
from dashboards.panels import Json, Layout, Panel, Target, dashboard, stat, state_timeline, timeseries
from dashboards.variables import template_variables
from devices import vocabulary as v

UID = "wattelier-collector-health"


def build(site: SiteContext) -> Json:
    layout = Layout()
    by_site = "$tag_site $col"
    p = [
        stat(Panel(
            "Last report",
            "When each edge box last wrote its self-metrics (every 10 s while it runs): more than a few "
            "minutes ago means the collector or its forwarding stopped.",
            "dateTimeFromNow", [Target(q.select(['last("uptime_s")'], v.COLLECTOR, (q.SITE,), by=(v.TAG_SITE,)),
                                       alias="$tag_site")]), 1, layout.place(8, 5), fields="/^Time$/"),
        stat(Panel(
            "Backlog now", "Points journaled on the edge box and not yet accepted by InfluxDB [points].",
            "short", [Target(q.select(['last("backlog")'], v.COLLECTOR, (q.SITE,), by=(v.TAG_SITE,)),
                             alias="$tag_site")]), 2, layout.place(8, 5)),
        stat(Panel(
            "Devices down now", "Meters and controllers that do not answer (the panel Devices names them) "
            "[devices].",
            "short", [Target(q.select(['last("devices_down")'], v.COLLECTOR, (q.SITE,), by=(v.TAG_SITE,)),
                             alias="$tag_site")]), 3, layout.place(8, 5)),
        timeseries(Panel(
            "Backlog", "Points waiting on the edge box to be forwarded, highest per interval [points]; "
            "a backlog that grows means InfluxDB is not accepting writes.",
            "short", [Target(q.collector(["backlog"]), alias=by_site)]), 4, layout.place(12, 8)),
        timeseries(Panel(
            "Oldest unsent point", "How long the oldest point not yet accepted by InfluxDB has waited "
            "on the edge box, longest per interval [s]: it grows through an outage and falls to 0 once "
            "the backlog is forwarded.",
            "s", [Target(q.collector(["oldest_unsent_age_s"]), alias=by_site)]), 10, layout.place(12, 8)),
        timeseries(Panel(
            "InfluxDB reachable", "1 while the forwarder's last write was accepted, 0 while it is failing "
            "(lowest per interval) [0/1].",
            "bool_yes_no", [Target(q.collector(["influx_up"], "min"), alias=by_site)]), 5, layout.place(12, 8)),
        timeseries(Panel(
            "Points dropped by reason",
            "Points the journal dropped, total since it was made, per reason (dropped_REASON) [points].",
            "short", [Target(q.select(['max(/^dropped_/)'], v.COLLECTOR, (q.SITE,), every=q.INTERVAL,
                                      by=(v.TAG_SITE,), fill="none"), alias=by_site)]),
            6, layout.place(12, 8)),
        timeseries(Panel(
            "Quarantined points", "Points InfluxDB refused (kept in the journal's quarantine with its "
            "message: `wattelier journal` shows them), total [points].",
            "short", [Target(q.collector(["points_quarantined"]), alias=by_site)]), 7, layout.place(12, 8)),
        timeseries(Panel(
            "Devices up and down", "Meters and controllers answering and not answering [devices].",
            "short", [Target(q.collector(["devices_up", "devices_down"]), alias=by_site)]),
            8, layout.place(12, 8)),
        state_timeline(Panel(
            "Devices", "Each meter and controller: answering, or not (its reads fail), the worst of each "
            "interval; a gap is a time the collector did not run.",
            "none", [Target(q.select(['min("up")'], v.COLLECTOR, (q.SITE,), every=q.INTERVAL,
                                     by=(v.TAG_SITE, v.TAG_DEVICE), fill="none"), alias="$tag_device")],
            mappings=[{"type": "value", "options": {
                "1": {"text": "answering", "color": "green", "index": 0},
                "0": {"text": "not answering", "color": "red", "index": 1}}}]), 11, layout.place(24, 8)),
        timeseries(Panel(
            "Reconnects", "Reconnections to meters and controllers per interval (the difference of the "
            "collector's count since start) [reconnects].",
            "short", [Target(q.select(['non_negative_difference(max("reconnects")) AS "reconnects"'], v.COLLECTOR,
                                      (q.SITE,), every=q.INTERVAL, by=(v.TAG_SITE,), fill="none"),
                             alias=by_site)]), 9, layout.place(12, 8), bars=True),
    ]
    return dashboard(UID, f"Collector health · {site.name}", "Is each edge box collecting and forwarding? "
                     "Backlog and its oldest point, last report, drops, quarantine, devices, reconnects.", p,
                     template_variables(("site",)), timezone=site.timezone, time_from="now-24h", refresh="1m")
