"""Machine: power, phases, states, the active program, its jobs and kWh per processing hour."""

from __future__ import annotations

from dashboards import queries as q
from dashboards.context import SiteContext
from dashboards.panels import Json, Layout, Panel, Target, dashboard, state_timeline, table, timeseries
from dashboards.variables import template_variables
from devices import vocabulary as v

UID = "wattelier-machine"


def build(site: SiteContext) -> Json:
    layout = Layout()
    tz = site.timezone
    p = [
        timeseries(Panel(
            "Power, hourly mean and peak",
            "Mean and highest active power of each hour [W], from the hourly rollups the journal "
            "makes (measurement power_rollup): cheap over any range.",
            "watt", [Target(q.rollup_power(), alias="$tag_machine $col")], min_interval="1h"),
            1, layout.place(24, 8)),
        timeseries(Panel(
            "Power and current per phase, last 6 hours",
            "Active power [W] and per-phase currents [A, right axis] of the 1 Hz samples, mean per "
            "interval; this panel keeps to the last 6 hours (raw samples).",
            "watt", [Target(q.raw_power(("power_w",)), alias="$tag_machine power"),
                     Target(q.raw_power(("current_l1_a", "current_l2_a", "current_l3_a")),
                            alias="$tag_machine $col")],
            time_from="6h", min_interval="10s"), 2, layout.place(12, 8)),
        timeseries(Panel(
            "Voltage per phase, last 6 hours",
            "Phase-to-neutral voltages [V] of the 1 Hz samples, mean per interval; last 6 hours.",
            "volt", [Target(q.raw_power(("voltage_l1_v", "voltage_l2_v", "voltage_l3_v")),
                            alias="$tag_machine $col")], time_from="6h", min_interval="10s"),
            3, layout.place(12, 8)),
        state_timeline(Panel(
            "States", "The machine's states as analysed (measurement machine_state).",
            "none", [Target(q.states())]), 4, layout.place(24, 6)),
        state_timeline(Panel(
            "Active program", "The program the controller runs (OPC UA, measurement cnc; changes only).",
            "none", [Target(q.select(['"program"'], v.CNC, (q.SITE, q.MACHINE), by=(v.TAG_MACHINE,)))],),
            5, layout.place(24, 5)),
        table(Panel(
            "Jobs", "Each job of the machine: member (empty when no session covered it), program, "
            "length, energy, location-based CO2e and cost (measurement job). Units in the headers.",
            "none", [Target(q.select(['"member"', '"program"', '"duration_s" / 3600 AS "hours"', '"energy_kwh"',
                                      '"co2e_kg"', '"cost"'], v.JOB, (q.SITE, q.MACHINE), by=(v.TAG_MACHINE,)),
                            table=True)]), 6, layout.place(24, 10),
            headers={"Time": "Start", "machine": "Machine", "member": "Member", "program": "Program",
                     "hours": "Length (h)", "energy_kwh": "Energy (kWh)", "co2e_kg": "CO2e (kg)",
                     "cost": f"Cost ({site.currency})"}),
        timeseries(Panel(
            "kWh per processing hour, week by week",
            "The machine's energy over its processing hours, per site-local week from Monday (usage results).",
            "kwatth", [Target(q.select(['sum("energy_kwh") / (sum("processing_s") / 3600) AS "kWh per hour"'],
                                       v.USAGE, (q.SITE, q.MACHINE), every="7d, 4d", by=(v.TAG_MACHINE,),
                                       tz=tz, fill="none"), alias="$tag_machine")]),
            7, layout.place(24, 8), bars=True),
    ]
    return dashboard(UID, f"Machine · {site.name}", "One machine in detail: power, phases, states, program, "
                     "jobs.", p, template_variables(("site", "machine")), timezone=tz, time_from="now-7d")
