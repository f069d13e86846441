"""What an analysis reports: records of states, jobs, sessions, members, machines, days and the
site's balance, and the JSON document of ``wattelier analyze``.

Every record that holds an energy figure holds the same set of figures (``Figures``): the
energy [kWh] with its expanded uncertainty (analytics.uncertainty), the three coverage shares
(measured by power, backed by the meter's counter only, missing; ``coverage`` is the share
with any data), CO2e [kg] at the inventory factor it names (factor, vintage, basis), the
market-based CO2e beside it where the site declares a supplier factor, the CO2e at the grid's
hourly intensity where hourly factors are given (a different quantity: see analytics.carbon),
and the cost. Records that report time per state share one record of state times
(``StateTimes``). Records are built by keyword.

Times are Unix seconds (UTC); in JSON each time also appears as ISO 8601 (``start`` beside
``start_s``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from analytics.carbon import FactorInfo


@dataclass(kw_only=True)
class Figures:
    """The energy figures of one interval (or of a sum of intervals, for members and the site).

    energy_kwh: the reported energy [kWh] (power integral, counter-backed in power gaps,
        reconciled to the counter where there is one); energy_uncertainty_kwh: its expanded
        uncertainty (k = 2, about 95 %) [kWh], analytics.uncertainty.
    coverage: share of the time with any data [1] = coverage_power + coverage_counter;
        coverage_power: share measured by power samples; coverage_counter: share in power gaps
        backed by the counter only; coverage_missing: share with neither.
    co2e_kg, co2e_uncertainty_kg: CO2e at the location-based inventory factor `factor`
        (its vintage and basis beside) [kg CO2e].
    co2e_market_kg, co2e_market_uncertainty_kg, factor_market, factor_market_vintage: the
        market-based figure (GHG Protocol Scope 2 dual reporting), None without a market factor.
    co2e_grid_hourly_kg: CO2e at the grid's hourly consumption intensity (an insight on when
        energy was used, not an inventory figure), None without hourly factors.
    cost, cost_uncertainty: cost under the site's tariff [currency], None without one.
    """

    energy_kwh: float = 0.0
    energy_uncertainty_kwh: float = 0.0
    coverage: float = 0.0
    coverage_power: float = 0.0
    coverage_counter: float = 0.0
    coverage_missing: float = 1.0
    co2e_kg: float | None = None
    co2e_uncertainty_kg: float | None = None
    factor: str = ""
    factor_vintage: str = ""
    factor_basis: str = ""
    co2e_market_kg: float | None = None
    co2e_market_uncertainty_kg: float | None = None
    factor_market: str | None = None
    factor_market_vintage: str | None = None
    co2e_grid_hourly_kg: float | None = None
    cost: float | None = None
    cost_uncertainty: float | None = None


@dataclass(kw_only=True)
class StateTimes:
    """Time in each state [s] (ISO 22400-2 production times: processing is APT)."""

    processing_s: float = 0.0
    idle_s: float = 0.0
    standby_s: float = 0.0
    off_s: float = 0.0
    setup_s: float = 0.0
    fault_s: float = 0.0


@dataclass(kw_only=True)
class StateRecord:
    """One run of one state of one machine."""

    machine: str
    state: str
    start_s: float
    end_s: float
    energy_kwh: float


@dataclass(kw_only=True)
class JobRecord(Figures):
    """One job. energy_power_kwh: the power integral alone; energy_reconciled_kwh: the energy
    reconciled to the counter (None without a counter). outcome: the controller's (ended,
    aborted, ...), ``open`` when still running at the window's end; window_cut: "start",
    "end" or "both" when the window's edge cuts the job (its figures cover the inside part)."""

    machine: str
    member: str | None
    start_s: float
    end_s: float
    energy_power_kwh: float
    energy_reconciled_kwh: float | None
    program: str | None
    source: str
    outcome: str
    window_cut: str | None = None
    shared_services_kwh: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(kw_only=True)
class SessionRecord(Figures):
    """One session with what happened on its machine while it lasted (the part inside the
    window: window_cut says which edge cut it, start_s/end_s stay the session's own)."""

    machine: str
    member: str
    start_s: float
    end_s: float
    processing_s: float = 0.0
    idle_s: float = 0.0
    jobs: int = 0
    energy_power_kwh: float = 0.0
    shared_services_kwh: float = 0.0
    source: str = ""
    booking_id: str = ""
    window_cut: str | None = None


@dataclass(kw_only=True)
class UsageRecord(StateTimes, Figures):
    """One machine on one site-local day (the part of it inside the window), with KPIs.
    reconciliation_scale: reported energy over the power integral (None without a counter).

    sessions_energy_kwh: energy while sessions held the machine (energy_kwh -
    unattributed_energy_kwh) [kWh]; sessions_jobs_energy_kwh: the part of it in jobs [kWh], so
    that energy_kwh = sessions_jobs_energy_kwh + (sessions_energy_kwh -
    sessions_jobs_energy_kwh) + unattributed_energy_kwh. standby_outside_opening_kwh, _s,
    _cost: standby outside opening hours that day [kWh], [s], [currency] (None without opening
    hours; the machine's window figure is the sum of its days). threshold_*_w, thresholds_source,
    accuracy, is_service: the machine's state thresholds [W] and where they came from, its
    meter's accuracy class, whether it is a shared service (the same every day of a window)."""

    machine: str
    day_start_s: float
    date: str
    start_s: float
    end_s: float
    energy_power_kwh: float | None
    energy_counter_kwh: float | None
    reconciliation_scale: float | None
    planned_busy_s: float
    busy_s: float
    availability: float | None
    utilisation_efficiency: float | None
    allocation_efficiency: float | None
    unattributed_energy_kwh: float
    jobs: int
    sessions_energy_kwh: float = 0.0
    sessions_jobs_energy_kwh: float = 0.0
    standby_outside_opening_kwh: float | None = None
    standby_outside_opening_s: float | None = None
    standby_outside_opening_cost: float | None = None
    threshold_standby_w: float | None = None
    threshold_idle_w: float | None = None
    threshold_processing_w: float | None = None
    thresholds_source: str = ""
    accuracy: str = "unknown"
    is_service: bool = False


@dataclass(kw_only=True)
class MachineRecord(StateTimes, Figures):
    """Totals of one machine (or shared service) over the window."""

    machine: str
    is_service: bool
    energy_power_kwh: float | None
    energy_counter_kwh: float | None
    jobs: int
    job_source: str
    sessions: int
    unattributed_energy_kwh: float
    unattributed_s: float
    standby_outside_opening_kwh: float | None
    standby_outside_opening_s: float | None
    thresholds_w: tuple[float, float, float] | None
    thresholds_source: str
    accuracy: str = "unknown"
    shared_services_kwh: float = 0.0
    unallocated_service_kwh: float | None = None


@dataclass(kw_only=True)
class MemberRecord(Figures):
    """Totals of one member over the window (the sum of their sessions; the uncertainty is
    the sum of theirs, an upper bound)."""

    member: str
    processing_s: float = 0.0
    sessions: int = 0
    jobs: int = 0
    shared_services_kwh: float = 0.0


@dataclass(kw_only=True)
class BalanceRecord:
    """The site's balance over one period (a site-local day, or the window): the main meter's
    energy, the sum of the metered machines and services, and the difference, "not metered"
    (lighting, heating, sockets), with its share of the main meter's energy [1]."""

    period: str
    start_s: float
    end_s: float
    main_kwh: float
    main_uncertainty_kwh: float
    main_coverage: float
    metered_kwh: float
    metered_uncertainty_kwh: float
    not_metered_kwh: float
    not_metered_uncertainty_kwh: float
    not_metered_share: float | None


# ---------------------------------------------------------------------------------------------
# JSON

_EPOCH_DATE = dt.date(1970, 1, 1)


@functools.lru_cache(maxsize=4096)
def _iso_date(days_since_epoch: int) -> str:
    return (_EPOCH_DATE + dt.timedelta(days=days_since_epoch)).isoformat()


def iso_utc(time_s: float) -> str:
    """ISO 8601 UTC with a Z, to the millisecond (milliseconds only when the time has a
    fraction of a second). UTC days are 86 400 s (Unix time has no leap seconds), so the text
    is built from integer arithmetic: a week's results hold some 10 000 times."""
    milliseconds = round(round(float(time_s), 3) * 1000)
    seconds, milli = divmod(milliseconds, 1000)
    days, second = divmod(seconds, 86400)
    hours, rest = divmod(second, 3600)
    minutes, sec = divmod(rest, 60)
    text = f"{_iso_date(days)}T{hours:02d}:{minutes:02d}:{sec:02d}"
    return f"{text}.{milli:03d}Z" if milli else f"{text}Z"


def clean(value):
    """JSON-safe value: NaN and infinities become None, numpy scalars plain numbers."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value


_TIME_FIELDS = ("start_s", "end_s", "day_start_s")


@functools.lru_cache(maxsize=None)
def field_order(kind: type) -> tuple[str, ...]:
    """A record type's fields, its own first (identity, then what it adds), then those of its
    shared parts (Figures, StateTimes), so a JSON object starts with what it is about."""
    shared = set()
    for base in kind.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            shared.update(f.name for f in dataclasses.fields(base))
    names = [f.name for f in dataclasses.fields(kind)]
    return tuple([n for n in names if n not in shared] + [n for n in names if n in shared])


def records_json(records: list) -> list[dict]:
    """Records as JSON objects: each time field also as ISO 8601 (`start` beside `start_s`),
    NaN and infinities as None, numpy scalars as plain numbers. A week of results holds some
    7 000 records and twice as many times, many of them twice (a state ends where the next
    starts): each time is formatted once, and plain values skip clean."""
    iso = functools.lru_cache(maxsize=None)(iso_utc)
    out = []
    for record in records:
        item = {}
        values = vars(record)
        for key in field_order(type(record)):
            value = values[key]
            if key in _TIME_FIELDS:
                item[key[:-2]] = iso(value)
            kind = type(value)
            if kind is float:
                item[key] = value if value - value == 0.0 else None  # NaN and infinities fail
            elif kind is str or kind is int or kind is bool or value is None:
                item[key] = value
            else:
                item[key] = clean(value)
        out.append(item)
    return out


@dataclass
class AnalysisResult:
    """Everything one analysis found; ``to_json()`` is the document of ``wattelier analyze``.

    emission_factor: the location-based inventory factor (the headline);
    emission_factor_market: the market-based one, None unless the site declares it."""

    start_s: float
    end_s: float
    timezone: str
    machines: list[MachineRecord]
    sessions: list[SessionRecord]
    jobs: list[JobRecord]
    members: list[MemberRecord]
    state_intervals: list[StateRecord]
    usage: list[UsageRecord]
    emission_factor: FactorInfo
    tariff: str | None
    currency: str | None
    options: object
    warnings: list[str] = field(default_factory=list)
    emission_factor_market: FactorInfo | None = None
    balance: list[BalanceRecord] = field(default_factory=list)
    hourly_factors: str | None = None

    def to_json(self) -> dict:
        return {
            "start": iso_utc(self.start_s),
            "end": iso_utc(self.end_s),
            "timezone": self.timezone,
            "machines": records_json(self.machines),
            "sessions": records_json(self.sessions),
            "jobs": records_json(self.jobs),
            "members": records_json(self.members),
            "usage": records_json(self.usage),
            "states": records_json(self.state_intervals),
            "balance": records_json(self.balance),
            "emission_factor": self.emission_factor.to_json(),
            "emission_factor_market": (None if self.emission_factor_market is None
                                       else self.emission_factor_market.to_json()),
            "hourly_factors": self.hourly_factors,
            "tariff": self.tariff,
            "currency": self.currency,
            "options": clean(self.options.to_json()),
            "warnings": list(self.warnings),
        }
