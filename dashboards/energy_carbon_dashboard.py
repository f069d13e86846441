"""Energy and carbon: kWh per machine per local day, shares, standby outside opening hours,
the site balance and CO2e."""

from __future__ import annotations

from dashboards import queries as q
from dashboards.context import SiteContext
from dashboards.panels import Json, Layout, Panel, Target, bar_gauge, dashboard, pie, timeseries
from dashboards.variables import template_variables
from devices import vocabulary as v

UID = "wattelier-energy-carbon"


def build(site: SiteContext) -> Json:
    layout = Layout()
    tz = site.timezone
    p = [
        timeseries(Panel(
            "Energy per machine per day",
            f"Energy of each machine per day [kWh], days from local midnight ({tz}) (usage results).",
            "kwatth", [Target(q.daily_sum("energy_kwh", v.USAGE, tz, alias="kWh"), alias="$tag_machine")]),
            1, layout.place(16, 9), bars=True, stacked=True),
        pie(Panel(
            "Share of the site's metered energy",
            "Each machine's and service's share of the energy metered on the selected machines over the "
            "range [kWh, %].", "kwatth", [Target(q.total("energy_kwh", v.USAGE), alias="$tag_machine")]),
            2, layout.place(8, 9)),
        bar_gauge(Panel(
            "Standby outside opening hours",
            "Energy each machine spent in standby while the workshop was closed, over the range [kWh]: "
            "waste to cut.", "kwatth", [Target(q.total("standby_outside_opening_kwh", v.USAGE),
                                                alias="$tag_machine")]), 3, layout.place(12, 8)),
        timeseries(Panel(
            "Standby outside opening hours per day",
            f"The same per machine and local day [kWh] ({tz}).",
            "kwatth", [Target(q.daily_sum("standby_outside_opening_kwh", v.USAGE, tz, alias="kWh"),
                              alias="$tag_machine")]), 4, layout.place(12, 8), bars=True, stacked=True),
        timeseries(Panel(
            "Site balance per day",
            "The main meter's energy, the sum of the metered machines and services, and the difference "
            f"(not metered: lighting, heating, sockets) per local day [kWh] ({tz}); measurement balance.",
            "kwatth", [Target(q.select(['sum("main_kwh") AS "main meter"', 'sum("metered_kwh") AS "metered"',
                                        'sum("not_metered_kwh") AS "not metered"'], v.BALANCE, (q.SITE,),
                                       every="1d", tz=tz, fill="none"))]), 5, layout.place(16, 8), bars=True),
        timeseries(Panel(
            "Not metered share per day",
            "Share of the main meter's energy that no machine or service meter saw, per local day, as "
            "the analysis stored it (balance.not_metered_share) [%].",
            "percentunit", [Target(q.select(['mean("not_metered_share") AS "not metered"'], v.BALANCE, (q.SITE,),
                                            every="1d", tz=tz, fill="none"))], decimals=1),
            6, layout.place(8, 8), bars=True),
        timeseries(Panel(
            "CO2e per machine per day",
            f"Location-based CO2e per machine and local day [kg]; factor: {site.factor}. Each stored "
            "record names its own factor and vintage (fields factor, factor_vintage).",
            "masskg", [Target(q.daily_sum("co2e_kg", v.USAGE, tz, alias="kg"), alias="$tag_machine")]),
            7, layout.place(12, 8), bars=True, stacked=True),
        timeseries(Panel(
            "Cost per machine per day", f"Energy cost per machine and local day [{site.currency}].",
            site.currency_unit, [Target(q.daily_sum("cost", v.USAGE, tz, alias="cost"), alias="$tag_machine")]),
            8, layout.place(12, 8), bars=True, stacked=True),
    ]
    return dashboard(UID, f"Energy and carbon · {site.name}", "Energy, CO2e and cost per machine and day, "
                     "standby waste and the site balance.", p, template_variables(("site", "machine")),
                     timezone=tz, time_from="now-30d")
