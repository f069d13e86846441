"""Weeks of simulated history from the same physical model, without protocols.

Produces the rows the collector would have journaled: meter readings at each meter's poll
interval and controller changes at the instants they happen, chunk by chunk (one day at a
time) so memory stays flat. Each reading holds what the meter's registers carry, not the
model's float64: the model value encoded as the simulated meter's Modbus server does and
decoded as the collector does (devices.sim.register_values: float32-rounded, or a whole number
of register steps x scale). Opening hours are honoured in the site's time zone. Power holes
(devices.sim.holes) leave out a meter's rows inside them, its power and its counter alike, as a
collector that got no answer would; the model runs on, so the first row after a hole shows the
counter advanced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields as dc_fields

import numpy as np

from devices import vocabulary as v
from devices.calendar import opening_windows
from devices.meter_models import load_model
from devices.sim.holes import PowerHole, check_power_holes, hole_windows, in_windows
from devices.sim.physics import Workshop
from devices.sim.register_values import register_values
from devices.sim.schedule import OpenWindows
from devices.site import Site

CHUNK_S = 86400.0


@dataclass(frozen=True)
class Row:
    """One point: measurement, tags, fields, time [ns since the Unix epoch]."""

    measurement: str
    tags: dict[str, str]
    fields: dict
    time_ns: int


def backfill_workshop(site: Site, start_s: float, end_s: float, seed: int = 1) -> Workshop:
    windows = OpenWindows(opening_windows(site, start_s, end_s))
    return Workshop(site, seed=seed, t0_s=start_s, pace=1.0, dt_s=1.0, windows=windows)


@dataclass(frozen=True)
class MeterColumns:
    """One meter's readings of a chunk, column by column: tags, times [ns since the Unix epoch],
    {quantity: values as journaled from the model's registers}."""

    tags: dict[str, str]
    time_ns: np.ndarray
    columns: dict[str, np.ndarray]


def backfill_chunks(site: Site, workshop: Workshop, start_s: float, end_s: float,
                    power_holes: Iterable[PowerHole] = (), forget: bool = False
                    ) -> Iterator[tuple[float, list[MeterColumns], list[Row]]]:
    """Yield (chunk end [s], each meter's readings as columns, controller rows) for each chunk
    of the window, in time order per series.

    power_holes: meters' holes, their offsets from start_s; no reading of that meter inside one.
    forget: let the workshop forget each chunk's power once it is yielded (memory stays flat
    over a month; the workshop cannot answer for those times afterwards).
    """
    site_name = site.site.name
    holes = hole_windows(check_power_holes(power_holes, site), start_s)
    t = start_s
    while t < end_s:
        chunk_end = min(t + CHUNK_S, end_s)
        meters: list[MeterColumns] = []
        for name, meter in sorted(site.meters.items()):
            model = load_model(meter.model)
            interval = meter.poll_interval_s
            first = start_s + np.ceil((t - start_s) / interval) * interval
            times = np.arange(first, chunk_end, interval)
            if name in holes:
                times = times[~in_windows(holes[name], times)]
            if len(times) == 0:
                continue
            values = workshop.meter_values_series(name, times)
            # each column as journaled from the point's registers
            columns = {p.quantity: register_values(p, values[p.quantity])
                       for p in model.points if p.quantity in values}
            tags = {v.TAG_SITE: site_name, v.TAG_METER: name, v.TAG_MACHINE: meter.feeds}
            meters.append(MeterColumns(tags, (times * 1e9).astype(np.int64), columns))
        rows: list[Row] = []
        for ctl_name, ctl in sorted(site.controllers.items()):
            schedule = workshop.entities[ctl.machine].schedule
            schedule.extend_to(chunk_end)
            tags = {v.TAG_SITE: site_name, v.TAG_MACHINE: ctl.machine, v.TAG_CONTROLLER: ctl_name}
            for seg in schedule.segments:
                if t <= seg.start_s < chunk_end:
                    _, signals = workshop.controller_signals(ctl.machine, seg.start_s)
                    row_fields = {f.name: getattr(signals, f.name) for f in dc_fields(signals)}
                    rows.append(Row(v.CNC, tags, row_fields, int(round(seg.start_s * 1e9))))
        yield chunk_end, meters, rows
        if forget:
            workshop.forget_before(chunk_end)
        t = chunk_end


def backfill_rows(site: Site, workshop: Workshop, start_s: float, end_s: float,
                  power_holes: Iterable[PowerHole] = ()) -> Iterator[tuple[float, list[Row]]]:
    """Yield (chunk end [s], rows) for each chunk of the window, in time order per series: the
    readings of backfill_chunks as one row per meter reading, then the controller rows."""
    for chunk_end, meters, controller_rows in backfill_chunks(site, workshop, start_s, end_s, power_holes):
        rows: list[Row] = []
        for m in meters:
            keys = list(m.columns)
            matrix = np.column_stack([m.columns[k] for k in keys]).tolist()
            rows.extend(Row(v.METER, m.tags, dict(zip(keys, vals)), tn)
                        for tn, vals in zip(m.time_ns.tolist(), matrix))
        yield chunk_end, rows + controller_rows
