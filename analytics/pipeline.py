"""The analysis pipeline: machines' data and sessions in, energy, time, CO2e and cost per state,
job, session, member and day out.

``analyze(machines, sessions, site, start_s, end_s, options)`` runs, for each machine:

1. states: from power with the site's thresholds or calibrated ones, the controller on top
   when connected (analytics.states);
2. energy: the power curve (analytics.energy, trapezoid, gaps not bridged, a step in power at
   each state change); where the meter's counter is also there, each power gap it brackets gets
   the counter's delta across it, and the curve is reconciled per site-local day with the
   counter (both figures kept);
3. jobs: controller program runs, else processing merged across short pauses (analytics.jobs);
4. attribution: jobs to sessions, session totals, unattributed energy, standby outside opening
   hours, shared services by processing time (analytics.attribution);
5. days in the site's time zone with ISO 22400-2 KPIs (analytics.kpi, analytics.periods);
6. CO2e and cost of everything (analytics.carbon).

Energies reported as ``energy_kwh`` are the reconciled ones where a counter exists, else the
power-based ones; ``energy_power_kwh`` (and ``energy_counter_kwh`` per machine and day) are
kept beside them. A machine with a counter and no power samples gets its energy from the
counter (no states, no power-based jobs).

Window rules: a job belongs to the window its start falls in (a job that started before the
window was reported by the previous one); a job still running at the window's end ends there
with outcome ``open``; sessions are reported with their own start and end, and their figures
cover their part inside the window; a machine's energy over the window is cut exactly at the
window's ends.

Where the analysis cuts a machine's energy (window ends, days, sessions, opening hours, tariff
and hourly-factor edges, controller changes) is listed again in
analytics.rollup_plan.CutContext.cut_times, which decides what rollups may stand in
for: a new cut here goes there too (tests/test_analyze_stored.py compares both paths).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import zoneinfo
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from analytics import kpi
from analytics.attribution import allocate_service, assign_jobs, session_totals
from analytics.carbon import (FactorInfo, choose_emission_factor, choose_tariff, co2e_curve,
                              cost_curve, reporting_year)
from analytics.energy import (DEFAULT_MAX_GAP_S, CounterCurve, Cumulative, EnergyCurve,
                              GapFilledCurve, reconcile, step_at_changes)
from analytics.intervals import CoveredTime, complement, intersect
from analytics.jobs import DEFAULT_MERGE_GAP_S, JobIntervals, jobs_from_controller, jobs_from_states
from analytics.periods import clipped_periods
from analytics.records import MachineData, Session
from analytics.states import (DEFAULT_HYSTERESIS, DEFAULT_MIN_DWELL_S, FAULT, IDLE, OFF,
                              PROCESSING, SETUP, STANDBY, StateIntervals, calibrate_from_histogram,
                              calibrate_thresholds, overlay_controller, states_from_power)
from devices.calendar import opening_windows
from devices.site import Site
from devices.vocabulary import MACHINE_STATES

DEFAULT_TIMEZONE = "Europe/Paris"


@dataclass
class AnalysisOptions:
    """Settings of one analysis.

    merge_gap_s: pauses shorter than this join processing runs into one job [s] (power-based
        jobs only; scale it by 1/pace for a paced simulation).
    max_gap_s: longest step between power samples that is integrated [s] (analytics.energy).
    min_dwell_s: shortest run of a state that counts [s].
    hysteresis: band below each power threshold, as a share of it.
    min_job_s: power-based jobs shorter than this are dropped [s].
    reconcile: scale power-based energy to the counter per day where both exist.
    allocate_shared_services: split shared services' energy over the machines they serve by
        processing time: reported as shared_services_kwh beside each figure; the CO2e and cost
        of sessions, jobs and members include the share; machines keep their own CO2e and cost
        (the service's record holds its whole energy, unallocated_service_kwh the part no
        machine took), so machine totals never count a kWh twice.
    emission_factor_kg_per_kwh: overrides the site's factor [kg CO2e/kWh].
    emission_basis: "location" (default) or "market".
    hourly_emission_factors: (time_s, kg_co2e_per_kwh) arrays: each factor holds from its time
        for an hour or until the next one; outside it the constant factor applies.
    tariff: name of the site's tariff (default: "default", else the first).
    timezone: the site's zone when no site is given.
    """

    merge_gap_s: float = DEFAULT_MERGE_GAP_S
    max_gap_s: float = DEFAULT_MAX_GAP_S
    min_dwell_s: float = DEFAULT_MIN_DWELL_S
    hysteresis: float = DEFAULT_HYSTERESIS
    min_job_s: float = 0.0
    reconcile: bool = True
    allocate_shared_services: bool = False
    emission_factor_kg_per_kwh: float | None = None
    emission_basis: str = "location"
    hourly_emission_factors: tuple[np.ndarray, np.ndarray] | None = None
    tariff: str | None = None
    timezone: str = DEFAULT_TIMEZONE

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "hourly_emission_factors"}
        out["hourly_emission_factors"] = self.hourly_emission_factors is not None
        return out


@dataclass
class StateRecord:
    """One run of one state of one machine."""

    machine: str
    state: str
    start_s: float
    end_s: float
    energy_kwh: float


@dataclass
class JobRecord:
    """One job: energy_kwh is the reconciled energy where a counter exists, else power-based."""

    machine: str
    member: str | None
    start_s: float
    end_s: float
    energy_kwh: float
    energy_power_kwh: float
    energy_reconciled_kwh: float | None
    program: str | None
    coverage: float
    source: str
    outcome: str
    co2e_kg: float | None = None
    cost: float | None = None
    shared_services_kwh: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class SessionRecord:
    """One session with what happened on its machine while it lasted (inside the window)."""

    machine: str
    member: str
    start_s: float
    end_s: float
    energy_kwh: float
    coverage: float
    processing_s: float
    idle_s: float
    co2e_kg: float | None
    cost: float | None
    jobs: int
    energy_power_kwh: float
    shared_services_kwh: float = 0.0
    source: str = ""
    booking_id: str = ""


@dataclass
class UsageRecord:
    """One machine on one site-local day (the part of it inside the window), with KPIs."""

    machine: str
    day_start_s: float
    date: str
    start_s: float
    end_s: float
    energy_kwh: float
    energy_power_kwh: float | None
    energy_counter_kwh: float | None
    reconciliation_scale: float | None
    coverage: float
    processing_s: float
    idle_s: float
    standby_s: float
    off_s: float
    setup_s: float
    fault_s: float
    planned_busy_s: float
    busy_s: float
    availability: float | None
    utilisation_efficiency: float | None
    allocation_efficiency: float | None
    unattributed_energy_kwh: float
    co2e_kg: float | None
    cost: float | None
    jobs: int


@dataclass
class MachineRecord:
    """Totals of one machine (or shared service) over the window."""

    machine: str
    is_service: bool
    energy_kwh: float
    energy_power_kwh: float | None
    energy_counter_kwh: float | None
    coverage: float
    processing_s: float
    idle_s: float
    standby_s: float
    off_s: float
    setup_s: float
    fault_s: float
    jobs: int
    job_source: str
    sessions: int
    unattributed_energy_kwh: float
    unattributed_s: float
    standby_outside_opening_kwh: float | None
    standby_outside_opening_s: float | None
    thresholds_w: tuple[float, float, float] | None
    thresholds_source: str
    co2e_kg: float | None
    cost: float | None
    shared_services_kwh: float = 0.0
    unallocated_service_kwh: float | None = None


@dataclass
class MemberRecord:
    """Totals of one member over the window (the sum of their sessions)."""

    member: str
    energy_kwh: float
    processing_s: float
    co2e_kg: float | None
    cost: float | None
    sessions: int
    jobs: int
    shared_services_kwh: float = 0.0


def _add_shares(records, kwh, co2e_kg, cost) -> None:
    """Add a shared service's allocated energy [kWh], CO2e [kg] and cost (or None) to each
    record (sessions or jobs), in order."""
    for k, rec in enumerate(records):
        rec.shared_services_kwh += float(kwh[k])
        rec.co2e_kg = (rec.co2e_kg or 0.0) + float(co2e_kg[k])
        if cost is not None:
            rec.cost = (rec.cost or 0.0) + float(cost[k])


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


def _clean(value):
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
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


_TIME_FIELDS = ("start_s", "end_s", "day_start_s")


def _records_json(records: list) -> list[dict]:
    """Records as JSON objects: each time field also as ISO 8601 (`start` beside `start_s`),
    NaN and infinities as None, numpy scalars as plain numbers. A week of results holds some
    7 000 records and twice as many times, many of them twice (a state ends where the next
    starts): each time is formatted once, and plain values skip _clean."""
    iso = functools.lru_cache(maxsize=None)(iso_utc)
    out = []
    for record in records:
        item = {}
        for key, value in vars(record).items():  # the fields, in order; _clean copies lists and dicts
            if key in _TIME_FIELDS:
                item[key[:-2]] = iso(value)
            kind = type(value)
            if kind is float:
                item[key] = value if value - value == 0.0 else None  # NaN and infinities fail
            elif kind is str or kind is int or kind is bool or value is None:
                item[key] = value
            else:
                item[key] = _clean(value)
        out.append(item)
    return out


@dataclass
class AnalysisResult:
    """Everything one analysis found; ``to_json()`` is the document of ``wattelier analyze``."""

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
    options: AnalysisOptions
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "start": iso_utc(self.start_s),
            "end": iso_utc(self.end_s),
            "timezone": self.timezone,
            "machines": _records_json(self.machines),
            "sessions": _records_json(self.sessions),
            "jobs": _records_json(self.jobs),
            "members": _records_json(self.members),
            "usage": _records_json(self.usage),
            "states": _records_json(self.state_intervals),
            "emission_factor": self.emission_factor.to_json(),
            "tariff": self.tariff,
            "currency": self.currency,
            "options": _clean(self.options.to_json()),
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------
# Per machine


class _Zero:
    """A cumulative quantity that is always zero (a machine without data)."""

    def at(self, time_s) -> np.ndarray:
        return np.zeros(np.shape(time_s))


def _between(cumulative: Cumulative, a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.asarray(cumulative.at(b)) - np.asarray(cumulative.at(a))


@dataclass
class _Work:
    """What one machine's analysis keeps for the later steps (members, services); the energy
    curve only for a shared service (the machines' curves are let go once they are analysed)."""

    energy: Cumulative | None
    processing: tuple[np.ndarray, np.ndarray]
    session_index: np.ndarray  # indexes into the result's session list
    job_index: np.ndarray
    machine_record: MachineRecord | None = None


@dataclass
class MachineParts:
    """What the analysis of one machine adds to the result (indexes local to these lists)."""

    states: list[StateRecord] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    sessions: list[SessionRecord] = field(default_factory=list)
    usage: list[UsageRecord] = field(default_factory=list)
    records: list[MachineRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    work: dict[str, _Work] = field(default_factory=dict)


class Analysis:
    """One analysis of a window: machine() per machine (anywhere), absorb() each machine's
    parts in the site's order, then finish(). analyze() does all three in one process."""

    def __init__(self, machines: Iterable[MachineData], sessions: list[Session], site: Site | None,
                 start_s: float, end_s: float, options: AnalysisOptions) -> None:
        if not end_s > start_s:
            raise ValueError(f"the window must end after it starts: {start_s} .. {end_s}")
        self.machines = machines
        self.all_sessions = sorted(sessions, key=lambda s: (s.start_s, s.machine, s.member))
        self.site = site
        self.start_s = float(start_s)
        self.end_s = float(end_s)
        self.options = options
        self.tz_name = site.site.timezone if site is not None else options.timezone
        self.tz = zoneinfo.ZoneInfo(self.tz_name)
        year = reporting_year(self.tz, self.start_s)  # the factor's: see analytics.carbon
        self.factor = choose_emission_factor(site, options.emission_basis,
                                             options.emission_factor_kg_per_kwh, year)
        chosen = choose_tariff(site, options.tariff)
        self.tariff_name, self.tariff = chosen if chosen else (None, None)
        self.warnings: list[str] = []
        last_year = reporting_year(self.tz, max(self.start_s, self.end_s - 1e-3))  # the end is excluded
        if last_year != year and options.emission_factor_kg_per_kwh is None:
            later = choose_emission_factor(site, options.emission_basis, None, last_year)
            if later != self.factor:
                self.warnings.append(
                    f"the window spans {year} to {last_year}: CO2e uses the factor for {year} "
                    f"({self.factor.kg_co2e_per_kwh:g} kg CO2e/kWh, vintage {self.factor.vintage}) "
                    f"throughout, {last_year} has {later.kg_co2e_per_kwh:g} (vintage {later.vintage}); "
                    "analyse each year on its own for each year's factor")
        if site is not None:
            windows = opening_windows(site, self.start_s, self.end_s)
            self.opening = (np.array([w[0] for w in windows]), np.array([w[1] for w in windows]))
        else:
            self.opening = None
        self.day_start, self.day_a, self.day_b = clipped_periods(self.tz, self.start_s, self.end_s, "day")
        self.day_edges = np.concatenate([self.day_a, self.day_b[-1:]])
        self.states: list[StateRecord] = []
        self.jobs: list[JobRecord] = []
        self.sessions: list[SessionRecord] = []
        self.usage: list[UsageRecord] = []
        self.records: list[MachineRecord] = []
        self.work: dict[str, _Work] = {}

    # -- helpers -----------------------------------------------------------------------------
    def _thresholds(self, md: MachineData) -> tuple[tuple[float, float, float], str]:
        if md.thresholds_w is not None:
            return tuple(float(x) for x in md.thresholds_w), "given"
        machine = self.site.machines.get(md.name) if self.site is not None else None
        if machine is not None and machine.thresholds is not None:
            th = machine.thresholds
            return (th.standby_w, th.idle_w, th.processing_w), "site file"
        rated = md.rated_power_w or (machine.rated_power_w if machine is not None else None)
        calibration = (calibrate_from_histogram(md.power_histogram, rated) if md.power_histogram is not None
                       else calibrate_thresholds(md.power_w, rated))
        return calibration.thresholds_w, f"calibrated: {calibration.method}"

    def _is_service(self, md: MachineData) -> bool:
        return md.is_service or (self.site is not None and md.name in self.site.services)

    # -- one machine ---------------------------------------------------------------------------
    def machine(self, md: MachineData) -> MachineParts:
        """Analyse one machine on its own (it may run in another process: see absorb)."""
        out = MachineParts()
        o = self.options
        name = md.name
        start, end = self.start_s, self.end_s
        is_service = self._is_service(md)

        # states (power first, the controller on top); power steps at each change (energy.py)
        thresholds, th_source = (None, "no power data")
        states = StateIntervals.empty()
        if len(md.power_w) and np.isfinite(md.power_w).any():
            thresholds, th_source = self._thresholds(md)
            states = states_from_power(md.power_time_s, md.power_w, thresholds, o.hysteresis,
                                       o.min_dwell_s, o.max_gap_s)
        ctl = md.controller
        has_controller = ctl is not None and len(ctl.time_s) > 0
        if has_controller:
            states = overlay_controller(states, ctl.time_s, ctl.execution, ctl.mode, start, end)
        contiguous = states.start_s[1:] == states.end_s[:-1]
        curve = EnergyCurve(*step_at_changes(md.power_time_s, md.power_w, states.start_s[1:][contiguous],
                                             o.max_gap_s), o.max_gap_s)
        has_power = len(curve) > 0
        counter = CounterCurve(md.counter_time_s, md.energy_import_kwh, md.counter_rollover_kwh)
        has_counter = len(counter) > 0
        day_table = None
        if has_power and has_counter and o.reconcile:
            # power gaps bracketed by counter readings hold the counter's delta (energy.py),
            # then each day is scaled to its counter delta
            energy, day_table = reconcile(GapFilledCurve(curve, counter), counter, self.day_edges,
                                          md.counter_resolution_kwh)
        elif has_power:
            energy = curve
        elif has_counter:
            energy = counter
        else:
            energy = _Zero()
            out.warnings.append(f"{name}: no power samples and no counter readings")
        measured = curve if has_power else counter  # what coverage is the share of

        def coverage_of(a, b) -> np.ndarray:
            return measured.between(a, b)[1]

        co2e = co2e_curve(energy, self.factor, *(o.hourly_emission_factors or (None, None)))
        cost = cost_curve(energy, self.tariff, self.tz, start, end) if self.tariff else None

        states = states.clip(start, end)
        energies = _between(energy, states.start_s, states.end_s)
        for a, b, c, e in zip(states.start_s, states.end_s, states.code, energies):
            out.states.append(StateRecord(name, MACHINE_STATES[int(c)], float(a), float(b), float(e)))
        time_in = {code: CoveredTime(*states.of(code)) for code in range(len(MACHINE_STATES))}

        # jobs
        if is_service:
            jobs = JobIntervals.empty("none")
        elif has_controller:
            jobs = jobs_from_controller(ctl.time_s, ctl.execution, ctl.program, end)
        else:
            data_end = min(end, float(curve.time_s[-1])) if has_power else end
            jobs = jobs_from_states(states, o.merge_gap_s, data_end, o.min_job_s)
        keep = (jobs.start_s >= start) & (jobs.start_s < end)
        job_a = jobs.start_s[keep]
        job_b = np.minimum(jobs.end_s[keep], end)
        programs = [p for p, k in zip(jobs.program, keep) if k]
        outcomes = [("open" if b_orig > end else out) for out, k, b_orig
                    in zip(jobs.outcome, keep, jobs.end_s) if k]

        # sessions of this machine (the part inside the window)
        mine = [s for s in self.all_sessions if s.machine == name and s.end_s > start and s.start_s < end]
        s_a = np.array([max(s.start_s, start) for s in mine], dtype=np.float64)
        s_b = np.array([min(s.end_s, end) for s in mine], dtype=np.float64)
        s_energy = session_totals(s_a, s_b, energy)
        s_power = session_totals(s_a, s_b, curve if has_power else energy)
        s_processing = session_totals(s_a, s_b, time_in[PROCESSING])
        s_idle = session_totals(s_a, s_b, time_in[IDLE])
        s_co2e = session_totals(s_a, s_b, co2e)
        s_cost = session_totals(s_a, s_b, cost) if cost is not None else None
        s_cov = coverage_of(s_a, s_b)
        owner = assign_jobs(job_a, job_b, np.array([s.start_s for s in mine]),
                            np.array([s.end_s for s in mine]))
        first_session = len(out.sessions)
        for i, s in enumerate(mine):
            out.sessions.append(SessionRecord(
                name, s.member, float(s.start_s), float(s.end_s), float(s_energy[i]),
                float(s_cov[i]), float(s_processing[i]), float(s_idle[i]), float(s_co2e[i]),
                None if s_cost is None else float(s_cost[i]), int(np.sum(owner == i)),
                float(s_power[i]), 0.0, s.source, s.booking_id))

        # job energies
        first_job = len(out.jobs)
        if len(job_a):
            if has_power:
                j_power, j_cov = curve.between(job_a, job_b)
            else:
                j_power, j_cov = counter.between(job_a, job_b)
            j_rec = _between(energy, job_a, job_b) if day_table is not None else None
            j_co2e = _between(co2e, job_a, job_b)
            j_cost = _between(cost, job_a, job_b) if cost is not None else None
            for i in range(len(job_a)):
                member = mine[owner[i]].member if owner[i] >= 0 else None
                rec = None if j_rec is None else float(j_rec[i])
                out.jobs.append(JobRecord(
                    name, member, float(job_a[i]), float(job_b[i]),
                    rec if rec is not None else float(j_power[i]), float(j_power[i]), rec,
                    programs[i], float(j_cov[i]), jobs.source, outcomes[i], float(j_co2e[i]),
                    None if j_cost is None else float(j_cost[i])))

        # totals over the window
        total = float(_between(energy, [start], [end])[0])
        total_power = float(curve.between([start], [end])[0][0]) if has_power else None
        total_counter = float(counter.between([start], [end])[0][0]) if has_counter else None
        coverage = float(coverage_of([start], [end])[0])
        held = CoveredTime(s_a, s_b)
        unattributed_kwh = total - float(np.sum(s_energy))
        unattributed_s = (end - start) - held.total_s
        standby_out_kwh = standby_out_s = None
        if self.opening is not None:
            closed = complement(*self.opening, start, end)
            pieces = intersect(*states.of(STANDBY), *closed)
            standby_out_kwh = float(np.sum(_between(energy, *pieces)))
            standby_out_s = float(np.sum(pieces[1] - pieces[0]))
        record = MachineRecord(
            name, is_service, total, total_power, total_counter, coverage,
            time_in[PROCESSING].total_s, time_in[IDLE].total_s, time_in[STANDBY].total_s,
            time_in[OFF].total_s, time_in[SETUP].total_s, time_in[FAULT].total_s,
            len(job_a), jobs.source, len(mine), unattributed_kwh, unattributed_s,
            standby_out_kwh, standby_out_s, thresholds, th_source,
            float(_between(co2e, [start], [end])[0]),
            None if cost is None else float(_between(cost, [start], [end])[0]))
        out.records.append(record)

        # days
        a, b = self.day_a, self.day_b
        if len(a):
            d_energy = _between(energy, a, b)
            d_power = curve.between(a, b)[0] if has_power else None
            d_counter = counter.between(a, b)[0] if has_counter else None
            d_cov = coverage_of(a, b)
            d_time = {code: time_in[code].between(a, b) for code in time_in}
            d_pbt = (CoveredTime(*self.opening).between(a, b) if self.opening is not None
                     else np.zeros(len(a)))
            d_aubt = held.between(a, b)
            d_sessions = np.array([float(np.sum(session_totals(np.clip(s_a, x, y), np.clip(s_b, x, y), energy)))
                                   for x, y in zip(a, b)]) if len(mine) else np.zeros(len(a))
            d_co2e = _between(co2e, a, b)
            d_cost = _between(cost, a, b) if cost is not None else None
            d_jobs = np.histogram(job_a, bins=np.concatenate([a, b[-1:]]))[0] if len(job_a) else np.zeros(len(a), int)
            apt = d_time[PROCESSING]
            avail = kpi.availability(apt, d_pbt)
            util = kpi.utilisation_efficiency(apt, d_aubt)
            alloc = kpi.allocation_efficiency(d_aubt, d_pbt)
            for k in range(len(a)):
                scale = float(day_table["scale"][k]) if day_table is not None else None
                out.usage.append(UsageRecord(
                    name, float(self.day_start[k]),
                    dt.datetime.fromtimestamp(self.day_start[k], self.tz).date().isoformat(),
                    float(a[k]), float(b[k]), float(d_energy[k]),
                    None if d_power is None else float(d_power[k]),
                    None if d_counter is None else float(d_counter[k]), scale, float(d_cov[k]),
                    float(d_time[PROCESSING][k]), float(d_time[IDLE][k]), float(d_time[STANDBY][k]),
                    float(d_time[OFF][k]), float(d_time[SETUP][k]), float(d_time[FAULT][k]),
                    float(d_pbt[k]), float(d_aubt[k]), _finite(avail[k]), _finite(util[k]),
                    _finite(alloc[k]), float(d_energy[k] - d_sessions[k]), float(d_co2e[k]),
                    None if d_cost is None else float(d_cost[k]), int(d_jobs[k])))

        out.work[name] = _Work(energy if is_service else None, states.of(PROCESSING),
                               np.arange(first_session, len(out.sessions)),
                               np.arange(first_job, len(out.jobs)), record)
        return out

    def absorb(self, parts: MachineParts) -> None:
        """Add one machine's results (machine() here or in a worker process) to the analysis."""
        for name, work in parts.work.items():
            work.session_index = work.session_index + len(self.sessions)
            work.job_index = work.job_index + len(self.jobs)
            self.work[name] = work
        self.states += parts.states
        self.jobs += parts.jobs
        self.sessions += parts.sessions
        self.usage += parts.usage
        self.records += parts.records
        self.warnings += parts.warnings

    # -- shared services -----------------------------------------------------------------------
    def services(self) -> None:
        if self.site is None:
            if any(w.machine_record.is_service for w in self.work.values()):
                self.warnings.append("shared services not allocated: without a site file it is "
                                     "not known which machines they serve")
            return
        for service_name, service in self.site.services.items():
            work = self.work.get(service_name)
            if work is None:
                continue
            served = {m: self.work[m].processing for m in service.serves if m in self.work}
            if not served:
                continue
            shares = allocate_service(work.energy, served)
            allocated_total = 0.0
            hourly = self.options.hourly_emission_factors or (None, None)
            for machine, share in shares.items():
                w = self.work[machine]
                share_co2e = co2e_curve(share, self.factor, *hourly)
                share_cost = (cost_curve(share, self.tariff, self.tz, self.start_s, self.end_s)
                              if self.tariff is not None else None)
                sessions = [self.sessions[i] for i in w.session_index]
                if sessions:
                    a = np.array([max(x.start_s, self.start_s) for x in sessions])
                    b = np.array([min(x.end_s, self.end_s) for x in sessions])
                    _add_shares(sessions, session_totals(a, b, share), session_totals(a, b, share_co2e),
                                session_totals(a, b, share_cost) if share_cost is not None else None)
                jobs = [self.jobs[i] for i in w.job_index]
                if jobs:
                    a = np.array([j.start_s for j in jobs])
                    b = np.array([j.end_s for j in jobs])
                    _add_shares(jobs, _between(share, a, b), _between(share_co2e, a, b),
                                _between(share_cost, a, b) if share_cost is not None else None)
                machine_share = float(_between(share, [self.start_s], [self.end_s])[0])
                w.machine_record.shared_services_kwh += machine_share
                allocated_total += machine_share
            work.machine_record.unallocated_service_kwh = work.machine_record.energy_kwh - allocated_total

    # -- members -------------------------------------------------------------------------------
    def members(self) -> list[MemberRecord]:
        by_member: dict[str, MemberRecord] = {}
        for s in self.sessions:
            m = by_member.setdefault(s.member, MemberRecord(s.member, 0.0, 0.0, None, None, 0, 0))
            m.energy_kwh += s.energy_kwh
            m.processing_s += s.processing_s
            m.shared_services_kwh += s.shared_services_kwh
            if s.co2e_kg is not None:
                m.co2e_kg = (m.co2e_kg or 0.0) + s.co2e_kg
            if s.cost is not None:
                m.cost = (m.cost or 0.0) + s.cost
            m.sessions += 1
            m.jobs += s.jobs
        return [by_member[k] for k in sorted(by_member)]

    def run(self) -> AnalysisResult:
        for md in self.machines:
            if md.name in self.work:
                raise ValueError(f"machine {md.name!r} appears twice in the input")
            self.absorb(self.machine(md))
        return self.finish()

    def finish(self) -> AnalysisResult:
        """Sessions without data, shared services, warnings, members: the result."""
        names = set(self.work)
        for s in self.all_sessions:
            if s.machine not in names and s.end_s > self.start_s and s.start_s < self.end_s:
                self.warnings.append(f"session of {s.member} on {s.machine} "
                                     f"({iso_utc(s.start_s)} .. {iso_utc(s.end_s)}): no data for "
                                     "that machine; reported with zero energy and coverage")
                self.sessions.append(SessionRecord(s.machine, s.member, s.start_s, s.end_s, 0.0,
                                                   0.0, 0.0, 0.0, 0.0, 0.0 if self.tariff else None,
                                                   0, 0.0, 0.0, s.source, s.booking_id))
        if self.options.allocate_shared_services:
            self.services()
        for record in self.records:
            if not record.is_service and record.coverage < 0.9:
                self.warnings.append(f"{record.machine}: power data covers {record.coverage:.1%} "
                                     "of the window")
        self.sessions.sort(key=lambda s: (s.start_s, s.machine))
        self.jobs.sort(key=lambda j: (j.start_s, j.machine))
        return AnalysisResult(
            self.start_s, self.end_s, self.tz_name, self.records, self.sessions, self.jobs,
            self.members(), self.states, self.usage, self.factor, self.tariff_name,
            self.site.site.currency if self.site is not None and self.tariff else None,
            self.options, self.warnings)


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def analyze(machines: Iterable[MachineData], sessions: list[Session], site: Site | None,
            start_s: float, end_s: float, options: AnalysisOptions | None = None) -> AnalysisResult:
    """Analyse a window: states, jobs, sessions, members, days, CO2e and cost.

    Parameters
    ----------
    machines : iterable of MachineData
        One entry per machine or shared service (power samples, counter readings, controller
        signals); read once, one machine at a time (a generator keeps one machine in memory).
    sessions : list of Session
        Members holding machines (bookings, logins); sessions of machines without data are
        reported with zero energy and a warning.
    site : Site or None
        Time zone, opening hours, thresholds, rated powers, services, tariffs, emission factors;
        None: options.timezone, no opening hours, no tariff, the default emission factor.
    start_s, end_s : float [s]
        The window (Unix seconds).
    options : AnalysisOptions, optional

    Returns
    -------
    AnalysisResult
    """
    return Analysis(machines, sessions, site, start_s, end_s, options or AnalysisOptions()).run()
