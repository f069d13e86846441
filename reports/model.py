"""What a monthly impact report holds: the one model every format is made from.

The model is built from stored analysis results (reports.build) and rendered to HTML, PDF, CSV
and JSON (reports.render_*): every format shows the same numbers because each reads this model
and computes nothing of its own. ``Report.to_json()`` is ``report.json``.

Units are in the names: [kWh], [kg] CO2e, [h], shares [1] (0..1), money in the site's
currency (``SiteReport.currency``). Times are ISO 8601 UTC texts; dates are site-local
``YYYY-MM-DD``. A figure is None where it cannot be known (no tariff: no cost; no processing
time: no kWh per processing hour), never 0 in its place.

Uncertainties are expanded uncertainties (k = 2, about 95 %, GUM) as the analysis gives them
(analytics.uncertainty); a sum of records (a machine's days, a member's sessions, a site's
machines) adds them, an upper bound whatever their correlation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson

STATES = ("processing", "idle", "standby", "off", "setup", "fault")
"""Machine states in the order reports show them (docs/design.md, "Jobs, sessions and members")."""


@dataclass(kw_only=True)
class Period:
    """[start, end) of a report. month: "YYYY-MM" when the period is one site-local month."""

    start: str
    end: str
    start_s: float
    end_s: float
    timezone: str
    month: str | None = None


@dataclass(kw_only=True)
class Figures:
    """Energy, CO2e and cost of something over the period, each with its uncertainty, and the
    coverage split of the time behind them (measured by power, backed by the counter only,
    missing: shares adding up to 1)."""

    energy_kwh: float = 0.0
    energy_uncertainty_kwh: float = 0.0
    co2e_kg: float | None = None
    co2e_uncertainty_kg: float | None = None
    co2e_market_kg: float | None = None
    co2e_market_uncertainty_kg: float | None = None
    cost: float | None = None
    cost_uncertainty: float | None = None
    coverage_power: float = 0.0
    coverage_counter: float = 0.0
    coverage_missing: float = 1.0


@dataclass(kw_only=True)
class Totals(Figures):
    """A site's (or the network's) totals: the sum of its machines (services included)."""

    processing_h: float = 0.0
    jobs: int = 0
    sessions: int = 0
    members: int = 0


@dataclass(kw_only=True)
class Change:
    """This period against the previous one of the same length: relative change [1] (None
    where the previous value is 0 or the previous period was not analysed)."""

    energy: float | None = None
    co2e: float | None = None
    cost: float | None = None
    processing: float | None = None


@dataclass(kw_only=True)
class MachineRow(Figures):
    """One machine (or shared service) over the period.

    energy_kwh = jobs_kwh + sessions_other_kwh + unattributed_kwh: energy in its jobs, in
    sessions outside jobs, outside any session (of which standby outside opening hours).
    availability, utilisation_efficiency: ISO 22400-2 (APT/PBT, APT/AUBT), None without
    planned or busy time. standby_saving_per_year_*: what switching the machine off outside
    opening hours would save in a year at this period's rate (x 365.25 days / the period's
    days). thresholds_w: (standby, idle, processing) [W]; thresholds_source: "configured",
    "calibrated" or "controller"."""

    machine: str
    label: str = ""
    is_service: bool = False
    processing_h: float = 0.0
    state_h: dict[str, float] = field(default_factory=dict)
    availability: float | None = None
    utilisation_efficiency: float | None = None
    kwh_per_processing_h: float | None = None
    jobs: int = 0
    jobs_kwh: float = 0.0
    sessions_other_kwh: float = 0.0
    unattributed_kwh: float = 0.0
    standby_outside_opening_kwh: float | None = None
    standby_outside_opening_h: float | None = None
    standby_saving_per_year_kwh: float | None = None
    standby_saving_per_year_co2e_kg: float | None = None
    standby_saving_per_year_cost: float | None = None
    thresholds_w: list[float] | None = None
    thresholds_source: str = ""
    accuracy: str = "unknown"


@dataclass(kw_only=True)
class MemberRow(Figures):
    """One member over the period: held hours (sessions), processing hours, sessions, jobs."""

    member: str
    name: str = ""
    held_h: float = 0.0
    processing_h: float = 0.0
    sessions: int = 0
    jobs: int = 0


@dataclass(kw_only=True)
class SessionRow(Figures):
    machine: str
    member: str
    start: str
    end: str
    held_h: float = 0.0
    processing_h: float = 0.0
    jobs: int = 0
    window_cut: str | None = None


@dataclass(kw_only=True)
class JobRow(Figures):
    machine: str
    member: str | None
    start: str
    end: str
    duration_h: float = 0.0
    program: str | None = None
    outcome: str = ""
    window_cut: str | None = None


@dataclass(kw_only=True)
class DayRow:
    """One machine on one site-local day."""

    date: str
    machine: str
    energy_kwh: float = 0.0
    energy_uncertainty_kwh: float = 0.0
    processing_h: float = 0.0
    standby_outside_opening_kwh: float | None = None
    coverage_missing: float = 0.0


@dataclass(kw_only=True)
class BalanceRow:
    """The site's balance over a site-local day (period = the date) or the whole period
    (period = "period"): main meter, metered machines and services, "not metered"."""

    period: str
    main_kwh: float
    main_uncertainty_kwh: float
    metered_kwh: float
    metered_uncertainty_kwh: float
    not_metered_kwh: float
    not_metered_uncertainty_kwh: float
    not_metered_share: float | None


@dataclass(kw_only=True)
class FactorRow:
    """An emission factor as the results name it, with what the site's table says of it."""

    name: str
    vintage: str
    basis: str  # "location" or "market"
    value_kg_per_kwh: float | None = None
    zone: str = ""
    source: str = ""
    evidence: str = ""


@dataclass(kw_only=True)
class Method:
    """How the figures were made: factors, tariff, the uncertainty model and coverage."""

    emission_factors: list[FactorRow] = field(default_factory=list)
    tariff: str | None = None
    currency: str | None = None
    hourly_factors: str | None = None


@dataclass(kw_only=True)
class SiteReport:
    """One site over the period. analysed: every site-local day of the period has stored
    results; when False, `missing_dates` lists the days without and no figure is given (a
    half-analysed month is never reported as if it were whole)."""

    site: str
    timezone: str
    currency: str | None
    analysed: bool
    missing_dates: list[str] = field(default_factory=list)
    totals: Totals | None = None
    previous: Totals | None = None
    change: Change | None = None
    machines: list[MachineRow] = field(default_factory=list)
    members: list[MemberRow] = field(default_factory=list)
    sessions: list[SessionRow] = field(default_factory=list)
    jobs: list[JobRow] = field(default_factory=list)
    days: list[DayRow] = field(default_factory=list)
    balance: list[BalanceRow] = field(default_factory=list)
    method: Method = field(default_factory=Method)


@dataclass(kw_only=True)
class SiteFile:
    site: str
    file: str  # the file's name, not its path (the report may travel)
    sha256: str


@dataclass(kw_only=True)
class Manifest:
    """What the report was made from, so that the same inputs give the same report: a re-run
    is byte-identical apart from generated_at and queried_at."""

    wattelier_version: str
    site_files: list[SiteFile]
    store: str
    window_start: str
    window_end: str
    results_sha256: str
    queried_at: str = ""
    generated_at: str = ""


@dataclass(kw_only=True)
class Report:
    language: str  # "fr" or "en"
    period: Period
    previous_period: Period | None
    sites: list[SiteReport]
    network: Totals | None  # the sum of the analysed sites, when there are several
    manifest: Manifest

    def to_json(self) -> dict[str, Any]:
        """The report as JSON values (dicts, lists, texts, numbers, None): ``report.json``
        before its keys are sorted (reports.render_json). orjson walks the dataclasses in C
        (0.1 s for the 20-site network's report, where dataclasses.asdict deep-copied every
        value in 1.3 s)."""
        return orjson.loads(orjson.dumps(self))


def field_names(kind: type) -> tuple[str, ...]:
    """The fields of a model class, in definition order."""
    return FIELD_NAMES.get(kind) or tuple(f.name for f in dataclasses.fields(kind))


def fields_of(value: Any) -> dict[str, Any]:
    """A model object's fields as a dict (not recursing): orjson's ``default`` for the
    dataclasses it is asked to pass through (OPT_PASSTHROUGH_DATACLASS), so that it sorts
    their keys (it writes a dataclass's fields in definition order); anything else is not
    JSON, a TypeError."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"{type(value).__name__} is not JSON")
    return {name: getattr(value, name) for name in field_names(type(value))}


FIELD_NAMES: dict[type, tuple[str, ...]] = {
    kind: tuple(f.name for f in dataclasses.fields(kind))
    for kind in (Period, Figures, Totals, Change, MachineRow, MemberRow, SessionRow, JobRow,
                 DayRow, BalanceRow, FactorRow, Method, SiteReport, SiteFile, Manifest, Report)}
"""Each model class's field names, in definition order, read once."""
