"""Members: hours, kWh, CO2e and cost per member over the period; their sessions."""

from __future__ import annotations

from dashboards import queries as q
from dashboards.context import SiteContext
from dashboards.panels import Json, Layout, Panel, Target, bar_gauge, dashboard, table
from dashboards.variables import template_variables
from devices import vocabulary as v

UID = "wattelier-members"
WHERE = (q.SITE, q.MACHINE, q.MEMBER)


def build(site: SiteContext) -> Json:
    layout = Layout()

    def per_member(title: str, description: str, unit: str, expression: str, panel_id: int) -> Json:
        return bar_gauge(Panel(title, description, unit, [Target(
            q.select([expression], v.SESSION, WHERE, by=(v.TAG_MEMBER,)), alias="$tag_member")]),
            panel_id, layout.place(12, 8))

    p = [
        per_member("Hours per member", "Time each member held the selected machines (their sessions) [s].",
                   "s", 'sum("duration_s")', 1),
        per_member("Energy per member", "Energy of each member's sessions [kWh], jobs and idle time between "
                   "them; energy outside sessions is not a member's.", "kwatth", 'sum("energy_kwh")', 2),
        per_member("CO2e per member", f"Location-based CO2e of each member's sessions [kg]; factor: {site.factor}.",
                   "masskg", 'sum("co2e_kg")', 3),
        per_member("Cost per member", f"Energy cost of each member's sessions [{site.currency}].",
                   site.currency_unit, 'sum("cost")', 4),
        table(Panel(
            "Sessions", "Each session: machine, member, length, processing time, jobs, energy, CO2e and "
            "cost (measurement session). Units in the headers.",
            "none", [Target(q.select(['"machine"', '"member"', '"duration_s" / 3600 AS "hours"',
                                      '"processing_s" / 3600 AS "processing"', '"jobs"', '"energy_kwh"',
                                      '"co2e_kg"', '"cost"'], v.SESSION, WHERE), table=True)]),
            5, layout.place(24, 12),
            headers={"Time": "Start", "machine": "Machine", "member": "Member", "hours": "Length (h)",
                     "processing": "Processing (h)", "jobs": "Jobs", "energy_kwh": "Energy (kWh)",
                     "co2e_kg": "CO2e (kg)", "cost": f"Cost ({site.currency})"}),
    ]
    return dashboard(UID, f"Members · {site.name}", "What each member used: hours, energy, CO2e, cost, "
                     "sessions.", p, template_variables(), timezone=site.timezone, time_from="now-30d")
