"""What each simulated machine does and when: sessions, jobs, pauses, standby, off.

A schedule is a list of contiguous segments on a time grid of step `dt_s` (so power is constant
within a grid step and energy counters are exact integrals). It is generated lazily, session by
session, from a seeded random generator: the same seed gives the same workshop.
"""

from __future__ import annotations

import bisect
import functools
import math
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROFILES_PATH = Path(__file__).resolve().parent.parent / "data" / "sim_profiles.toml"
CONTROLLER_KINDS = ("processing", "setup", "fault")


@functools.cache
def load_profiles() -> dict[str, dict]:
    """Per-kind behaviour of simulated machines (devices/data/sim_profiles.toml)."""
    return tomllib.loads(PROFILES_PATH.read_text(encoding="utf-8"))


def profile_for(kind: str) -> dict:
    profiles = load_profiles()
    return profiles.get(kind, profiles["default"])


@dataclass
class Segment:
    """A stretch of time [start_s, end_s) in one state (times: Unix seconds)."""

    start_s: float
    end_s: float
    state: str  # off, standby, idle, setup, processing, fault
    level: float  # mean power as a fraction of rated power
    member: str | None = None
    program: str = ""
    job_id: str | None = None
    spindle_rpm: float = 0.0
    alarm: str = ""


@dataclass
class Job:
    """Ground truth of one simulated job."""

    machine: str
    job_id: str
    member: str
    program: str
    start_s: float
    end_s: float
    outcome: str = "ended"  # ended | aborted


@dataclass
class Session:
    """A member holding a machine (what the booking says)."""

    machine: str
    member: str
    start_s: float
    end_s: float


@dataclass
class OpenWindows:
    """Opening windows [(start_s, end_s), ...] sorted; None means always open."""

    windows: list[tuple[float, float]] | None = None

    def is_open(self, t: float) -> bool:
        if self.windows is None:
            return True
        i = bisect.bisect_right(self.windows, (t, math.inf)) - 1
        return i >= 0 and self.windows[i][0] <= t < self.windows[i][1]

    def next_open(self, t: float) -> float | None:
        """Earliest open instant at or after t (None when none is left)."""
        if self.windows is None or self.is_open(t):
            return t
        i = bisect.bisect_right(self.windows, (t, math.inf))
        return self.windows[i][0] if i < len(self.windows) else None

    def window_end(self, t: float) -> float:
        if self.windows is None:
            return math.inf
        i = bisect.bisect_right(self.windows, (t, math.inf)) - 1
        return self.windows[i][1] if i >= 0 and self.windows[i][1] > t else t

    def boundaries_between(self, a: float, b: float) -> list[float]:
        if self.windows is None:
            return []
        return sorted({x for w in self.windows for x in w if a < x < b})


class MachineSchedule:
    """Segments, jobs and sessions of one simulated machine, generated on demand.

    pace: how many times faster than life jobs and pauses run (1 = real durations).
    """

    def __init__(self, machine: str, kind: str, members: Sequence[str], rng: np.random.Generator,
                 t0_s: float, dt_s: float, pace: float = 1.0, has_controller: bool = False,
                 windows: OpenWindows | None = None, off_when_closed: bool = True) -> None:
        self.machine = machine
        self.kind = kind
        self.profile = profile_for(kind)
        self.members = list(members)
        self.rng = rng
        self.t0_s = t0_s
        self.dt_s = dt_s
        self.pace = pace
        self.has_controller = has_controller
        self.windows = windows or OpenWindows()
        self.off_when_closed = off_when_closed and kind not in ("kiln", "printer_bench")
        self.segments: list[Segment] = []
        self.starts: list[float] = []
        self.jobs: list[Job] = []
        self.sessions: list[Session] = []
        self._generator = self._generate()
        self._job_counter = 0

    # -- time helpers ----------------------------------------------------------------------
    def _q(self, t: float) -> float:
        """Quantise a time onto the grid."""
        return self.t0_s + round((t - self.t0_s) / self.dt_s) * self.dt_s

    def _minutes(self, key: str) -> float:
        low, high = self.profile[key]
        return float(self.rng.uniform(low, high)) * 60.0 / self.pace

    def _add(self, seg: Segment) -> None:
        seg.start_s, seg.end_s = self._q(seg.start_s), self._q(seg.end_s)
        if seg.end_s <= seg.start_s:
            return
        if self.segments:
            seg.start_s = self.segments[-1].end_s
            if seg.end_s <= seg.start_s:
                return
        self.segments.append(seg)
        self.starts.append(seg.start_s)

    def _add_waiting(self, a: float, b: float) -> None:
        """Standby while open, off while closed (for machines switched off at night)."""
        cuts = [a] + self.windows.boundaries_between(a, b) + [b]
        for x, y in zip(cuts, cuts[1:]):
            mid = (x + y) / 2
            state = "standby" if (self.windows.is_open(mid) or not self.off_when_closed) else "off"
            level = self.profile["standby"] if state == "standby" else 0.0
            self._add(Segment(x, y, state, level))

    # -- generation ------------------------------------------------------------------------
    def _generate(self) -> Iterator[None]:
        p = self.profile
        t = self.t0_s
        first = True
        while True:
            gap = self._minutes("session_gap_minutes")
            if first:
                gap *= float(self.rng.uniform(0.0, 0.15))
                first = False
            start = self.windows.next_open(t + gap)
            if start is None:
                self._add_waiting(t, t + 365 * 86400)  # no opening left: wait out a year
                yield
                return
            start = self._q(max(start, t + self.dt_s))
            self._add_waiting(t, start)
            member = self.members[int(self.rng.integers(len(self.members)))] if self.members else "member"
            t = start
            if "setup_minutes" in p and self.has_controller:
                end = t + self._minutes("setup_minutes")
                self._add(Segment(t, end, "setup", p.get("setup", p["idle"]), member))
                t = self.segments[-1].end_s
            n_jobs = int(self.rng.integers(p["jobs_per_session"][0], p["jobs_per_session"][1] + 1))
            for j in range(n_jobs):
                if not self.windows.is_open(t):
                    break  # the workshop has closed: no new job starts
                self._job_counter += 1
                job_id = f"{self.machine}-{self._job_counter:05d}"
                prefix = p.get("program_prefix", "JOB")
                program = f"{prefix}{int(self.rng.integers(1000, 9999))}"
                level = float(self.rng.uniform(*p["processing"]))
                duration = self._minutes("job_minutes")
                rpm = float(self.rng.uniform(*p["spindle_rpm"])) if "spindle_rpm" in p else 0.0
                aborted = self.has_controller and self.rng.random() < p.get("fault_probability", 0.0)
                if aborted:
                    duration *= float(self.rng.uniform(0.3, 0.8))
                self._add(Segment(t, t + duration, "processing", level, member, program, job_id, rpm))
                seg = self.segments[-1]
                self.jobs.append(Job(self.machine, job_id, member, program, seg.start_s, seg.end_s,
                                     "aborted" if aborted else "ended"))
                t = seg.end_s
                if aborted:
                    end = t + self._minutes("pause_minutes")
                    self._add(Segment(t, end, "fault", p["idle"], member, program,
                                      alarm="EMERGENCY STOP pressed"))
                    t = self.segments[-1].end_s
                pause = self._minutes("pause_minutes")
                if j == n_jobs - 1:
                    pause *= 0.5
                self._add(Segment(t, t + pause, "idle", p["idle"], member, program))
                t = self.segments[-1].end_s
            if t > start:  # a session quantised onto the closing time holds nothing: no booking
                self.sessions.append(Session(self.machine, member, start, t))
            yield

    def extend_to(self, t: float) -> None:
        """Generate segments until they cover time t."""
        while not self.segments or self.segments[-1].end_s <= t:
            try:
                next(self._generator)
            except StopIteration:
                if not self.segments or self.segments[-1].end_s <= t:
                    self._add_waiting(self.segments[-1].end_s if self.segments else self.t0_s,
                                      t + 86400)
                return

    def segment_at(self, t: float) -> Segment:
        self.extend_to(t)
        i = bisect.bisect_right(self.starts, t) - 1
        return self.segments[max(i, 0)]

    def segment_index_array(self, times: np.ndarray) -> np.ndarray:
        """Index of the segment covering each time (times must be covered)."""
        return np.searchsorted(np.asarray(self.starts), times, side="right") - 1
