"""CO2e and cost of energy: emission factors (with source and vintage) and tariffs.

CO2e [kg] = energy [kWh] x emission factor [kg CO2e/kWh]. The GHG Protocol's scope 2 guidance
asks for a location-based figure (the grid's average mix where the energy is used: the
default) and, optionally, a market-based one (what the supplier contract says); each factor
travels with its source and vintage so a report says which number it used. Hourly factors
(e.g. from a CSV of a grid operator's hourly series) weight each hour's energy by that hour's
factor.

Cost = energy x price, flat or time-of-use (peak / off-peak, *heures pleines / heures creuses*)
with off-peak hours given as wall-clock ranges in the site's time zone.

References
----------
.. [1] GHG Protocol Scope 2 Guidance (WRI/WBCSD, 2015): location-based and market-based methods.
.. [2] ADEME Base Empreinte, electricity "mix de consommation - moyen", France continentale
   (REFERENCE.md: value to be pinned from ADEME's published data; the site file configures it).
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
from devices.site import HOURS_RE, Site, Tariff


@dataclass(frozen=True)
class FactorInfo:
    """An emission factor with its provenance.

    kg_co2e_per_kwh: the factor [kg CO2e/kWh]; basis: "location" or "market";
    source: who publishes it and which item; vintage: the year or edition.
    """

    kg_co2e_per_kwh: float
    basis: str
    source: str
    vintage: str
    name: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "kg_co2e_per_kwh": self.kg_co2e_per_kwh, "basis": self.basis,
                "source": self.source, "vintage": self.vintage}


DEFAULT_EMISSION_FACTOR = FactorInfo(
    0.052, "location",
    "ADEME Base Empreinte, electricity, mix de consommation moyen, France continentale "
    "(default of wattelier, to be confirmed against ADEME's published data; configure the "
    "site's own in [emission_factors])",
    "2022", "default")


def co2e_kg(energy_kwh, kg_co2e_per_kwh: float) -> np.ndarray:
    """CO2e of energy [kg]: energy_kwh [kWh] x kg_co2e_per_kwh [kg CO2e/kWh].

    References
    ----------
    .. [1] GHG Protocol Scope 2 Guidance (2015), eq. 6.1 (activity data x emission factor).
    """
    return np.asarray(energy_kwh, dtype=np.float64) * float(kg_co2e_per_kwh)


def choose_emission_factor(site: Site | None, basis: str = "location",
                           override_kg_per_kwh: float | None = None) -> FactorInfo:
    """The factor to use: a command-line override, else the site's first factor of the asked
    basis (``location`` by default, ``market`` optional), else DEFAULT_EMISSION_FACTOR."""
    if override_kg_per_kwh is not None:
        if not override_kg_per_kwh >= 0:
            raise ValueError(f"emission factor must be 0 or more, got {override_kg_per_kwh}")
        return FactorInfo(float(override_kg_per_kwh), basis, "given on the command line", "",
                          "override")
    if site is not None:
        for name, factor in site.emission_factors.items():
            if factor.basis == basis:
                return FactorInfo(factor.kg_co2e_per_kwh, factor.basis, factor.source,
                                  factor.vintage, name)
    if basis != "location":
        raise ValueError(f"no {basis}-based emission factor in the site file")
    return DEFAULT_EMISSION_FACTOR


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
