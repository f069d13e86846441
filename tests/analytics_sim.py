"""Simulated workshop data as analytics inputs (MachineData, ControllerData, Session), at pace 1.

Built straight from the physical model (devices.sim.physics), not through the protocols: meter
power and counters sampled on the 1 s grid, controller changes at the instants the schedule
changes, sessions as the simulation booked them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from analytics.records import ControllerData, MachineData, Session
from devices.calendar import opening_windows
from devices.sim.physics import Workshop
from devices.sim.schedule import OpenWindows
from devices.site import Site


def weekday_morning(site: Site) -> float:
    """Tuesday 10 March 2026, 08:00 in the site's zone (Unix seconds)."""
    return dt.datetime(2026, 3, 10, 8, 0, tzinfo=site.tz).timestamp()


def workshop(site: Site, t0_s: float, end_s: float, seed: int = 1) -> Workshop:
    windows = OpenWindows(opening_windows(site, t0_s, end_s))
    return Workshop(site, seed=seed, t0_s=t0_s, pace=1.0, dt_s=1.0, windows=windows)


def controller_data(w: Workshop, machine: str, end_s: float) -> ControllerData:
    schedule = w.entities[machine].schedule
    schedule.extend_to(end_s)
    times, execution, mode, program = [], [], [], []
    for seg in schedule.segments:
        if seg.start_s >= end_s:
            break
        _, signals = w.controller_signals(machine, seg.start_s)
        times.append(seg.start_s)
        execution.append(signals.execution)
        mode.append(signals.mode)
        program.append(signals.program)
    return ControllerData(np.array(times), np.array(execution, dtype=object),
                          np.array(mode, dtype=object), np.array(program, dtype=object))


def machine_data(site: Site, w: Workshop, t0_s: float, end_s: float, step_s: float = 1.0,
                 controllers: bool = True, counters: bool = True) -> list[MachineData]:
    times = np.arange(t0_s, end_s + step_s / 2, step_s)
    out = []
    for name in list(site.machines) + list(site.services):
        meter = next(m for m, spec in site.meters.items() if spec.feeds == name)
        values = w.meter_values_series(meter, times)
        ctl = site.controller_of(name)
        out.append(MachineData(
            name, times, values["power_w"],
            counter_time_s=times if counters else np.empty(0),
            energy_import_kwh=values["energy_import_kwh"] if counters else np.empty(0),
            rated_power_w=w.rated_w(name),
            controller=controller_data(w, name, end_s) if (ctl and controllers) else None,
            is_service=name in site.services))
    return out


def sessions(w: Workshop, end_s: float) -> list[Session]:
    return [Session(s.machine, s.member, s.start_s, s.end_s, "sim") for s in w.sessions(end_s)]


def machine_data_from_rows(site: Site, w: Workshop, rows, end_s: float,
                           controllers: bool = True, counters: bool = True) -> list[MachineData]:
    """MachineData from backfill rows (devices.sim.backfill.Row), as a journal would hold them:
    each meter's power and counter at the times of its rows (a power hole leaves both out);
    controller changes from the model."""
    meter_rows: dict[str, list] = {}
    for row in rows:
        if row.measurement == "meter":
            meter_rows.setdefault(row.tags["meter"], []).append(row)
    out = []
    for name in list(site.machines) + list(site.services):
        meter = next(m for m, spec in site.meters.items() if spec.feeds == name)
        mine = sorted(meter_rows.get(meter, []), key=lambda r: r.time_ns)
        times = np.array([r.time_ns for r in mine], dtype=np.int64) / 1e9
        power = np.array([r.fields["power_w"] for r in mine], dtype=np.float64)
        energy = np.array([r.fields["energy_import_kwh"] for r in mine], dtype=np.float64)
        ctl = site.controller_of(name)
        out.append(MachineData(
            name, times, power,
            counter_time_s=times if counters else np.empty(0),
            energy_import_kwh=energy if counters else np.empty(0),
            rated_power_w=w.rated_w(name),
            controller=controller_data(w, name, end_s) if (ctl and controllers) else None,
            is_service=name in site.services))
    return out
