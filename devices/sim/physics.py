"""One physical model of the whole simulated workshop.

Every machine follows its schedule (devices/sim/schedule.py); power is constant within each
grid step of `dt_s` seconds (state level x rated power x (1 + noise)), so each energy counter is
the exact integral of power. Shared services run while a machine they serve processes; the
site main meter sees everything plus a base load. Meters, controllers and the ground truth all
read this one model, so power, counters and controller states agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from devices.sim.schedule import Job, MachineSchedule, OpenWindows, Session, load_profiles, profile_for
from devices.sim.signals import ControllerSignals
from devices.site import Site

SITE = "site"
NOISE_BLOCK = 4096
J_PER_KWH = 3.6e6


class _Grow:
    """A float64 array that grows at the end, indexed by grid step; the steps before `first`
    may be forgotten (forget_before) when no one will ask for them again."""

    def __init__(self, initial: float | None = None) -> None:
        self.data = np.zeros(1024)
        self.n = 0
        self.first = 0  # the grid step of data[0]
        if initial is not None:
            self.append(np.array([initial]))

    def append(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.data):
            bigger = np.zeros(max(need, 2 * len(self.data)))
            bigger[: self.n] = self.data[: self.n]
            self.data = bigger
        self.data[self.n: need] = values
        self.n = need

    def view(self) -> np.ndarray:
        return self.data[: self.n]

    def at(self, step):
        """The value(s) at grid step(s) (int or int array), steps from `first` on."""
        if not self.first:
            return self.data[: self.n][step]
        if np.min(step) < self.first:
            raise ValueError(f"grid step {np.min(step)} was forgotten (kept from step {self.first})")
        return self.data[step - self.first]

    def forget_before(self, step: int) -> None:
        """Drop the values before grid step `step` (the last value is always kept)."""
        drop = min(step - self.first, self.n - 1)
        if drop <= 0:
            return
        kept = self.data[drop: self.n]
        self.data = np.zeros(max(1024, 2 * len(kept)))
        self.data[: len(kept)] = kept
        self.n = len(kept)
        self.first += drop


@dataclass
class _Entity:
    name: str
    index: int
    rated_w: float
    profile: dict
    schedule: MachineSchedule | None = None
    serves: tuple[str, ...] = ()


class Workshop:
    """The simulated workshop of a site.

    seed: makes everything deterministic.
    t0_s: start of the simulation (Unix seconds); counters start there.
    pace: jobs and pauses run this many times faster than in life.
    dt_s: grid step [s]; defaults to 1 s at pace 1 and 0.25 s when paced.
    windows: opening windows (None: open all the time, as in a live paced run).
    """

    def __init__(self, site: Site, seed: int = 1, t0_s: float = 0.0, pace: float = 1.0,
                 dt_s: float | None = None, windows: OpenWindows | None = None) -> None:
        self.site = site
        self.seed = seed
        self.t0_s = t0_s
        self.pace = pace
        self.dt_s = dt_s if dt_s is not None else (1.0 if pace <= 1 else 0.25)
        profiles = load_profiles()
        members = sorted(site.members)
        self.entities: dict[str, _Entity] = {}
        for i, (name, machine) in enumerate(sorted(site.machines.items())):
            rng = np.random.default_rng([seed, i, 1])
            schedule = MachineSchedule(name, machine.kind, members, rng, t0_s, self.dt_s, pace,
                                       has_controller=site.controller_of(name) is not None,
                                       windows=windows)
            self.entities[name] = _Entity(name, i, machine.rated_power_w, profile_for(machine.kind),
                                          schedule)
        offset = len(self.entities)
        for j, (name, service) in enumerate(sorted(site.services.items())):
            rated = service.rated_power_w or 3000.0
            self.entities[name] = _Entity(name, offset + j, rated, profiles["service"],
                                          serves=tuple(service.serves))
        self.base_load_w = float(profiles["site"]["base_load_w"])
        self.entities[SITE] = _Entity(SITE, len(self.entities), self.base_load_w,
                                      profiles["service"])
        self._power = {name: _Grow() for name in self.entities}
        self._cum_kwh = {name: _Grow(0.0) for name in self.entities}
        self._steps = 0
        self.counter_offset_kwh = {}
        for k, name in enumerate(sorted(site.meters)):
            rng = np.random.default_rng([seed, 999, k])
            self.counter_offset_kwh[name] = float(np.round(rng.uniform(800.0, 9000.0), 1))

    # -- numerical core ----------------------------------------------------------------------
    def _noise(self, entity: _Entity, first: int, count: int) -> np.ndarray:
        """Standard normal noise per grid step, clipped at 3 sigma, random-access by step."""
        out = np.empty(count)
        done = 0
        while done < count:
            step = first + done
            block, offset = divmod(step, NOISE_BLOCK)
            values = np.random.default_rng([self.seed, entity.index, 7, block]).standard_normal(NOISE_BLOCK)
            take = min(NOISE_BLOCK - offset, count - done)
            out[done: done + take] = values[offset: offset + take]
            done += take
        return np.clip(out, -3.0, 3.0)

    def advance_to(self, t_s: float) -> None:
        """Compute every grid step up to and including the one holding t_s."""
        target = int(math.floor((t_s - self.t0_s) / self.dt_s)) + 1
        if target <= self._steps:
            return
        first, count = self._steps, target - self._steps
        mids = self.t0_s + (np.arange(first, target) + 0.5) * self.dt_s
        site_power = np.full(count, self.base_load_w)
        processing_now: dict[str, np.ndarray] = {}
        for name, ent in self.entities.items():
            if ent.schedule is None:
                continue
            ent.schedule.extend_to(float(mids[-1]))
            idx = ent.schedule.segment_index_array(mids)
            segs = ent.schedule.segments
            levels = np.array([segs[i].level for i in range(len(segs))])[idx]
            states = np.array([segs[i].state for i in range(len(segs))])[idx]
            power = levels * ent.rated_w * (1.0 + ent.profile["noise"] * self._noise(ent, first, count))
            power[states == "off"] = 0.0
            processing = (states == "processing").astype(float)
            processing_now[name] = processing
            self._store(name, power)
            site_power += power
        for name, ent in self.entities.items():
            if ent.schedule is not None or name == SITE:
                continue
            running = np.zeros(count, dtype=bool)
            for target_name in ent.serves:
                if target_name in processing_now:
                    running |= processing_now[target_name] > 0
            level = np.where(running, ent.profile["running"], ent.profile["standby"])
            power = level * ent.rated_w * (1.0 + ent.profile["noise"] * self._noise(ent, first, count))
            self._store(name, power)
            site_power += power
        self._store(SITE, site_power)
        self._steps = target

    def _store(self, name: str, power: np.ndarray) -> None:
        self._power[name].append(power)
        cum = self._cum_kwh[name]
        last = cum.view()[-1]
        cum.append(last + np.cumsum(power) * self.dt_s / J_PER_KWH)

    def _step(self, t_s: float) -> int:
        self.advance_to(t_s)
        k = int(math.floor((t_s - self.t0_s) / self.dt_s))
        return min(max(k, 0), self._steps - 1)

    def forget_before(self, t_s: float) -> None:
        """Let go of the grid steps before t_s: power and energy are asked for at t_s or later
        only from now on (a backfill moving forward day by day keeps its memory flat)."""
        step = int(math.floor((t_s - self.t0_s) / self.dt_s)) - 1
        for grown in (*self._power.values(), *self._cum_kwh.values()):
            grown.forget_before(step)

    # -- what the world sees -----------------------------------------------------------------
    def power_w(self, name: str, t_s: float) -> float:
        """Active power of a machine, service or 'site' at t_s [W]."""
        return float(self._power[name].at(self._step(t_s)))

    def energy_kwh(self, name: str, t_s: float) -> float:
        """Energy of a machine, service or 'site' from t0 to t_s [kWh] (exact integral)."""
        if t_s <= self.t0_s:
            return 0.0
        k = self._step(t_s)
        tk = self.t0_s + k * self.dt_s
        return float(self._cum_kwh[name].at(k) + self._power[name].at(k) * (t_s - tk) / J_PER_KWH)

    def power_series(self, name: str, times_s: np.ndarray) -> np.ndarray:
        """Vectorised power_w at many times [W]."""
        self.advance_to(float(np.max(times_s)))
        k = np.clip(np.floor((times_s - self.t0_s) / self.dt_s).astype(np.int64), 0, self._steps - 1)
        return self._power[name].at(k)

    def energy_series(self, name: str, times_s: np.ndarray) -> np.ndarray:
        """Vectorised energy_kwh at many times [kWh]."""
        self.advance_to(float(np.max(times_s)))
        k = np.clip(np.floor((times_s - self.t0_s) / self.dt_s).astype(np.int64), 0, self._steps - 1)
        tk = self.t0_s + k * self.dt_s
        out = self._cum_kwh[name].at(k) + self._power[name].at(k) * (times_s - tk) / J_PER_KWH
        return np.where(times_s <= self.t0_s, 0.0, out)

    def rated_w(self, name: str) -> float:
        return self.entities[name].rated_w

    def _phase_shares(self, feeds: str) -> list[float]:
        return list(self.entities[feeds].profile.get("phases", [1 / 3, 1 / 3, 1 / 3]))

    def meter_values_series(self, meter: str, times_s: np.ndarray) -> dict[str, np.ndarray]:
        """Every canonical quantity a meter measures, at many times."""
        feeds = self.site.meters[meter].feeds
        power = self.power_series(feeds, times_s)
        energy = self.energy_series(feeds, times_s) + self.counter_offset_kwh[meter]
        ent = self.entities[feeds]
        pf_low, pf_high = ent.profile.get("power_factor", [0.85, 0.95])
        load = np.clip(power / (0.7 * max(ent.rated_w, 1.0)), 0.0, 1.0)
        pf = pf_low + (pf_high - pf_low) * load
        out = {
            "power_w": power,
            "energy_import_kwh": energy,
            "energy_export_kwh": np.zeros_like(power),
            "power_factor": pf,
            "frequency_hz": 50.0 + 0.03 * np.sin(2 * np.pi * times_s / 300.0),
        }
        for i, share in enumerate(self._phase_shares(feeds), start=1):
            volts = 230.0 + 2.0 * np.sin(2 * np.pi * times_s / 600.0 + 2.1 * i)
            out[f"power_l{i}_w"] = power * share
            out[f"voltage_l{i}_v"] = volts
            out[f"current_l{i}_a"] = power * share / (volts * pf)
        return out

    def meter_values(self, meter: str, t_s: float) -> dict[str, float]:
        """Every canonical quantity a meter measures at t_s (what its registers hold)."""
        series = self.meter_values_series(meter, np.array([t_s]))
        return {k: float(v[0]) for k, v in series.items()}

    def controller_signals(self, machine: str, t_s: float) -> tuple[float, ControllerSignals]:
        """What the machine's controller shows at t_s, and since when (segment start)."""
        schedule = self.entities[machine].schedule
        seg = schedule.segment_at(t_s)
        parts = sum(1 for job in schedule.jobs if job.outcome == "ended" and job.end_s <= t_s)
        program = seg.program
        if seg.state == "processing":
            signals = ControllerSignals("running", "automatic", program, seg.spindle_rpm, 100.0, parts)
        elif seg.state == "setup":
            signals = ControllerSignals("stopped", "setup", program, 0.0, 100.0, parts)
        elif seg.state == "fault":
            signals = ControllerSignals("aborted", "automatic", program, 0.0, 100.0, parts, seg.alarm)
        elif seg.state == "idle":
            signals = ControllerSignals("ended", "automatic", program, 0.0, 100.0, parts)
        else:
            signals = ControllerSignals("stopped", "manual", "", 0.0, 100.0, parts)
        return seg.start_s, signals

    def machine_state(self, machine: str, t_s: float) -> str:
        return self.entities[machine].schedule.segment_at(t_s).state

    # -- ground truth ------------------------------------------------------------------------
    def jobs(self, until_s: float) -> list[Job]:
        """Jobs that ended by until_s."""
        out = []
        for ent in self.entities.values():
            if ent.schedule is not None:
                ent.schedule.extend_to(until_s)
                out += [j for j in ent.schedule.jobs if j.end_s <= until_s]
        return sorted(out, key=lambda j: (j.start_s, j.machine))

    def sessions(self, until_s: float) -> list[Session]:
        """Sessions that started by until_s (end clipped to until_s)."""
        out = []
        for ent in self.entities.values():
            if ent.schedule is not None:
                ent.schedule.extend_to(until_s)
                for s in ent.schedule.sessions:
                    if s.start_s < until_s:
                        out.append(Session(s.machine, s.member, s.start_s, min(s.end_s, until_s)))
        return sorted(out, key=lambda s: (s.start_s, s.machine))

    def machines(self) -> list[str]:
        return [n for n, e in self.entities.items() if e.schedule is not None]
