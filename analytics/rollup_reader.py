"""A machine's power through its hourly rollups: raw samples only where the analysis needs
them (analytics.rollup_plan says where; storage/rollup.py what a rollup holds). The store is
InfluxDB (analytics.influxql_reader) or the journal (analytics.inputs), each answering the
three questions of RollupSource.

For one machine over [start - margin, end + margin):

1. the rollups of the hours wholly inside (one query): block statistics and histograms;
2. raw samples of the hours that have no rollup (not packed yet, written by another program,
   or, in the journal, changed since they were packed) or are only partly inside;
3. the thresholds, from the site file or calibrated from the merged histogram (the same
   histogram as the samples': calibration bins are fixed);
4. hours that stand-in samples can replace; for the others, their minutes' statistics; raw
   samples of the minutes that cannot be replaced either.

The result is the arrays the analysis would have read raw, with replaced blocks thinned to
stand-in samples, plus the histogram of every sample for calibration and the counter's
smallest step (the readings kept are fewer). A machine fed by several meters, a shared
service (its energy is cut where the machines it serves change state), and every machine when
max_gap_s is under a minute, are read raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from analytics.intervals import is_in
from analytics.records import Session
from analytics.rollup_plan import replaceable, stand_in, zone_edges
from analytics.window import AnalysisWindow, plan_window
from analytics.states import PowerHistogram, calibrate_from_histogram
from devices import vocabulary
from storage.rollup import COLUMN, ROLLUP_S, STAT_COLUMNS, unpack_histograms, unpack_many

HOUR_NS = int(ROLLUP_S * 1e9)


@dataclass
class RollupSettings:
    """What the analysis will do with the samples (it decides which blocks can be replaced)."""

    cuts: AnalysisWindow
    max_gap_s: float
    hysteresis: float


@dataclass
class PowerRead:
    """A machine's power and counter as the analysis gets them (see module docstring)."""

    time_s: np.ndarray
    power_w: np.ndarray
    counter_time_s: np.ndarray
    energy_import_kwh: np.ndarray
    histogram: PowerHistogram
    counter_min_step_kwh: float | None
    raw_samples: int  # samples read from the meter measurement (the rest came from rollups)


class RollupSource(Protocol):
    """What RollupReader asks a store, for the one meter that feeds a machine."""

    def rollup_hours(self, machine: str, first_ns: int, last_ns: int) -> list[tuple] | None:
        """(hour_ns, hour, histogram, power_max_w) of the machine's rollups of ROLLUP_FORMAT
        starting in [first_ns, last_ns), hour and histogram packed; None for several meters."""

    def rollup_minutes(self, machine: str, hours_ns: np.ndarray) -> tuple[list[tuple[str, str | None]], list[int]]:
        """(minutes, detail) texts of the rollups of these hours (time order), and the hours
        that have no minutes."""

    def raw_rows(self, machine: str, ranges_ns: list[tuple[int, int]], join_gap_ns: int = 0) -> np.ndarray | None:
        """(minute_s, time_s, power_w, energy_import_kwh) rows of the meter in the ranges
        (those at most join_gap_ns apart read as one), or None for several meters."""


def minute_rows(time_ns: np.ndarray, power_w: np.ndarray, energy_import_kwh: np.ndarray) -> np.ndarray:
    """(minute_s, time_s, power_w, energy_import_kwh) rows of samples; times are
    float64(time_ns) / 1e9, as the other readers compute them."""
    time_ns = np.asarray(time_ns, dtype=np.int64)
    minute_s = (time_ns - time_ns % (60 * 10**9)).astype(np.float64) / 1e9
    return np.column_stack([minute_s, time_ns.astype(np.float64) / 1e9, power_w, energy_import_kwh])


def raw_rows_of_series(series: list[dict]) -> np.ndarray | None:
    """minute_rows of one meter's InfluxQL series (columns time, power_w,
    energy_import_kwh), or None for several meters."""
    meters = {s.get("tags", {}).get(vocabulary.TAG_METER, "") for s in series}
    if len(meters) > 1:
        return None
    rows = [r for s in series for r in s["values"]]
    if not rows:
        return np.empty((0, 4))
    time_ns = np.array([r[0] for r in rows], dtype=np.int64)
    values = np.array([(np.nan if r[1] is None else r[1], np.nan if r[2] is None else r[2]) for r in rows],
                      dtype=np.float64).reshape(-1, 2)
    return minute_rows(time_ns, values[:, 0], values[:, 1])


class RollupReader:
    """Reads machines' power through rollups from a RollupSource (InfluxDB or the journal)."""

    def __init__(self, source: RollupSource, settings: RollupSettings) -> None:
        self.source = source
        self.settings = settings

    def read(self, machine: str, lo_s: float, hi_s: float, thresholds_w, rated_power_w: float | None,
             controller_time_s=None) -> PowerRead | None:
        """The power of `machine` over [lo_s, hi_s) (the window and its margins), or None when
        it must be read raw (several meters, no rollups, or max_gap_s under a minute)."""
        s = self.settings
        lo_ns, hi_ns = int(lo_s * 1e9), int(hi_s * 1e9)
        first_hour = -(-lo_ns // HOUR_NS) * HOUR_NS
        last_hour = hi_ns // HOUR_NS * HOUR_NS  # hours [first_hour, last_hour) are wholly inside
        if last_hour <= first_hour:
            return None
        rows = self.source.rollup_hours(machine, first_hour, last_hour)
        if not rows:
            return None  # several meters (the raw path sums them), or no rollups
        hour_ns = np.array([r[0] for r in rows], dtype=np.int64)
        hours = unpack_many([r[1] for r in rows], len(STAT_COLUMNS))
        parts = [PowerHistogram.summed(*unpack_histograms([r[2] for r in rows]), max(float(r[3]) for r in rows))]
        # raw where there is no rollup: partial hours at the ends, hours not rolled up
        covered = set(hour_ns.tolist())
        uncovered = [(lo_ns, min(first_hour, hi_ns))] if lo_ns < first_hour else []
        uncovered += [(h, h + HOUR_NS) for h in range(first_hour, last_hour, HOUR_NS) if h not in covered]
        if last_hour < hi_ns:
            uncovered.append((max(last_hour, lo_ns), hi_ns))
        raw_uncovered = self.source.raw_rows(machine, uncovered) if uncovered else np.empty((0, 4))
        if raw_uncovered is None:
            return None
        parts.append(PowerHistogram.of(raw_uncovered[:, 2]))
        histogram = PowerHistogram.merge(parts)
        if thresholds_w is None:
            thresholds_w = calibrate_from_histogram(histogram, rated_power_w).thresholds_w
        edges = zone_edges(thresholds_w, s.hysteresis)
        cuts = s.cuts.cut_times(machine, controller_time_s)
        whole = replaceable(hours, edges, s.max_gap_s, cuts)
        # minutes of the other hours
        detail_hours = hour_ns[~whole]
        minutes = np.empty((0, len(STAT_COLUMNS)))
        kept_samples = np.empty((0, 4))
        unread_hours: list[int] = []
        if len(detail_hours):
            found, unread_hours = self.source.rollup_minutes(machine, detail_hours)
            if found:
                minutes = unpack_many([m for m, _ in found], len(STAT_COLUMNS))
                kept_samples = unpack_many([d for _, d in found if d], 4)
        small = replaceable(minutes, edges, s.max_gap_s, cuts)
        in_rollup = minutes[:, COLUMN["detail"]] == 1.0
        # the samples of minutes that cannot be replaced: from the rollups' detail where they
        # are there, else raw (ranges a minute or two apart read as one: a statement costs
        # InfluxDB about as much as 100 samples)
        raw_detail = kept_samples[is_in(kept_samples[:, 0], minutes[~small & in_rollup, COLUMN["block_s"]])]
        raw_minutes = minutes[~small & ~in_rollup, COLUMN["block_s"]]
        # hours whose minutes are missing (a rollup without them): every minute read raw
        raw_minutes = np.concatenate([raw_minutes] + [np.arange(h, h + HOUR_NS, 60 * 10**9).astype(np.float64) / 1e9
                                                      for h in unread_hours])
        from_rollups = len(raw_detail)
        if len(raw_minutes):
            ranges = [(int(round(m * 1e9)), int(round(m * 1e9)) + 60 * 10**9) for m in raw_minutes]
            fetched = self.source.raw_rows(machine, ranges, join_gap_ns=120 * 10**9)
            if fetched is None:
                return None
            # joined ranges also bring minutes that stand-ins replace: only the wanted ones
            raw_detail = np.concatenate([raw_detail, fetched[is_in(fetched[:, 0], raw_minutes)]])
        raw = np.concatenate([raw_uncovered, raw_detail])[:, 1:]  # (time_s, power_w, energy_import_kwh)
        return _assemble(np.concatenate([hours[whole], minutes[small]]), raw, histogram,
                         len(raw) - from_rollups)


def _assemble(kept: np.ndarray, raw: np.ndarray, histogram: PowerHistogram, raw_samples: int) -> PowerRead:
    """Stand-in samples of the kept blocks (statistics rows) and the raw rows (time_s,
    power_w, energy_import_kwh), in time order, with the counter's smallest forward step."""
    t_in, p_in, ct_in, c_in = stand_in(kept)
    time_s = np.concatenate([t_in, raw[:, 0]])
    order = np.argsort(time_s, kind="stable")
    has_counter = ~np.isnan(raw[:, 2])
    counter_time_s = np.concatenate([ct_in, raw[has_counter, 0]])
    c_order = np.argsort(counter_time_s, kind="stable")
    counter_kwh = np.concatenate([c_in, raw[has_counter, 2]])[c_order]
    steps = np.concatenate([np.diff(counter_kwh), kept[:, COLUMN["counter_min_step_kwh"]]])
    forward = steps[np.isfinite(steps) & (steps > 0)]
    return PowerRead(time_s[order], np.concatenate([p_in, raw[:, 1]])[order], counter_time_s[c_order],
                     counter_kwh, histogram, float(forward.min()) if len(forward) else None, raw_samples)


def merge_ranges(ranges_ns: list[tuple[int, int]], join_gap_ns: int = 0) -> list[tuple[int, int]]:
    """Sorted ranges with those less than join_gap_ns apart (touching, overlapping) joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges_ns):
        if out and a <= out[-1][1] + join_gap_ns:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def cut_context(site, sessions: list[Session], start_s: float, end_s: float, options) -> AnalysisWindow:
    """The window of an analysis, which lists where it cuts energy (options:
    analytics.pipeline.AnalysisOptions; the same object the pipeline plans with)."""
    return plan_window(site, sessions, start_s, end_s, options.timezone, options.tariff,
                       options.emission_factor_kg_per_kwh, options.hourly_emission_factors)
