"""The energy figures of intervals of one machine: energy with its uncertainty, the coverage
split, CO2e at the inventory factors, CO2e at the grid's hourly intensity, and cost
(analytics.results.Figures, one array per field).

The energy a machine reports (``MachineEnergy``) is the power integral where power is dense,
the counter's delta in the power gaps it brackets (analytics.energy.GapFilledCurve), reconciled
to the counter locally where there is one: within its resolution at its first and last reading
of each hour and at each backed gap's ends (analytics.energy.LocalReconciled and
reconciliation_knots, applied by analytics.machine_steps.machine_energy). The interval
figures follow from it: CO2e = energy x factor (the factor is one number per analysis, chosen
by analytics.window), the hourly CO2e from the grid's intensity hour by hour
(analytics.carbon.co2e_curve), the cost from the tariff's pieces (analytics.carbon.cost_curve),
and the uncertainty from analytics.uncertainty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analytics.arrays import clamp
from analytics.carbon import FactorInfo, co2e_curve, cost_curve
from analytics.energy import CounterCurve, Cumulative, EnergyCurve, GapFilledCurve
from analytics.uncertainty import carried, expanded_uncertainty_kwh
from analytics.window import AnalysisWindow


class Zero:
    """A cumulative quantity that is always zero (a machine without data)."""

    def at(self, time_s) -> np.ndarray:
        return np.zeros(np.shape(time_s))


def between(cumulative: Cumulative, a, b) -> np.ndarray:
    """The quantity of a cumulative in each interval [a, b); the cumulative is evaluated once,
    at both ends together (a machine's figures take some thirty such calls on small arrays,
    where each numpy operation's fixed cost is what counts)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ends = np.asarray(cumulative.at(np.concatenate([a.ravel(), b.ravel()])), dtype=np.float64)
    return (ends[a.size:] - ends[:a.size]).reshape(b.shape)


@dataclass
class MachineEnergy:
    """One machine's energy curve step: what is measured and what is reported.

    power: the power integral (analytics.energy.EnergyCurve); counter: the meter's counter;
    reported: the cumulative energy reported [kWh]; filled: the power curve with the counter's
    delta in gaps, None without both power and counter; day_power_kwh, day_counter_kwh,
    day_scale: the per-day reconciliation table, None without it; resolution_kwh: the counter's
    step; relative_accuracy: the meter's class as a share (None: unknown); peak_power_w: the
    rated power, else the highest power seen, else 0 (bounds the missing share's energy).
    """

    power: EnergyCurve
    counter: CounterCurve
    reported: Cumulative
    filled: GapFilledCurve | None
    day_table: dict[str, np.ndarray] | None
    resolution_kwh: float | None
    relative_accuracy: float | None
    peak_power_w: float

    @property
    def has_power(self) -> bool:
        return len(self.power) > 0

    @property
    def has_counter(self) -> bool:
        return len(self.counter) > 0

    @property
    def measured(self) -> Cumulative:
        """What the power-only energy and its coverage come from: power, else the counter."""
        return self.power if self.has_power else self.counter

    def coverage(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        """(share measured by power, share backed by the counter only) of each interval [1]."""
        if self.filled is not None:
            return self.filled.shares(a, b)
        if self.has_power:
            return self.power.between(a, b)[1], np.zeros(len(np.atleast_1d(a)))
        if self.has_counter:
            return np.zeros(len(np.atleast_1d(a))), self.counter.between(a, b)[1]
        return np.zeros(len(np.atleast_1d(a))), np.zeros(len(np.atleast_1d(a)))

    def placement_kwh(self, a, b) -> np.ndarray:
        """Limit of where the counter-backed energy of partly covered gaps lies [kWh]."""
        if self.filled is None:
            return np.zeros(len(np.atleast_1d(a)))
        return self.filled.placement_limit_kwh(a, b)


@dataclass
class Pricing:
    """How one machine's reported energy turns into CO2e and cost: cumulative CO2e at the
    grid's hourly intensity (None without hourly factors) and cost (None without a tariff)."""

    factor: FactorInfo
    factor_market: FactorInfo | None
    co2e_hourly: Cumulative | None
    cost: Cumulative | None
    price_per_kwh: float = 0.0  # the tariff's base price, for the cost uncertainty of no energy

    @classmethod
    def of(cls, energy: Cumulative, window: AnalysisWindow) -> "Pricing":
        hourly = (co2e_curve(energy, window.factor, *window.hourly) if window.hourly is not None
                  else None)
        cost = (cost_curve(energy, window.tariff, window.tz, window.start_s, window.end_s)
                if window.tariff is not None else None)
        return cls(window.factor, window.factor_market, hourly, cost,
                   window.tariff.price_per_kwh if window.tariff is not None else 0.0)


@dataclass
class FigureArrays:
    """The analytics.results.Figures of n intervals, one array per field."""

    energy_kwh: np.ndarray
    energy_uncertainty_kwh: np.ndarray
    coverage_power: np.ndarray
    coverage_counter: np.ndarray
    co2e_kg: np.ndarray
    co2e_uncertainty_kg: np.ndarray
    co2e_market_kg: np.ndarray | None
    co2e_market_uncertainty_kg: np.ndarray | None
    co2e_grid_hourly_kg: np.ndarray | None
    cost: np.ndarray | None
    cost_uncertainty: np.ndarray | None
    factor: FactorInfo
    factor_market: FactorInfo | None

    def __len__(self) -> int:
        return len(self.energy_kwh)

    def part(self, rows: slice) -> FigureArrays:
        """The figures of some of the intervals (every array is per interval, so the figures
        of several sets of intervals are computed in one call and parted)."""
        return dataclasses.replace(self, **{f.name: value[rows] for f in dataclasses.fields(self)
                                            if isinstance(value := getattr(self, f.name), np.ndarray)})

    def at(self, i: int) -> dict:
        """Keyword arguments of the Figures of interval i."""
        power = float(self.coverage_power[i])
        counter = float(self.coverage_counter[i])
        market = self.factor_market
        return {
            "energy_kwh": float(self.energy_kwh[i]),
            "energy_uncertainty_kwh": float(self.energy_uncertainty_kwh[i]),
            "coverage": min(power + counter, 1.0),
            "coverage_power": power,
            "coverage_counter": counter,
            "coverage_missing": max(1.0 - power - counter, 0.0),
            "co2e_kg": float(self.co2e_kg[i]),
            "co2e_uncertainty_kg": float(self.co2e_uncertainty_kg[i]),
            "factor": self.factor.name,
            "factor_vintage": self.factor.vintage,
            "factor_basis": self.factor.basis,
            "co2e_market_kg": None if self.co2e_market_kg is None else float(self.co2e_market_kg[i]),
            "co2e_market_uncertainty_kg": (None if self.co2e_market_uncertainty_kg is None
                                           else float(self.co2e_market_uncertainty_kg[i])),
            "factor_market": None if market is None else market.name,
            "factor_market_vintage": None if market is None else market.vintage,
            "co2e_grid_hourly_kg": (None if self.co2e_grid_hourly_kg is None
                                    else float(self.co2e_grid_hourly_kg[i])),
            "cost": None if self.cost is None else float(self.cost[i]),
            "cost_uncertainty": None if self.cost_uncertainty is None else float(self.cost_uncertainty[i]),
        }


def interval_figures(energy: MachineEnergy, pricing: Pricing, a, b,
                     total: Callable[[Cumulative], np.ndarray] | None = None) -> FigureArrays:
    """The figures of intervals [a, b) of one machine.

    total: how a cumulative quantity is summed over the intervals (default: its increase
    over each; sessions pass analytics.attribution.session_totals, which shares overlaps).
    """
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    total = total or (lambda cumulative: between(cumulative, a, b))
    e = np.asarray(total(energy.reported), dtype=np.float64)
    power_share, counter_share = energy.coverage(a, b)
    missing_share = clamp(1.0 - power_share - counter_share, 0.0, 1.0)
    missing_kwh = missing_share * (b - a) * energy.peak_power_w / 3.6e6
    tied = np.full(len(a), energy.has_counter)
    u = expanded_uncertainty_kwh(e, energy.relative_accuracy, energy.resolution_kwh, tied,
                                 energy.placement_kwh(a, b), missing_kwh)
    f = pricing.factor.kg_co2e_per_kwh
    market = pricing.factor_market
    cost = None if pricing.cost is None else np.asarray(total(pricing.cost), dtype=np.float64)
    return FigureArrays(
        energy_kwh=e, energy_uncertainty_kwh=u, coverage_power=power_share,
        coverage_counter=counter_share, co2e_kg=e * f, co2e_uncertainty_kg=u * f,
        co2e_market_kg=None if market is None else e * market.kg_co2e_per_kwh,
        co2e_market_uncertainty_kg=None if market is None else u * market.kg_co2e_per_kwh,
        co2e_grid_hourly_kg=(None if pricing.co2e_hourly is None
                             else np.asarray(total(pricing.co2e_hourly), dtype=np.float64)),
        cost=cost, cost_uncertainty=None if cost is None else carried(u, cost, e, pricing.price_per_kwh),
        factor=pricing.factor, factor_market=market)
