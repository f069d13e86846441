"""The analysed window and everything fixed before a machine's data is read: the site's time
zone and days, opening hours, the tariff and its price edges, the emission factors, the
sessions, and the list of times where the analysis cuts a machine's energy.

``plan_window`` makes it once per analysis; the pipeline's steps (analytics.pipeline) and the
rollup reader (analytics.rollup_reader, which must read raw samples around every cut) take
the same object, so the cut times are listed in one place: a new cut goes into
``AnalysisWindow.cut_times`` and both follow.

Cuts: the window's ends, site-local day edges, the machine's session ends, opening hours,
tariff edges, hourly-factor edges, and the machine's controller changes.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field

import numpy as np

from analytics.carbon import (FactorInfo, choose_emission_factor, choose_tariff, reporting_year,
                              tariff_pieces)
from analytics.intervals import sorted_unique
from analytics.periods import clipped_periods
from analytics.records import Session
from devices.calendar import opening_windows
from devices.site import Site, Tariff


@dataclass
class AnalysisWindow:
    """One analysis's window [start_s, end_s) with what is known before any machine is read.

    day_start, day_a, day_b: each site-local day's start and its part inside the window [s];
    opening: (start_s, end_s) arrays of opening hours, None without a site; factor: the
    location-based factor (the headline), factor_market: the site's market-based one or None;
    hourly: (time_s, kg_co2e_per_kwh) of hourly grid intensity, or None.
    """

    site: Site | None
    sessions: list[Session]
    start_s: float
    end_s: float
    tz_name: str
    day_start: np.ndarray
    day_a: np.ndarray
    day_b: np.ndarray
    opening: tuple[np.ndarray, np.ndarray] | None
    factor: FactorInfo
    factor_market: FactorInfo | None
    tariff_name: str | None
    tariff: Tariff | None
    tariff_edges_s: np.ndarray
    hourly: tuple[np.ndarray, np.ndarray] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz_name)

    @property
    def day_edges(self) -> np.ndarray:
        return np.concatenate([self.day_a, self.day_b[-1:]])

    def sessions_of(self, machine: str) -> list[Session]:
        """The machine's sessions that overlap the window, in time order."""
        return [s for s in self.sessions
                if s.machine == machine and s.end_s > self.start_s and s.start_s < self.end_s]

    def cut_times(self, machine: str, controller_time_s=None) -> np.ndarray:
        """Sorted times [s] at which the analysis of `machine` evaluates its cumulative energy
        (a superset is safe: the rollup reader only reads more raw samples)."""
        parts = [np.array([self.start_s, self.end_s]), self.day_a, self.day_b]
        mine = [s for s in self.sessions if s.machine == machine]
        parts.append(np.array([s.start_s for s in mine] + [s.end_s for s in mine], dtype=np.float64))
        if self.opening is not None:
            parts += list(self.opening)
        if self.tariff is not None:
            parts.append(self.tariff_edges_s)
        if self.hourly is not None and len(self.hourly[0]):
            parts += [self.hourly[0], self.hourly[0] + 3600.0]
        if controller_time_s is not None:
            parts.append(np.asarray(controller_time_s, dtype=np.float64))
        return sorted_unique(np.concatenate(parts))


def _factors(site: Site | None, tz, start_s: float, end_s: float, override_kg_per_kwh: float | None,
             warnings: list[str]) -> tuple[FactorInfo, FactorInfo | None]:
    """The location-based factor (an override, the site's, the default table's) and the site's
    market-based one (None when it declares none), for the window's reporting year."""
    year = reporting_year(tz, start_s)  # the factor's: see analytics.carbon
    location = choose_emission_factor(site, "location", override_kg_per_kwh, year)
    market = None
    if site is not None and override_kg_per_kwh is None and any(
            f.basis == "market" for f in site.emission_factors.values()):
        market = choose_emission_factor(site, "market", None, year)
    last_year = reporting_year(tz, max(start_s, end_s - 1e-3))  # the end is excluded
    if last_year != year and override_kg_per_kwh is None:
        later = choose_emission_factor(site, "location", None, last_year)
        if later != location:
            warnings.append(
                f"the window spans {year} to {last_year}: CO2e uses the factor for {year} "
                f"({location.kg_co2e_per_kwh:g} kg CO2e/kWh, vintage {location.vintage}) "
                f"throughout, {last_year} has {later.kg_co2e_per_kwh:g} (vintage {later.vintage}); "
                "analyse each year on its own for each year's factor")
    return location, market


def plan_window(site: Site | None, sessions: list[Session], start_s: float, end_s: float,
                timezone: str, tariff: str | None = None, override_kg_per_kwh: float | None = None,
                hourly: tuple[np.ndarray, np.ndarray] | None = None) -> AnalysisWindow:
    """The window of one analysis; raises ValueError for an empty window, an unknown tariff or
    a factor that cannot be chosen (analytics.carbon.choose_emission_factor)."""
    start_s, end_s = float(start_s), float(end_s)
    if not end_s > start_s:
        raise ValueError(f"the window must end after it starts: {start_s} .. {end_s}")
    tz_name = site.site.timezone if site is not None else timezone
    tz = zoneinfo.ZoneInfo(tz_name)
    warnings: list[str] = []
    factor, market = _factors(site, tz, start_s, end_s, override_kg_per_kwh, warnings)
    chosen = choose_tariff(site, tariff)
    tariff_name, tariff_spec = chosen if chosen else (None, None)
    edges = (tariff_pieces(tariff_spec, tz, start_s, end_s)[0] if tariff_spec is not None
             else np.zeros(0))
    opening = None
    if site is not None:
        windows = opening_windows(site, start_s, end_s)
        opening = (np.array([w[0] for w in windows], dtype=np.float64),
                   np.array([w[1] for w in windows], dtype=np.float64))
    day_start, day_a, day_b = clipped_periods(tz, start_s, end_s, "day")
    if hourly is not None:
        t = np.asarray(hourly[0], dtype=np.float64)
        order = np.argsort(t, kind="stable")
        hourly = (t[order], np.asarray(hourly[1], dtype=np.float64)[order])
    return AnalysisWindow(site, sorted(sessions, key=lambda s: (s.start_s, s.machine, s.member)),
                          start_s, end_s, tz_name, day_start, day_a, day_b, opening, factor, market,
                          tariff_name, tariff_spec, edges, hourly, warnings)
