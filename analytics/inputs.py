"""Analysis inputs from the journal: one MachineData per machine and shared service of a site.

A machine's power and energy counter come from the meter that feeds it (the `meter`
measurement, tag `machine`); when several meters feed one machine, their power is summed on
the first meter's timestamps and their counters are left out (no single counter to reconcile
with). Its controller signals come from the `cnc` measurement with the same `machine` tag.
Arrays hold the window [start_s, end_s) plus one sample on each side when there is one, so
energy can be cut exactly at the window's ends.

Meter power and counters are read through storage.journal_reader, which merges the journal's
packed hours and its point rows (storage/journal_schema.py): the same numbers either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from storage.journal_reader import JournalReader
from analytics.records import ControllerData, MachineData
from analytics.rollup_reader import RollupReader, RollupSettings, merge_ranges, minute_rows
from devices import vocabulary
from devices.meter_models import load_model
from storage.rollup import ROLLUP_FORMAT
from devices.site import Site

# Samples either side of the window, so interpolation at its ends has a neighbour.
EDGE_MARGIN_S = 3600.0


def counter_resolution_kwh(model_name: str, value_kwh: float) -> float | None:
    """The meter model's energy counter step near value_kwh (from its register map)."""
    try:
        point = load_model(model_name).point(vocabulary.METER_QUANTITIES["energy_import_kwh"].name)
    except (KeyError, ValueError, FileNotFoundError):
        return None
    return point.resolution(value_kwh)


_INT_BITS = {"uint16": 16, "uint32": 32, "uint64": 64, "int16": 15, "int32": 31, "int64": 63}


def counter_rollover_kwh(model_name: str) -> float | None:
    """Where the meter model's energy counter register wraps round to zero [kWh] (an integer
    register of n bits times its scale); None for float registers (no wrap) or when unknown."""
    try:
        point = load_model(model_name).point("energy_import_kwh")
    except (KeyError, ValueError, FileNotFoundError):
        return None
    bits = _INT_BITS.get(point.type)
    return None if bits is None else float(2**bits) * abs(point.scale)


class JournalInputs(JournalReader):
    """Read analysis inputs from a journal file (read-only); given RollupSettings, a machine's
    power is read through the hourly rollups the journal wrote when it packed each hour
    (analytics.rollup_reader), for the hours whose points are still all packed as they were
    then (storage.journal_reader.JournalReader.whole_packed_hours)."""

    def __init__(self, path: str | Path, rollups: RollupSettings | None = None) -> None:
        super().__init__(path)
        # read once, looked up for every machine: the measurements read here (results and
        # bookings are many series, read elsewhere)
        self._all_series = [s for m in (vocabulary.METER, vocabulary.ROLLUP, vocabulary.CNC) for s in self.series(m)]
        self.rollups = None if rollups is None else RollupReader(self, rollups)
        # (machine, first_ns, last_ns, rows) of the rollups read last (_read_rollups)
        self._rollups_read: tuple[str, int, int, list[tuple[int, dict]]] | None = None

    def _series_ids(self, measurement: str, **tags: str) -> list[int]:
        return [s.series_id for s in self._all_series
                if s.measurement == measurement and all(s.tags.get(k) == v for k, v in tags.items())]

    @staticmethod
    def _span_ns(start_s: float, end_s: float, margin_s: float = EDGE_MARGIN_S) -> tuple[int, int]:
        return int((start_s - margin_s) * 1e9), int((end_s + margin_s) * 1e9)

    def power_and_counter(self, machine: str, start_s: float, end_s: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(power_time_s, power_w, counter_time_s, energy_import_kwh) of the meters feeding a
        machine or service, the window plus the edge margin."""
        sids = self._series_ids(vocabulary.METER, machine=machine)
        if not sids:
            empty = np.empty(0)
            return empty, empty, empty, empty
        if len(sids) > 1:
            return self._summed_power(sids, start_s, end_s)
        time_ns, values = self.numeric_series(sids[0], ("power_w", "energy_import_kwh"), *self._span_ns(start_s, end_s))
        time_s = time_ns / 1e9
        counter = values[1]
        if np.isnan(counter).any():
            has_counter = ~np.isnan(counter)
            return time_s, values[0], time_s[has_counter], counter[has_counter]
        return time_s, values[0], time_s, counter

    def _summed_power(self, sids: list[int], start_s: float, end_s: float):
        base_time, base_power = None, None
        for sid in sids:
            time_ns, values = self.numeric_series(sid, ("power_w",), *self._span_ns(start_s, end_s))
            t, p = time_ns / 1e9, values[0]
            if base_time is None:
                base_time, base_power = t, p
            elif len(t):
                ok = ~np.isnan(p)
                base_power = base_power + np.interp(base_time, t[ok], p[ok], left=np.nan, right=np.nan)
        empty = np.empty(0)
        return base_time if base_time is not None else empty, \
            base_power if base_power is not None else empty, empty, empty

    # -- rollups (analytics.rollup_reader.RollupSource) -----------------------------------------
    def _meter_and_rollup(self, machine: str) -> tuple[int, int] | None:
        meters = self._series_ids(vocabulary.METER, machine=machine)
        rollups = self._series_ids(vocabulary.ROLLUP, machine=machine)
        if len(meters) != 1 or len(rollups) != 1:
            return None
        return meters[0], rollups[0]

    def rollup_hours(self, machine: str, first_ns: int, last_ns: int) -> list[tuple] | None:
        ids = self._meter_and_rollup(machine)
        if ids is None:
            return None
        meter, rollup = ids
        whole = self.whole_packed_hours(meter, first_ns, last_ns)
        rows = self._read_rollups(machine, rollup, first_ns, last_ns)
        out = []
        for t, f in rows:
            hour, histogram, max_w = f.get("hour"), f.get("histogram"), f.get("power_max_w")
            if t in whole and hour and histogram and max_w is not None and f.get("format") == ROLLUP_FORMAT:
                out.append((t, hour, histogram, max_w))
        return out

    def rollup_minutes(self, machine: str, hours_ns: np.ndarray) -> tuple[list[tuple[str, str | None]], list[int]]:
        wanted = set(hours_ns.tolist())
        if not wanted:
            return [], []
        read = self._rollups_read
        if read is None or read[0] != machine or not read[1] <= min(wanted) <= max(wanted) < read[2]:
            ids = self._meter_and_rollup(machine)
            if ids is None:
                return [], sorted(wanted)
            read = (machine, 0, 0, self._read_rollups(machine, ids[1], min(wanted), max(wanted) + 1))
        by_hour = {t: (f.get("minutes"), f.get("detail")) for t, f in read[3] if f.get("minutes") and t in wanted}
        return [by_hour[h] for h in sorted(by_hour)], sorted(wanted - set(by_hour))

    def _read_rollups(self, machine: str, rollup: int, first_ns: int, last_ns: int) -> list[tuple[int, dict]]:
        """The rollup rows of a machine's meter in [first_ns, last_ns), read and parsed once:
        rollup_minutes asks next for the minutes and detail of some of the hours rollup_hours
        read, and finds them here (one read instead of SQLite parsing each row's JSON once per
        field asked)."""
        rows = self.rollup_rows(rollup, first_ns, last_ns)
        self._rollups_read = (machine, first_ns, last_ns, rows)
        return rows

    def raw_rows(self, machine: str, ranges_ns: list[tuple[int, int]], join_gap_ns: int = 0) -> np.ndarray | None:
        sids = self._series_ids(vocabulary.METER, machine=machine)
        if len(sids) != 1:
            return None
        ranges = merge_ranges(ranges_ns, join_gap_ns)
        if not ranges:
            return np.empty((0, 4))
        time_ns, values = self.numeric_ranges(sids[0], ("power_w", "energy_import_kwh"), ranges)
        return minute_rows(time_ns, values[0], values[1])

    def controller(self, machine: str, start_s: float, end_s: float) -> ControllerData | None:
        """Controller changes of a machine (window plus margin), or None without a controller."""
        sids = self._series_ids(vocabulary.CNC, machine=machine)
        if not sids:
            return None
        # Before the window, the last known state matters however old: a day of margin.
        rows = self.field_rows(sids, ["execution", "mode", "program"], *self._span_ns(start_s, end_s, 86400.0))
        time_s = np.array([r[0] for r in rows], dtype=np.float64) / 1e9
        column = lambda i: np.array([r[i] for r in rows], dtype=object)  # noqa: E731
        return ControllerData(time_s, column(1), column(2), column(3))

    def machine_data(self, site: Site, start_s: float, end_s: float) -> list[MachineData]:
        return machine_data(self, site, start_s, end_s)

    def iter_machine_data(self, site: Site, start_s: float, end_s: float,
                          names: list[str] | None = None) -> Iterator[MachineData]:
        return iter_machine_data(self, site, start_s, end_s, names)


def machine_data(source, site: Site, start_s: float, end_s: float) -> list[MachineData]:
    """Inputs of every machine and shared service of the site over [start_s, end_s), from a
    source with `power_and_counter(name, start_s, end_s)` and `controller(name, start_s, end_s)`
    (the journal, or InfluxDB: analytics.influxql_reader)."""
    return list(iter_machine_data(source, site, start_s, end_s))


MAIN_METER = "site"
"""What the site's main meter feeds (devices.site: feeds = "site"), the name it is read under."""


def site_machine_names(site: Site) -> list[str]:
    """Machines then shared services of a site, in the order the analysis reports them, then
    the main meter (MAIN_METER) when the site has one."""
    main = [MAIN_METER] if site.meters_of(MAIN_METER) and MAIN_METER not in site.machines else []
    return list(site.machines) + list(site.services) + main


def meter_accuracy(meters: dict) -> tuple[float | None, str]:
    """(relative accuracy [share] or None, the class as text) of the meter feeding a machine:
    its model's tightest stated class (devices.meter_models); unknown for several meters or a
    model whose datasheet states none."""
    if len(meters) != 1:
        return None, "unknown"
    try:
        model = load_model(next(iter(meters.values())).model)
    except (KeyError, ValueError, FileNotFoundError):
        return None, "unknown"
    share = model.relative_accuracy()
    known = [a for a in model.accuracy if a.known]
    if share is None or not known:
        return None, "unknown"
    best = min(known, key=lambda a: a.relative_accuracy())
    return share, f"{best.standard} class {best.class_}"


def iter_machine_data(source, site: Site, start_s: float, end_s: float,
                      names: list[str] | None = None) -> Iterator[MachineData]:
    """As machine_data, one machine at a time (read when the analysis asks for it, so only one
    machine's samples are in memory at once); `names`: only these machines and services."""
    wanted = site_machine_names(site) if names is None else names
    for name in wanted:
        is_main = name == MAIN_METER and name not in site.machines
        is_service = name in site.services
        if is_main:
            rated, thresholds = None, None
        elif is_service:
            service = site.services[name]
            rated, thresholds = service.rated_power_w, None
        else:
            machine = site.machines[name]
            rated = machine.rated_power_w
            th = machine.thresholds
            thresholds = (th.standby_w, th.idle_w, th.processing_w) if th else None
        controller = None if is_service or is_main else source.controller(name, start_s, end_s)
        # through rollups where the source was given RollupSettings, else every sample
        rollups = getattr(source, "rollups", None)
        power = None
        if rollups is not None and not (is_service or is_main):
            power = rollups.read(name, start_s - EDGE_MARGIN_S, end_s + EDGE_MARGIN_S, thresholds, rated,
                                 None if controller is None else controller.time_s)
        if power is not None:
            pt, pw, ct, ce = power.time_s, power.power_w, power.counter_time_s, power.energy_import_kwh
        else:
            pt, pw, ct, ce = source.power_and_counter(name, start_s, end_s)
        meters = site.meters_of(name)
        resolution = rollover = None
        if len(meters) == 1 and len(ce):
            model = next(iter(meters.values())).model
            resolution = counter_resolution_kwh(model, float(ce[-1]))
            rollover = counter_rollover_kwh(model)
        if resolution is None and power is not None:
            resolution = power.counter_min_step_kwh  # as the counter's readings would give it
        share, accuracy = meter_accuracy(meters)
        yield MachineData(
            name=name, power_time_s=pt, power_w=pw, counter_time_s=ct, energy_import_kwh=ce,
            counter_resolution_kwh=resolution, rated_power_w=rated, thresholds_w=thresholds,
            controller=controller, is_service=is_service, counter_rollover_kwh=rollover,
            power_histogram=None if power is None else power.histogram,
            relative_accuracy=share, accuracy=accuracy, is_main=is_main)
