"""CO2e and cost of energy: emission factors (with source and vintage) and tariffs.

CO2e [kg] = energy [kWh] x emission factor [kg CO2e/kWh]. The GHG Protocol's scope 2 guidance
asks for a location-based figure (the grid's average mix where the energy is used: the
default) and, optionally, a market-based one (what the supplier contract says); each factor
travels with its source, vintage and zone so a report says which number it used.

Which vintage: a table's factor (the default: ADEME Base Empreinte, mix moyen, France
continentale) is the latest vintage not after the reporting year, the year the analysis
window starts in, in the site's time zone; a window that crosses a New Year takes the start's
year for all of it (the pipeline warns: analyse each year on its own for each year's factor).
A year before the table's first vintage is refused (no silent factor of a later year).

Hourly factors (e.g. from a CSV of a grid operator's hourly series) weight each hour's energy
by that hour's factor.

Cost = energy x price, flat or time-of-use (peak / off-peak, *heures pleines / heures creuses*)
with off-peak hours given as wall-clock ranges in the site's time zone.

References
----------
.. [1] GHG Protocol Scope 2 Guidance (WRI/WBCSD, 2015): location-based and market-based methods.
.. [2] ADEME Base Empreinte, "Electricité - <année> - mix moyen - consommation", France
   continentale: the versioned table devices/data/emission_factors/ademe-base-empreinte.toml
   (each vintage with what was verified about it and where).
.. [3] ISO 14064-1:2018, quantification of greenhouse gas emissions (indirect emissions from
   imported energy).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from analytics.energy import Cumulative, ScaledCumulative, WeightedCumulative
from analytics.intervals import contains, sorted_unique
from analytics.periods import local_time_ranges
from devices.emission_factors import DEFAULT_TABLE, default_zone_problem, load_table
from devices.site import HOURS_RE, EmissionFactor, Site, Tariff


@dataclass(frozen=True)
class FactorInfo:
    """An emission factor with its provenance.

    kg_co2e_per_kwh: the factor [kg CO2e/kWh]; basis: "location" or "market"; source: who
    publishes it and which item; vintage: the year it describes; zone: the grid zone it is for
    (e.g. "France continentale"); evidence: what backs a market-based factor (contract,
    guarantees of origin), None otherwise.
    """

    kg_co2e_per_kwh: float
    basis: str
    source: str
    vintage: str
    name: str = ""
    zone: str = ""
    evidence: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "kg_co2e_per_kwh": self.kg_co2e_per_kwh, "basis": self.basis,
                "source": self.source, "vintage": self.vintage, "zone": self.zone,
                "evidence": self.evidence}


def table_factor(table_name: str, year: int | None, zone: str | None = None,
                 vintage: str | None = None, name: str = "default") -> FactorInfo:
    """A table's factor: the vintage given, else the latest not after the reporting `year`
    (the latest of all for None); raises EmissionFactorError (a ValueError) for a year before
    the first vintage."""
    table = load_table(table_name)
    zone = zone if zone is not None else table.default_zone
    entry = table.vintage(zone, vintage) if vintage is not None else table.for_year(zone, year)
    return FactorInfo(entry.kg_co2e_per_kwh, table.basis, table.source_of(entry), str(entry.vintage),
                      name, zone=entry.zone)


def default_emission_factor(year: int | None = None) -> FactorInfo:
    """The factor of a site that names none: ADEME Base Empreinte, mix moyen, France
    continentale, for the reporting year."""
    return table_factor(DEFAULT_TABLE, year)


def co2e_kg(energy_kwh, kg_co2e_per_kwh: float) -> np.ndarray:
    """CO2e of energy [kg]: energy_kwh [kWh] x kg_co2e_per_kwh [kg CO2e/kWh].

    References
    ----------
    .. [1] GHG Protocol Scope 2 Guidance (2015), eq. 6.1 (activity data x emission factor).
    """
    return np.asarray(energy_kwh, dtype=np.float64) * float(kg_co2e_per_kwh)


def site_factor(name: str, factor: EmissionFactor, year: int | None) -> FactorInfo:
    """A site's [emission_factors.NAME] as used for a reporting year (a table's vintage for
    that year unless the entry pins one)."""
    if factor.table is not None:
        return table_factor(factor.table, year, factor.zone, factor.vintage, name)
    return FactorInfo(float(factor.kg_co2e_per_kwh), factor.basis, factor.source, factor.vintage, name,
                      zone=factor.zone or "", evidence=factor.evidence)


def choose_emission_factor(site: Site | None, basis: str = "location",
                           override_kg_per_kwh: float | None = None,
                           year: int | None = None) -> FactorInfo:
    """The factor to use for a reporting `year` (the analysis window's start year in the
    site's zone; None: the latest vintage): a command-line override, else the site's first
    factor of the asked basis (``location`` by default, ``market`` optional), else the
    default table's (default_emission_factor). Raises ValueError when none fits (no market
    factor in the site file, a year before the table's first vintage, a site outside the
    default table's zone)."""
    if override_kg_per_kwh is not None:
        if not override_kg_per_kwh >= 0:
            raise ValueError(f"emission factor must be 0 or more, got {override_kg_per_kwh}")
        return FactorInfo(float(override_kg_per_kwh), basis, "given on the command line", "",
                          "override")
    if site is not None:
        for name, factor in site.emission_factors.items():
            if factor.basis == basis:
                return site_factor(name, factor, year)
    if basis != "location":
        raise ValueError(f"no {basis}-based emission factor in the site file: add "
                         f"[emission_factors.NAME] with basis = '{basis}', kg_co2e_per_kwh, source, "
                         "vintage, zone and evidence (the contract or guarantees of origin)")
    if site is not None:
        outside = default_zone_problem(site.site.timezone)
        if outside:
            raise ValueError(outside)
    return default_emission_factor(year)


def reporting_year(tz, start_s: float) -> int:
    """The reporting year of a window: the year its start falls in, in the site's zone."""
    return dt.datetime.fromtimestamp(float(start_s), tz).year


def co2e_curve(energy: Cumulative, factor: FactorInfo,
               hourly_time_s=None, hourly_kg_per_kwh=None) -> Cumulative:
    """Cumulative CO2e [kg] of a cumulative energy [kWh].

    With hourly factors, each factor applies from its time to the next one (the last one for
    an hour); outside the series the constant factor applies.
    """
    if hourly_time_s is None or not len(hourly_time_s):
        return ScaledCumulative(energy, factor.kg_co2e_per_kwh)
    t = np.asarray(hourly_time_s, dtype=np.float64)
    f = np.asarray(hourly_kg_per_kwh, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t, f = t[order], f[order]
    edges = np.concatenate([t, [t[-1] + 3600.0]])
    return WeightedCumulative(energy, edges, f, outside_rate=factor.kg_co2e_per_kwh)


def _hours(texts: list[str]) -> list[tuple[dt.time, dt.time | None]]:
    out = []
    for text in texts:
        h1, m1, h2, m2 = (int(g) for g in HOURS_RE.match(text).groups())
        out.append((dt.time(h1, m1), None if h2 == 24 else dt.time(h2, m2)))
    return out


def tariff_pieces(tariff: Tariff, tz, start_s: float, end_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(edges_s, price_per_kwh) of a tariff over a window: off-peak hours at the off-peak price,
    the rest at the base price; flat tariffs give one piece."""
    if not tariff.offpeak_hours or tariff.offpeak_price_per_kwh is None or not end_s > start_s:
        return np.array([start_s, max(end_s, start_s)]), np.array([tariff.price_per_kwh])
    a, b = local_time_ranges(tz, start_s, end_s, _hours(tariff.offpeak_hours))
    edges = sorted_unique(np.concatenate([[start_s, end_s], a, b]))
    mids = (edges[:-1] + edges[1:]) / 2
    offpeak = contains(a, b, mids)
    prices = np.where(offpeak, tariff.offpeak_price_per_kwh, tariff.price_per_kwh)
    return edges, prices


def cost_curve(energy: Cumulative, tariff: Tariff, tz, start_s: float, end_s: float) -> Cumulative:
    """Cumulative cost [currency] of a cumulative energy [kWh] under a tariff (base price
    outside the window)."""
    edges, prices = tariff_pieces(tariff, tz, start_s, end_s)
    return WeightedCumulative(energy, edges, prices, outside_rate=tariff.price_per_kwh)


def choose_tariff(site: Site | None, name: str | None = None) -> tuple[str, Tariff] | None:
    """The tariff named, else the site's ``default`` tariff, else its first; None without any."""
    if site is None or not site.tariffs:
        return None
    if name is not None:
        if name not in site.tariffs:
            raise ValueError(f"no tariff {name!r} in the site file; known: {', '.join(site.tariffs)}")
        return name, site.tariffs[name]
    if "default" in site.tariffs:
        return "default", site.tariffs["default"]
    first = next(iter(site.tariffs))
    return first, site.tariffs[first]
