"""Floor now: what runs, who holds it, today's energy, CO2e and cost, this week's utilisation."""

from __future__ import annotations

from dashboards import queries as q
from dashboards.context import SiteContext
from dashboards.panels import Json, Layout, Panel, Target, bar_gauge, dashboard, stat, state_timeline, table, timeseries
from dashboards.variables import template_variables
from devices import vocabulary as v

UID = "wattelier-floor-now"


def build(site: SiteContext) -> Json:
    layout = Layout()
    tz = site.timezone
    p = [
        state_timeline(Panel(
            "Machine states over the shift",
            "Each machine's state (off, standby, idle, processing, setup, fault) as `wattelier analyze` "
            "stored it (measurement machine_state; it lags by the analysis period).",
            "none", [Target(q.states())], time_from="12h"), 1, layout.place(16, 9)),
        bar_gauge(Panel(
            "Time per state over the shift",
            "The state timeline's legend: total time in each state over the same 12 hours, all "
            "selected machines together [s].",
            "s", [Target(q.select(['sum("duration_s") AS "time"'], v.MACHINE_STATE, (q.SITE, q.MACHINE),
                                  by=("state",)))], time_from="12h"), 2, layout.place(8, 9)),
        timeseries(Panel(
            "Live power per machine",
            "Active power of each machine's meter [W], mean per Grafana interval of the 1 Hz samples "
            "(this panel keeps to the last 3 hours: longer ranges read the hourly rollups).",
            "watt", [Target(q.raw_power(), alias="$tag_machine")], time_from="3h", min_interval="10s"),
            3, layout.place(24, 8)),
        stat(Panel(
            "Energy today", "Energy of the selected machines since the site's local midnight [kWh] "
            "(analysis results, measurement usage).",
            "kwatth", [Target(q.select(['sum("energy_kwh")'], v.USAGE, (q.SITE, q.MACHINE)))],
            time_from="now/d", decimals=1), 4, layout.place(6, 4)),
        stat(Panel(
            "CO2e today", f"Location-based CO2e since local midnight [kg]; factor: {site.factor}.",
            "masskg", [Target(q.select(['sum("co2e_kg")'], v.USAGE, (q.SITE, q.MACHINE)))],
            time_from="now/d", decimals=1), 5, layout.place(6, 4)),
        stat(Panel(
            "Cost today", f"Energy cost since local midnight under the site's tariff [{site.currency}].",
            site.currency_unit, [Target(q.select(['sum("cost")'], v.USAGE, (q.SITE, q.MACHINE)))],
            time_from="now/d", decimals=2), 6, layout.place(6, 4)),
        stat(Panel(
            "Standby outside opening hours today",
            "Energy spent in standby outside the opening hours since local midnight [kWh].",
            "kwatth", [Target(q.select(['sum("standby_outside_opening_kwh")'], v.USAGE, (q.SITE, q.MACHINE)))],
            time_from="now/d", decimals=2), 7, layout.place(6, 4)),
        table(Panel(
            "Who holds which machine",
            "Each machine's latest session today: member, start (in the dashboard's zone) and length "
            "[h], from the analysed sessions (measurement session).",
            "none", [Target(q.select(['last("duration_s") / 3600 AS "hours"', '"member"'], v.SESSION,
                                     (q.SITE, q.MACHINE), by=(v.TAG_MACHINE,)), table=True)],
            time_from="now/d"), 8, layout.place(12, 8),
            headers={"Time": "Started", "machine": "Machine", "member": "Member", "hours": "Length (h)"}),
        bar_gauge(Panel(
            "Utilisation this week",
            "ISO 22400-2 utilisation efficiency (processing time over busy time) per machine, the "
            "mean of this week's daily figures as analysed [0-1].",
            "percentunit", [Target(q.select(['mean("utilisation_efficiency")'], v.USAGE, (q.SITE, q.MACHINE),
                                            by=(v.TAG_MACHINE,)), alias="$tag_machine")],
            time_from="now/w"), 9, layout.place(12, 8)),
    ]
    return dashboard(UID, f"Floor now · {site.name}", "Which machine runs and who holds it, today's energy, "
                     "CO2e and cost, and this week's utilisation.", p, template_variables(),
                     timezone=tz, time_from="now-12h", refresh="1m")
