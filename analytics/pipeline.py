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
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from analytics.attribution import allocate_service, session_totals
from analytics.carbon import co2e_curve, cost_curve
from analytics.energy import DEFAULT_MAX_GAP_S, Cumulative
from analytics.figures import FigureArrays, MachineEnergy, Pricing, between, interval_figures
from analytics.intervals import CoveredTime
from analytics.jobs import DEFAULT_MERGE_GAP_S
from analytics.machine_steps import (MainMeter, UsageDays, attribute, machine_energy,
                                     machine_jobs, machine_states, machine_thresholds, main_meter,
                                     state_name, usage_days)
from analytics.records import MachineData, Session
from analytics.results import (AnalysisResult, BalanceRecord, JobRecord, MachineRecord,
                               MemberRecord, SessionRecord, StateRecord, UsageRecord, iso_utc)
from analytics.states import (DEFAULT_HYSTERESIS, DEFAULT_MIN_DWELL_S, FAULT, IDLE, OFF,
                              PROCESSING, SETUP, STANDBY)
from analytics.window import AnalysisWindow, plan_window
from devices.site import Site
from devices.vocabulary import MACHINE_STATES

__all__ = ["AnalysisOptions", "Analysis", "AnalysisResult", "MachineParts", "analyze", "iso_utc",
           "JobRecord", "MachineRecord", "MemberRecord", "SessionRecord", "StateRecord",
           "UsageRecord", "BalanceRecord"]

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
    reconcile: give power gaps the counter's delta and reconcile power-based energy to the
        counter locally (each hour's first and last reading, each backed gap's ends) where both
        exist.
    allocate_shared_services: split shared services' energy over the machines they serve by
        processing time: reported as shared_services_kwh beside each figure; the CO2e and cost
        of sessions, jobs and members include the share; machines keep their own CO2e and cost
        (the service's record holds its whole energy, unallocated_service_kwh the part no
        machine took), so machine totals never count a kWh twice.
    emission_factor_kg_per_kwh: overrides the site's location-based factor [kg CO2e/kWh].
    hourly_emission_factors: (time_s, kg_co2e_per_kwh) arrays of the grid's hourly intensity:
        each holds from its time for an hour or until the next one; reported as
        co2e_grid_hourly_kg beside the inventory CO2e (analytics.carbon says why they differ).
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
    hourly_emission_factors: tuple[np.ndarray, np.ndarray] | None = None
    tariff: str | None = None
    timezone: str = DEFAULT_TIMEZONE

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "hourly_emission_factors"}
        out["hourly_emission_factors"] = self.hourly_emission_factors is not None
        return out


def window_of(site: Site | None, sessions: list[Session], start_s: float, end_s: float,
              options: AnalysisOptions) -> AnalysisWindow:
    """The AnalysisWindow of an analysis with these options (the rollup reader takes the same)."""
    return plan_window(site, sessions, start_s, end_s, options.timezone, options.tariff,
                       options.emission_factor_kg_per_kwh, options.hourly_emission_factors)


@dataclass
class _Work:
    """What one machine's analysis keeps for the later steps (members, services); the energy
    curve only for a shared service (the machines' curves are let go once they are analysed)."""

    energy: Cumulative | None
    relative_uncertainty: float
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
    main: MainMeter | None = None


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _state_times(time_in: dict[int, CoveredTime]) -> dict[str, float]:
    return {"processing_s": time_in[PROCESSING].total_s, "idle_s": time_in[IDLE].total_s,
            "standby_s": time_in[STANDBY].total_s, "off_s": time_in[OFF].total_s,
            "setup_s": time_in[SETUP].total_s, "fault_s": time_in[FAULT].total_s}


class Analysis:
    """One analysis of a window: machine() per machine (anywhere), absorb() each machine's
    parts in the site's order, then finish(). analyze() does all three in one process."""

    def __init__(self, machines: Iterable[MachineData], sessions: list[Session], site: Site | None,
                 start_s: float, end_s: float, options: AnalysisOptions) -> None:
        self.window = window_of(site, sessions, start_s, end_s, options)
        self.machines = machines
        self.all_sessions = self.window.sessions
        self.site = site
        self.start_s = self.window.start_s
        self.end_s = self.window.end_s
        self.options = options
        self.tz_name = self.window.tz_name
        self.tz = self.window.tz
        self.factor = self.window.factor
        self.tariff_name, self.tariff = self.window.tariff_name, self.window.tariff
        self.warnings: list[str] = list(self.window.warnings)
        self.states: list[StateRecord] = []
        self.jobs: list[JobRecord] = []
        self.sessions: list[SessionRecord] = []
        self.usage: list[UsageRecord] = []
        self.records: list[MachineRecord] = []
        self.work: dict[str, _Work] = {}
        self.main: MainMeter | None = None

    def _is_service(self, md: MachineData) -> bool:
        return md.is_service or (self.site is not None and md.name in self.site.services)

    # -- one machine ---------------------------------------------------------------------------
    def machine(self, md: MachineData) -> MachineParts:
        """Analyse one machine on its own (it may run in another process: see absorb), step by
        step (analytics.machine_steps), and build its records."""
        out = MachineParts()
        w, o = self.window, self.options
        if md.is_main:
            out.main = main_meter(md, w, o)
            return out
        name = md.name
        start, end = w.start_s, w.end_s
        is_service = self._is_service(md)

        thresholds = machine_thresholds(md, self.site)
        states = machine_states(md, thresholds, w, o)
        energy = machine_energy(md, states, w, o)
        if not energy.has_power and not energy.has_counter:
            out.warnings.append(f"{name}: no power samples and no counter readings")
        pricing = Pricing.of(energy.reported, w)

        states = states.clip(start, end)
        state_kwh = between(energy.reported, states.start_s, states.end_s)
        for a, b, c, e in zip(states.start_s, states.end_s, states.code, state_kwh):
            out.states.append(StateRecord(machine=name, state=state_name(c), start_s=float(a),
                                          end_s=float(b), energy_kwh=float(e)))
        time_in = {code: CoveredTime(*states.of(code)) for code in range(len(MACHINE_STATES))}

        jobs = machine_jobs(md, states, energy, is_service, w, o)
        held = attribute(name, jobs, energy, pricing, time_in, w)
        for i, s in enumerate(held.sessions):
            out.sessions.append(SessionRecord(
                machine=name, member=s.member, start_s=float(s.start_s), end_s=float(s.end_s),
                processing_s=float(held.processing_s[i]), idle_s=float(held.idle_s[i]),
                jobs=held.jobs_of(i), energy_power_kwh=float(held.power_kwh[i]), source=s.source,
                booking_id=s.booking_id, window_cut=held.window_cut[i], **held.figures.at(i)))

        # the figures of the jobs, the days and the window, in one call (each is per interval)
        n_jobs, n_days = len(jobs), len(w.day_a)
        figures = interval_figures(energy, pricing, np.concatenate([jobs.start_s, w.day_a, [start]]),
                                   np.concatenate([jobs.end_s, w.day_b, [end]]))
        window_figures = figures.part(slice(n_jobs + n_days, None))
        first_job = len(out.jobs)
        self._job_records(out, name, jobs, energy, figures.part(slice(0, n_jobs)), held)
        days = usage_days(energy, pricing, time_in, held, jobs, w, figures.part(slice(n_jobs, n_jobs + n_days)))
        record = self._machine_record(name, is_service, md, thresholds, energy, window_figures,
                                      time_in, jobs, held, days)
        out.records.append(record)
        self._usage_records(out, record, days)

        e_total = float(window_figures.energy_kwh[0])
        relative = float(window_figures.energy_uncertainty_kwh[0]) / e_total if e_total > 0 else 0.0
        out.work[name] = _Work(energy.reported if is_service else None, relative,
                               states.of(PROCESSING), np.arange(len(out.sessions)),
                               np.arange(first_job, len(out.jobs)), record)
        return out

    def _job_records(self, out: MachineParts, name: str, jobs, energy: MachineEnergy,
                     figures: FigureArrays, held) -> None:
        """The job records, with their figures (one per job)."""
        if not len(jobs):
            return
        power_kwh = energy.measured.between(jobs.start_s, jobs.end_s)[0]
        reconciled = energy.day_table is not None
        for i in range(len(jobs)):
            owner = held.owner[i]
            out.jobs.append(JobRecord(
                machine=name, member=held.sessions[owner].member if owner >= 0 else None,
                start_s=float(jobs.start_s[i]), end_s=float(jobs.end_s[i]),
                energy_power_kwh=float(power_kwh[i]),
                energy_reconciled_kwh=float(figures.energy_kwh[i]) if reconciled else None,
                program=jobs.program[i], source=jobs.source, outcome=jobs.outcome[i],
                window_cut=jobs.window_cut[i], **figures.at(i)))

    def _machine_record(self, name: str, is_service: bool, md: MachineData, thresholds,
                        energy: MachineEnergy, figures: FigureArrays, time_in, jobs, held,
                        days: UsageDays | None) -> MachineRecord:
        """The machine over the window (figures: the window's); standby outside opening hours
        is the sum of its days' (so a report summing stored days finds the same figure)."""
        w = self.window
        start, end = w.start_s, w.end_s
        total = float(figures.energy_kwh[0])
        standby_out_kwh = standby_out_s = None
        if days is not None and days.standby_outside_opening_kwh is not None:
            standby_out_kwh = float(np.sum(days.standby_outside_opening_kwh))
            standby_out_s = float(np.sum(days.standby_outside_opening_s))
        elif days is None and w.opening is not None:  # a window without days
            standby_out_kwh = standby_out_s = 0.0
        return MachineRecord(
            machine=name, is_service=is_service,
            energy_power_kwh=float(energy.power.between([start], [end])[0][0]) if energy.has_power else None,
            energy_counter_kwh=(float(energy.counter.between([start], [end])[0][0])
                                if energy.has_counter else None),
            jobs=len(jobs), job_source=jobs.source, sessions=len(held.sessions),
            unattributed_energy_kwh=total - float(np.sum(held.figures.energy_kwh)),
            unattributed_s=(end - start) - held.held.total_s,
            standby_outside_opening_kwh=standby_out_kwh, standby_outside_opening_s=standby_out_s,
            thresholds_w=thresholds.watts, thresholds_source=thresholds.source,
            accuracy=md.accuracy, **_state_times(time_in), **figures.at(0))

    def _usage_records(self, out: MachineParts, record: MachineRecord, days: UsageDays | None) -> None:
        """One record per site-local day, with what a report needs from the machine's own
        record (thresholds, accuracy, service or not) so that stored days suffice."""
        w = self.window
        if days is None:
            return
        name = record.machine
        th = record.thresholds_w
        standby_kwh, standby_s = days.standby_outside_opening_kwh, days.standby_outside_opening_s
        standby_cost = days.standby_outside_opening_cost
        for k in range(len(w.day_a)):
            out.usage.append(UsageRecord(
                machine=name, day_start_s=float(w.day_start[k]),
                date=dt.datetime.fromtimestamp(w.day_start[k], w.tz).date().isoformat(),
                start_s=float(w.day_a[k]), end_s=float(w.day_b[k]),
                energy_power_kwh=None if days.power_kwh is None else float(days.power_kwh[k]),
                energy_counter_kwh=None if days.counter_kwh is None else float(days.counter_kwh[k]),
                reconciliation_scale=None if days.scale is None else float(days.scale[k]),
                processing_s=float(days.state_s[PROCESSING][k]), idle_s=float(days.state_s[IDLE][k]),
                standby_s=float(days.state_s[STANDBY][k]), off_s=float(days.state_s[OFF][k]),
                setup_s=float(days.state_s[SETUP][k]), fault_s=float(days.state_s[FAULT][k]),
                planned_busy_s=float(days.planned_busy_s[k]), busy_s=float(days.busy_s[k]),
                availability=_finite(days.availability[k]),
                utilisation_efficiency=_finite(days.utilisation[k]),
                allocation_efficiency=_finite(days.allocation[k]),
                unattributed_energy_kwh=float(days.unattributed_kwh[k]), jobs=int(days.jobs[k]),
                sessions_energy_kwh=float(days.sessions_kwh[k]),
                sessions_jobs_energy_kwh=float(days.sessions_jobs_kwh[k]),
                standby_outside_opening_kwh=None if standby_kwh is None else float(standby_kwh[k]),
                standby_outside_opening_s=None if standby_s is None else float(standby_s[k]),
                standby_outside_opening_cost=None if standby_cost is None else float(standby_cost[k]),
                threshold_standby_w=None if th is None else float(th[0]),
                threshold_idle_w=None if th is None else float(th[1]),
                threshold_processing_w=None if th is None else float(th[2]),
                thresholds_source=record.thresholds_source, accuracy=record.accuracy,
                is_service=record.is_service, **days.figures.at(k)))

    def absorb(self, parts: MachineParts) -> None:
        """Add one machine's results (machine() here or in a worker process) to the analysis."""
        for name, work in parts.work.items():
            work.session_index = work.session_index + len(self.sessions)
            work.job_index = work.job_index + len(self.jobs)
            self.work[name] = work
        if parts.main is not None:
            self.main = parts.main
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
            for machine, share in shares.items():
                w = self.work[machine]
                sessions = [self.sessions[i] for i in w.session_index]
                if sessions:
                    a = np.array([max(x.start_s, self.start_s) for x in sessions])
                    b = np.array([min(x.end_s, self.end_s) for x in sessions])
                    self._add_shares(sessions, share, work.relative_uncertainty,
                                     lambda cumulative: session_totals(a, b, cumulative))
                jobs = [self.jobs[i] for i in w.job_index]
                if jobs:
                    a = np.array([j.start_s for j in jobs])
                    b = np.array([j.end_s for j in jobs])
                    self._add_shares(jobs, share, work.relative_uncertainty,
                                     lambda cumulative: between(cumulative, a, b))
                machine_share = float(between(share, [self.start_s], [self.end_s])[0])
                w.machine_record.shared_services_kwh += machine_share
                allocated_total += machine_share
            work.machine_record.unallocated_service_kwh = work.machine_record.energy_kwh - allocated_total

    def _add_shares(self, records, share: Cumulative, relative_uncertainty: float, total) -> None:
        """Add a shared service's allocated energy [kWh] and its CO2e (inventory, market,
        hourly) and cost, with their uncertainties (the service's relative one), to each record
        (sessions or jobs, in order)."""
        w = self.window
        kwh = total(share)
        u_kwh = kwh * relative_uncertainty
        hourly = total(co2e_curve(share, w.factor, *w.hourly)) if w.hourly is not None else None
        cost = (total(cost_curve(share, w.tariff, w.tz, w.start_s, w.end_s))
                if w.tariff is not None else None)
        f = w.factor.kg_co2e_per_kwh
        market = w.factor_market
        for k, rec in enumerate(records):
            rec.shared_services_kwh += float(kwh[k])
            rec.co2e_kg = (rec.co2e_kg or 0.0) + float(kwh[k]) * f
            rec.co2e_uncertainty_kg = (rec.co2e_uncertainty_kg or 0.0) + float(u_kwh[k]) * f
            if market is not None:
                rec.co2e_market_kg = (rec.co2e_market_kg or 0.0) + float(kwh[k]) * market.kg_co2e_per_kwh
                rec.co2e_market_uncertainty_kg = ((rec.co2e_market_uncertainty_kg or 0.0)
                                                  + float(u_kwh[k]) * market.kg_co2e_per_kwh)
            if hourly is not None:
                rec.co2e_grid_hourly_kg = (rec.co2e_grid_hourly_kg or 0.0) + float(hourly[k])
            if cost is not None:
                rec.cost = (rec.cost or 0.0) + float(cost[k])
                rate = float(cost[k]) / float(kwh[k]) if kwh[k] > 0 else 0.0
                rec.cost_uncertainty = (rec.cost_uncertainty or 0.0) + float(u_kwh[k]) * rate

    # -- members -------------------------------------------------------------------------------
    def members(self) -> list[MemberRecord]:
        """Each member's sessions summed; coverage shares weighted by the sessions' time inside
        the window; uncertainties added (an upper bound)."""
        by_member: dict[str, MemberRecord] = {}
        held_s: dict[str, float] = {}
        for s in self.sessions:
            m = by_member.get(s.member)
            if m is None:
                m = by_member[s.member] = MemberRecord(
                    member=s.member, energy_kwh=0.0, coverage_missing=0.0,
                    co2e_kg=None, factor=s.factor, factor_vintage=s.factor_vintage,
                    factor_basis=s.factor_basis, factor_market=s.factor_market,
                    factor_market_vintage=s.factor_market_vintage)
                held_s[s.member] = 0.0
            inside = max(min(s.end_s, self.end_s) - max(s.start_s, self.start_s), 0.0)
            held_s[s.member] += inside
            for share in ("coverage_power", "coverage_counter", "coverage_missing"):
                setattr(m, share, getattr(m, share) + getattr(s, share) * inside)
            for key in ("energy_kwh", "energy_uncertainty_kwh", "processing_s", "shared_services_kwh"):
                setattr(m, key, getattr(m, key) + getattr(s, key))
            for key in ("co2e_kg", "co2e_uncertainty_kg", "co2e_market_kg", "co2e_market_uncertainty_kg",
                        "co2e_grid_hourly_kg", "cost", "cost_uncertainty"):
                value = getattr(s, key)
                if value is not None:
                    setattr(m, key, (getattr(m, key) or 0.0) + value)
            m.sessions += 1
            m.jobs += s.jobs
        for name, m in by_member.items():
            time_s = held_s[name]
            for share in ("coverage_power", "coverage_counter", "coverage_missing"):
                setattr(m, share, getattr(m, share) / time_s if time_s > 0 else 0.0)
            if time_s <= 0:
                m.coverage_missing = 1.0
            m.coverage = min(m.coverage_power + m.coverage_counter, 1.0)
        return [by_member[k] for k in sorted(by_member)]

    # -- the site's balance --------------------------------------------------------------------
    def balance(self) -> list[BalanceRecord]:
        """Main meter against the metered machines and services: the window, then each day."""
        if self.main is None:
            return []
        if not self.main.has_data:
            self.warnings.append("the site's main meter has no readings in the window: no balance")
            return []
        f = self.main.figures
        w = self.window
        periods = [("window", w.start_s, w.end_s)] + [
            (dt.datetime.fromtimestamp(d, w.tz).date().isoformat(), float(a), float(b))
            for d, a, b in zip(w.day_start, w.day_a, w.day_b)]
        metered = np.zeros(len(periods))
        metered_u = np.zeros(len(periods))
        metered[0] = sum(r.energy_kwh for r in self.records)
        metered_u[0] = sum(r.energy_uncertainty_kwh for r in self.records)
        index = {p[0]: k for k, p in enumerate(periods)}
        for u in self.usage:
            k = index[u.date]
            metered[k] += u.energy_kwh
            metered_u[k] += u.energy_uncertainty_kwh
        out = []
        for k, (period, a, b) in enumerate(periods):
            main_kwh = float(f.energy_kwh[k])
            main_u = float(f.energy_uncertainty_kwh[k])
            rest = main_kwh - float(metered[k])
            out.append(BalanceRecord(
                period=period, start_s=a, end_s=b, main_kwh=main_kwh, main_uncertainty_kwh=main_u,
                main_coverage=min(float(f.coverage_power[k] + f.coverage_counter[k]), 1.0),
                metered_kwh=float(metered[k]), metered_uncertainty_kwh=float(metered_u[k]),
                not_metered_kwh=rest, not_metered_uncertainty_kwh=main_u + float(metered_u[k]),
                not_metered_share=rest / main_kwh if main_kwh > 0 else None))
        return out

    def run(self) -> AnalysisResult:
        for md in self.machines:
            if md.name in self.work or (md.is_main and self.main is not None):
                raise ValueError(f"machine {md.name!r} appears twice in the input")
            self.absorb(self.machine(md))
        return self.finish()

    def finish(self) -> AnalysisResult:
        """Sessions without data, shared services, warnings, members, balance: the result."""
        w = self.window
        names = set(self.work)
        no_data = {"factor": w.factor.name, "factor_vintage": w.factor.vintage,
                   "factor_basis": w.factor.basis, "co2e_kg": 0.0, "co2e_uncertainty_kg": 0.0,
                   "cost": 0.0 if self.tariff else None,
                   "cost_uncertainty": 0.0 if self.tariff else None}
        if w.factor_market is not None:
            no_data.update(factor_market=w.factor_market.name,
                           factor_market_vintage=w.factor_market.vintage,
                           co2e_market_kg=0.0, co2e_market_uncertainty_kg=0.0)
        for s in self.all_sessions:
            if s.machine not in names and s.end_s > self.start_s and s.start_s < self.end_s:
                self.warnings.append(f"session of {s.member} on {s.machine} "
                                     f"({iso_utc(s.start_s)} .. {iso_utc(s.end_s)}): no data for "
                                     "that machine; reported with zero energy and coverage")
                early, late = s.start_s < self.start_s, s.end_s > self.end_s
                self.sessions.append(SessionRecord(
                    machine=s.machine, member=s.member, start_s=s.start_s, end_s=s.end_s,
                    source=s.source, booking_id=s.booking_id,
                    window_cut="both" if early and late else "start" if early else "end" if late else None,
                    **no_data))
        if self.options.allocate_shared_services:
            self.services()
        for record in self.records:
            if not record.is_service and record.coverage < 0.9:
                self.warnings.append(f"{record.machine}: power data covers {record.coverage:.1%} "
                                     "of the window")
        self.sessions.sort(key=lambda s: (s.start_s, s.machine))
        self.jobs.sort(key=lambda j: (j.start_s, j.machine))
        return AnalysisResult(
            start_s=self.start_s, end_s=self.end_s, timezone=self.tz_name, machines=self.records,
            sessions=self.sessions, jobs=self.jobs, members=self.members(),
            state_intervals=self.states, usage=self.usage, emission_factor=w.factor,
            tariff=self.tariff_name,
            currency=self.site.site.currency if self.site is not None and self.tariff else None,
            options=self.options, warnings=self.warnings, emission_factor_market=w.factor_market,
            balance=self.balance(),
            hourly_factors=None if w.hourly is None else "grid consumption intensity, hourly")


def analyze(machines: Iterable[MachineData], sessions: list[Session], site: Site | None,
            start_s: float, end_s: float, options: AnalysisOptions | None = None) -> AnalysisResult:
    """Analyse a window: states, jobs, sessions, members, days, the site's balance, with energy,
    its uncertainty and coverage split, CO2e and cost.

    Parameters
    ----------
    machines : iterable of MachineData
        One entry per machine or shared service (power samples, counter readings, controller
        signals), and the site's main meter (is_main) for the balance; read once, one machine
        at a time (a generator keeps one machine in memory).
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
