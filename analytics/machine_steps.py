"""The analysis of one machine, in named steps, each with a small typed result:

1. ``machine_thresholds``: the power thresholds (given, the site file's, or calibrated);
2. ``machine_states``: states from power, the controller on top (analytics.states);
3. ``machine_energy``: the energy curve (analytics.figures.MachineEnergy: power integral,
   counter-backed gaps, reconciliation to the counter local to its readings);
4. ``machine_jobs``: controller program runs, else processing merged across short pauses,
   the window's rules applied (analytics.jobs);
5. ``attribute``: the machine's sessions and which session holds each job
   (analytics.attribution);
6. ``usage_days``: site-local days with ISO 22400-2 KPIs (analytics.kpi);
7. ``main_meter``: the site's main meter, for the balance (no states, no jobs).

analytics.pipeline.Analysis.machine runs them in this order and builds the records
(analytics.results) by keyword.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.arrays import clamp
from analytics import kpi
from analytics.attribution import assign_jobs, session_totals
from analytics.energy import (CounterCurve, EnergyCurve, GapFilledCurve, LocalReconciled,
                              reconciliation_knots, step_at_changes)
from analytics.figures import FigureArrays, MachineEnergy, Pricing, Zero, between, interval_figures
from analytics.intervals import CoveredTime, Within, complement, intersect
from analytics.jobs import JobIntervals, jobs_from_controller, jobs_from_states
from analytics.records import MachineData, Session
from analytics.states import (IDLE, PROCESSING, STANDBY, StateIntervals, calibrate_from_histogram,
                              calibrate_thresholds, overlay_controller, states_from_power)
from analytics.window import AnalysisWindow
from devices.site import Site
from devices.vocabulary import MACHINE_STATES


@dataclass
class Thresholds:
    """Power thresholds (standby_w, idle_w, processing_w) [W] and where they came from;
    watts None without power data."""

    watts: tuple[float, float, float] | None
    source: str


def machine_thresholds(md: MachineData, site: Site | None) -> Thresholds:
    """Given with the data, else the site file's, else calibrated from the power (rated power
    as a hint); none without power samples."""
    if not (len(md.power_w) and np.isfinite(md.power_w).any()):
        return Thresholds(None, "no power data")
    if md.thresholds_w is not None:
        return Thresholds(tuple(float(x) for x in md.thresholds_w), "given")
    machine = site.machines.get(md.name) if site is not None else None
    if machine is not None and machine.thresholds is not None:
        th = machine.thresholds
        return Thresholds((th.standby_w, th.idle_w, th.processing_w), "site file")
    rated = md.rated_power_w or (machine.rated_power_w if machine is not None else None)
    calibration = (calibrate_from_histogram(md.power_histogram, rated) if md.power_histogram is not None
                   else calibrate_thresholds(md.power_w, rated))
    return Thresholds(calibration.thresholds_w, f"calibrated: {calibration.method}")


def machine_states(md: MachineData, thresholds: Thresholds, window: AnalysisWindow, options
                   ) -> StateIntervals:
    """States from power with the thresholds (none without them), the controller's execution
    and mode on top where it is connected. options: analytics.pipeline.AnalysisOptions."""
    states = StateIntervals.empty()
    if thresholds.watts is not None:
        states = states_from_power(md.power_time_s, md.power_w, thresholds.watts, options.hysteresis,
                                   options.min_dwell_s, options.max_gap_s)
    ctl = md.controller
    if ctl is not None and len(ctl.time_s):
        states = overlay_controller(states, ctl.time_s, ctl.execution, ctl.mode,
                                    window.start_s, window.end_s)
    return states


def _peak_power_w(md: MachineData) -> float:
    """What the machine may draw when nothing is measured [W]: its rated power where known,
    else the highest power seen (the histogram's where rollups stand in for samples), else 0."""
    if md.rated_power_w:
        return float(md.rated_power_w)
    if md.power_histogram is not None and np.isfinite(md.power_histogram.max_w):
        return max(float(md.power_histogram.max_w), 0.0)
    finite = md.power_w[np.isfinite(md.power_w)] if len(md.power_w) else md.power_w
    return max(float(finite.max()), 0.0) if len(finite) else 0.0


def _day_table(filled: GapFilledCurve, reported, counter: CounterCurve, window: AnalysisWindow
               ) -> dict[str, np.ndarray]:
    """Per site-local day (its part inside the window): the gap-filled power energy, the
    counter's delta and the scale the reconciliation came to (reported over gap-filled; 1 for
    a day without gap-filled energy)."""
    a, b = window.day_a, window.day_b
    power_kwh = filled.between(a, b)[0]
    reported_kwh = between(reported, a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(power_kwh > 0, reported_kwh / np.where(power_kwh > 0, power_kwh, 1.0), 1.0)
    return {"power_kwh": power_kwh, "counter_kwh": counter.between(a, b)[0], "scale": scale}


def machine_energy(md: MachineData, states: StateIntervals, window: AnalysisWindow, options
                   ) -> MachineEnergy:
    """The energy curve: the power integral with a step at each state change
    (analytics.energy.step_at_changes); where the counter is there too, each power gap it
    brackets holds its delta, and the result is reconciled to the counter locally, at its
    first and last reading of each hour and at both ends of each gap it backs
    (analytics.energy.LocalReconciled, reconciliation_knots: within the counter's resolution
    at each of them, a correction never leaving its hour); the counter alone where there is no
    power."""
    contiguous = states.start_s[1:] == states.end_s[:-1]
    power = EnergyCurve(*step_at_changes(md.power_time_s, md.power_w, states.start_s[1:][contiguous],
                                         options.max_gap_s), options.max_gap_s)
    counter = CounterCurve(md.counter_time_s, md.energy_import_kwh, md.counter_rollover_kwh)
    filled = None
    day_table = None
    resolution = md.counter_resolution_kwh
    if resolution is None and len(counter):
        resolution = counter.resolution_kwh
    if len(power) and len(counter) and options.reconcile:
        filled = GapFilledCurve(power, counter)
        reported = LocalReconciled(filled, reconciliation_knots(counter, filled), resolution)
        day_table = _day_table(filled, reported, counter, window)
    elif len(power):
        reported = power
    elif len(counter):
        reported = counter
    else:
        reported = Zero()
    return MachineEnergy(power, counter, reported, filled, day_table, resolution,
                         md.relative_accuracy, _peak_power_w(md))


@dataclass
class WindowJobs:
    """The jobs the window reports (start inside it), cut at its end.

    outcome: the controller's, "open" where the job still runs at the window's end;
    window_cut: "end" for those, "start" for a job whose data begins with the window, else None.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    program: list[str | None]
    outcome: list[str]
    window_cut: list[str | None]
    source: str

    def __len__(self) -> int:
        return len(self.start_s)


def machine_jobs(md: MachineData, states: StateIntervals, energy: MachineEnergy, is_service: bool,
                 window: AnalysisWindow, options) -> WindowJobs:
    """Jobs from the controller where one is connected, else from processing states merged
    across pauses shorter than options.merge_gap_s; a shared service has none. A job belongs to
    the window its start falls in (one that started before was reported by the previous one)."""
    start, end = window.start_s, window.end_s
    ctl = md.controller
    if is_service:
        jobs = JobIntervals.empty("none")
    elif ctl is not None and len(ctl.time_s):
        jobs = jobs_from_controller(ctl.time_s, ctl.execution, ctl.program, end)
    else:
        data_end = min(end, float(energy.power.time_s[-1])) if energy.has_power else end
        jobs = jobs_from_states(states, options.merge_gap_s, data_end, options.min_job_s)
    keep = (jobs.start_s >= start) & (jobs.start_s < end)
    a = jobs.start_s[keep]
    b_full = jobs.end_s[keep]
    outcomes, cuts = [], []
    for outcome, job_start, job_end in zip((o for o, k in zip(jobs.outcome, keep) if k), a, b_full):
        running_at_end = job_end > end or outcome == "open"
        cut_start = job_start <= start
        outcomes.append("open" if running_at_end else outcome)
        cuts.append("both" if running_at_end and cut_start else
                    "end" if running_at_end else "start" if cut_start else None)
    return WindowJobs(a, np.minimum(b_full, end), [p for p, k in zip(jobs.program, keep) if k],
                      outcomes, cuts, jobs.source)


@dataclass
class Attribution:
    """A machine's sessions inside the window and what they hold.

    sessions: the window's sessions of the machine; start_s, end_s: their parts inside the
    window; window_cut per session; figures: their figures (overlaps shared equally,
    analytics.attribution.session_totals); power_kwh: their power-based energy; processing_s,
    idle_s: their state times; owner: per job, the index of the session holding it, -1 none.
    """

    sessions: list[Session]
    start_s: np.ndarray
    end_s: np.ndarray
    window_cut: list[str | None]
    figures: FigureArrays
    power_kwh: np.ndarray
    processing_s: np.ndarray
    idle_s: np.ndarray
    owner: np.ndarray

    @property
    def held(self) -> CoveredTime:
        return CoveredTime(self.start_s, self.end_s)

    def jobs_of(self, i: int) -> int:
        return int(np.sum(self.owner == i))


def attribute(name: str, jobs: WindowJobs, energy: MachineEnergy, pricing: Pricing,
              time_in: dict[int, CoveredTime], window: AnalysisWindow) -> Attribution:
    """The machine's sessions with their energy, state times and jobs (a job goes to the
    session that holds most of it: analytics.attribution.assign_jobs)."""
    mine = window.sessions_of(name)
    start, end = window.start_s, window.end_s
    a = np.array([max(s.start_s, start) for s in mine], dtype=np.float64)
    b = np.array([min(s.end_s, end) for s in mine], dtype=np.float64)
    cuts = []
    for s in mine:
        early, late = s.start_s < start, s.end_s > end
        cuts.append("both" if early and late else "start" if early else "end" if late else None)
    figures = interval_figures(energy, pricing, a, b, lambda cumulative: session_totals(a, b, cumulative))
    owner = assign_jobs(jobs.start_s, jobs.end_s, np.array([s.start_s for s in mine]),
                        np.array([s.end_s for s in mine]))
    return Attribution(mine, a, b, cuts, figures, session_totals(a, b, energy.measured),
                       session_totals(a, b, time_in[PROCESSING]), session_totals(a, b, time_in[IDLE]),
                       owner)


@dataclass
class UsageDays:
    """One machine's site-local days (the parts inside the window).

    figures: their figures; power_kwh, counter_kwh: power-only and counter energy (None
    without); scale: the reconciliation's scale per day (None without); state_s: time per
    state code per day [s]; planned_busy_s (PBT: opening hours), busy_s (AUBT: held by
    sessions) [s]; availability, utilisation, allocation: ISO 22400-2 KPIs (NaN where
    undefined); unattributed_kwh: energy outside sessions; jobs: jobs started that day.
    sessions_kwh: energy while sessions hold the machine (energy_kwh - unattributed_kwh);
    sessions_jobs_kwh: the part of it in the window's jobs (so energy = jobs in sessions +
    sessions outside jobs + unattributed) [kWh]. standby_outside_opening_kwh, _s, _cost:
    energy [kWh], time [s] and cost [currency] of standby outside opening hours (None without
    opening hours; cost None without a tariff).
    """

    figures: FigureArrays
    power_kwh: np.ndarray | None
    counter_kwh: np.ndarray | None
    scale: np.ndarray | None
    state_s: dict[int, np.ndarray]
    planned_busy_s: np.ndarray
    busy_s: np.ndarray
    availability: np.ndarray
    utilisation: np.ndarray
    allocation: np.ndarray
    unattributed_kwh: np.ndarray
    jobs: np.ndarray
    sessions_kwh: np.ndarray
    sessions_jobs_kwh: np.ndarray
    standby_outside_opening_kwh: np.ndarray | None = None
    standby_outside_opening_s: np.ndarray | None = None
    standby_outside_opening_cost: np.ndarray | None = None


def standby_outside_opening(energy: MachineEnergy, pricing: Pricing, standby: CoveredTime,
                            window: AnalysisWindow, a, b
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Energy [kWh], time [s] and cost [currency] of standby outside opening hours in each
    interval [a, b) (site-local days): the waste switching off would save. None without
    opening hours; the cost None without a tariff."""
    if window.opening is None:
        return None
    closed = complement(*window.opening, window.start_s, window.end_s)
    pieces = intersect(standby.starts_s, standby.ends_s, *closed)
    kwh = Within(energy.reported, *pieces).between(a, b)
    cost = None if pricing.cost is None else Within(pricing.cost, *pieces).between(a, b)
    return kwh, CoveredTime(*pieces).between(a, b), cost


def usage_days(energy: MachineEnergy, pricing: Pricing, time_in: dict[int, CoveredTime],
               attribution: Attribution, jobs: WindowJobs, window: AnalysisWindow,
               figures: FigureArrays) -> UsageDays | None:
    """Per site-local day: energy and its figures (`figures`: interval_figures of the days,
    computed by the caller with other intervals'), state times and the KPIs of ISO 22400-2
    (availability = APT/PBT, utilisation efficiency = APT/AUBT, allocation efficiency =
    AUBT/PBT; analytics.kpi). None for a window without days."""
    a, b = window.day_a, window.day_b
    if not len(a):
        return None
    state_s = {code: time_in[code].between(a, b) for code in time_in}
    planned = (CoveredTime(*window.opening).between(a, b) if window.opening is not None
               else np.zeros(len(a)))
    busy = attribution.held.between(a, b)
    s_a, s_b = attribution.start_s, attribution.end_s
    if len(s_a):
        # every session cut to every day, in one call: the days are disjoint, so a piece
        # shares its energy only with the pieces of its own day (one call instead of one per
        # day: a week of 20 machines, 12 ms less)
        day_a, day_b = a[:, None], b[:, None]
        pieces = session_totals(clamp(s_a[None, :], day_a, day_b).ravel(),
                                clamp(s_b[None, :], day_a, day_b).ravel(), energy.reported)
        held_kwh = pieces.reshape(len(a), len(s_a)).sum(axis=1)
    else:
        held_kwh = np.zeros(len(a))
    jobs_per_day = (np.histogram(jobs.start_s, bins=np.concatenate([a, b[-1:]]))[0] if len(jobs)
                    else np.zeros(len(a), int))
    apt = state_s[PROCESSING]
    held = attribution.held
    in_jobs = intersect(jobs.start_s, jobs.end_s, held.starts_s, held.ends_s)
    standby_out = standby_outside_opening(energy, pricing, time_in[STANDBY], window, a, b)
    return UsageDays(
        figures=figures,
        power_kwh=energy.power.between(a, b)[0] if energy.has_power else None,
        counter_kwh=energy.counter.between(a, b)[0] if energy.has_counter else None,
        scale=None if energy.day_table is None else energy.day_table["scale"],
        state_s=state_s, planned_busy_s=planned, busy_s=busy,
        availability=kpi.availability(apt, planned), utilisation=kpi.utilisation_efficiency(apt, busy),
        allocation=kpi.allocation_efficiency(busy, planned),
        unattributed_kwh=figures.energy_kwh - held_kwh, jobs=jobs_per_day,
        sessions_kwh=held_kwh, sessions_jobs_kwh=Within(energy.reported, *in_jobs).between(a, b),
        standby_outside_opening_kwh=None if standby_out is None else standby_out[0],
        standby_outside_opening_s=None if standby_out is None else standby_out[1],
        standby_outside_opening_cost=None if standby_out is None else standby_out[2])


@dataclass
class MainMeter:
    """The site's main meter over the window and each site-local day (for the balance):
    figures[0] the window, figures[1:] the days."""

    name: str
    figures: FigureArrays
    has_data: bool = True


def main_meter(md: MachineData, window: AnalysisWindow, options) -> MainMeter:
    """The main meter's energy: power integral, counter-backed gaps and reconciliation as for a
    machine; no states, no jobs."""
    energy = machine_energy(md, StateIntervals.empty(), window, options)
    pricing = Pricing.of(energy.reported, window)
    a = np.concatenate([[window.start_s], window.day_a])
    b = np.concatenate([[window.end_s], window.day_b])
    return MainMeter(md.name, interval_figures(energy, pricing, a, b),
                     energy.has_power or energy.has_counter)


def state_name(code: int) -> str:
    return MACHINE_STATES[int(code)]
