"""The dashboards, in the order the build writes them."""

from __future__ import annotations

from collections.abc import Callable

from dashboards import (
    collector_health_dashboard,
    energy_carbon_dashboard,
    floor_now_dashboard,
    machine_dashboard,
    members_dashboard,
)
from dashboards.context import SiteContext
from dashboards.panels import Json
from devices.site import Site

BUILDERS: dict[str, Callable[[SiteContext], Json]] = {
    "floor-now": floor_now_dashboard.build,
    "machine": machine_dashboard.build,
    "members": members_dashboard.build,
    "energy-carbon": energy_carbon_dashboard.build,
    "collector-health": collector_health_dashboard.build,
}


def all_dashboards(site: Site | SiteContext) -> list[Json]:
    """Every dashboard of a site (a Site, or its SiteContext)."""
    context = site if isinstance(site, SiteContext) else SiteContext.from_site(site)
    return [build(context) for build in BUILDERS.values()]
