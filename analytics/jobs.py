"""Jobs: one run of a machine doing work (docs/design.md, "Jobs").

From the controller (``jobs_from_controller``): a job is a program run. It starts when the
execution state becomes ``running`` and ends at the first later change to ``ended``,
``aborted``, ``stopped`` or ``canceled`` (the job's outcome). ``interrupted`` and ``waiting``
(a feed hold, an operator stop, a wait for a signal) do not end the run: the job goes on and its
time includes the interruption, as the controller keeps the same program active; the state
during it is not processing (analytics.states). A change to ``running`` with a different
program while a run is open starts a new job (outcome of the previous one: ``ended``). A run
still open at the end of the data ends at the window's end with outcome ``open``; a run open
at the first change (the data starts inside a run) starts at that change.

From power (``jobs_from_states``), for machines without a controller link: processing runs
merged across pauses shorter than ``merge_gap_s`` (a tool change, a bed swap, a paused print),
so one job is one stretch of work. A job touching the end of the data has outcome ``open``.

References
----------
.. [1] OPC 40501-1 Machine Tools, ``Production/ActiveProgram/State`` (Running, Ended,
   Interrupted, Aborted); OPC 40502 CNC Systems, ``ActProgramStatus`` (Stopped, Running,
   Waiting, Interrupted, Canceled).
.. [2] ISO 22400-2:2014, production time of a work unit (APT) as the time it processes orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analytics.arrays import clamp
from analytics.states import PROCESSING, StateIntervals, forward_fill

DEFAULT_MERGE_GAP_S = 60.0
RUN_EXECUTIONS = ("running", "interrupted", "waiting")
END_EXECUTIONS = ("ended", "aborted", "stopped", "canceled")


@dataclass
class JobIntervals:
    """Jobs of one machine: [start_s[i], end_s[i]], with program and outcome per job."""

    start_s: np.ndarray
    end_s: np.ndarray
    program: list[str | None] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)
    source: str = "power"

    @classmethod
    def empty(cls, source: str = "power") -> JobIntervals:
        return cls(np.zeros(0), np.zeros(0), [], [], source)

    def __len__(self) -> int:
        return len(self.start_s)


def merge_close(starts_s, ends_s, merge_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Join sorted disjoint intervals separated by less than merge_gap_s [s]."""
    a = np.asarray(starts_s, dtype=np.float64)
    b = np.asarray(ends_s, dtype=np.float64)
    if not len(a):
        return a, b
    new = np.empty(len(a), dtype=bool)
    new[0] = True
    new[1:] = (a[1:] - b[:-1]) >= merge_gap_s
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:] - 1, [len(a) - 1]])
    return a[first], b[last]


def jobs_from_states(states: StateIntervals, merge_gap_s: float = DEFAULT_MERGE_GAP_S,
                     data_end_s: float | None = None, min_job_s: float = 0.0) -> JobIntervals:
    """Jobs from power: processing runs merged across pauses shorter than merge_gap_s.

    Parameters
    ----------
    states : StateIntervals
        States of one machine (analytics.states).
    merge_gap_s : float [s], default 60
        Pauses strictly shorter than this join two processing runs into one job.
    data_end_s : float [s], optional
        End of the data; a job ending there is marked ``open``.
    min_job_s : float [s], default 0
        Jobs shorter than this are dropped.
    """
    a, b = states.of(PROCESSING)
    a, b = merge_close(a, b, merge_gap_s)
    keep = (b - a) >= min_job_s
    a, b = a[keep], b[keep]
    outcome = ["ended"] * len(a)
    if data_end_s is not None and len(b) and b[-1] >= data_end_s:
        outcome[-1] = "open"
    return JobIntervals(a, b, [None] * len(a), outcome, "power")


def jobs_from_controller(time_s, execution, program, end_s: float) -> JobIntervals:
    """Jobs from controller program runs (rules in the module docstring).

    Parameters
    ----------
    time_s : array [s]
        Times of the controller changes, non-decreasing.
    execution : array of str or None
        Execution state at each change (devices.vocabulary.EXECUTION_STATES; None: not carried).
    program : array of str or None
        Active program at each change.
    end_s : float [s]
        End of the analysed window (a run still open ends there).
    """
    t = np.asarray(time_s, dtype=np.float64)
    n = len(t)
    if n == 0:
        return JobIntervals.empty("controller")
    e = forward_fill(execution)
    prog = forward_fill(program)
    running = e == "running"
    active = np.isin(e, RUN_EXECUTIONS)
    prev_active = np.concatenate([[False], active[:-1]])
    prev_prog = np.concatenate([[None], prog[:-1]])
    new_program = running & prev_active & (prog != prev_prog) & (prev_prog != None)  # noqa: E711
    starts = (running & ~prev_active) | new_program
    starts[0] = bool(active[0])
    start_idx = np.flatnonzero(starts)
    if not len(start_idx):
        return JobIntervals.empty("controller")
    terminal = np.isin(e, END_EXECUTIONS)
    breaks = np.flatnonzero(terminal | starts)
    # the first break after each start
    k = np.searchsorted(breaks, start_idx, side="right")
    has_end = k < len(breaks)
    end_idx = np.where(has_end, breaks[clamp(k, 0, len(breaks) - 1)], -1)
    ends = np.where(has_end, t[clamp(end_idx, 0, n - 1)], max(float(end_s), float(t[-1])))
    outcome = []
    for ok, j in zip(has_end, end_idx):
        if not ok:
            outcome.append("open")
        elif terminal[j]:
            outcome.append(str(e[j]))
        else:
            outcome.append("ended")
    programs = [None if p is None or p == "" else str(p) for p in prog[start_idx]]
    return JobIntervals(t[start_idx], ends, programs, outcome, "controller")
