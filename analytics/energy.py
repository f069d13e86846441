"""Energy in time intervals, from power samples and from cumulative energy counters.

Energy from power is the trapezoidal integral of the samples, cut exactly at each interval's
ends (power interpolated linearly between the two samples around a cut). Two samples farther
apart than ``max_gap_s`` are a gap: nothing is bridged across it, and each result carries its
**coverage**, the share of the interval that lies between two samples no more than
``max_gap_s`` apart. NaN samples are no data (dropped before integrating, so two valid samples
around a NaN are joined when they are close enough).

The integral is computed once as a cumulative curve (one pass over the N samples); the energy
of each of J intervals is then two look-ups, O(J log N) in all (docs/design.md, "Energy in an
interval").

Energy from a cumulative counter (``energy_import_kwh``) is the difference of the counter,
interpolated linearly between readings, after counter resets (the counter starts again from
zero) and rollovers (a fixed-width register wraps round) have been undone.

Steps at state changes (``step_at_changes``): linear interpolation suits power that drifts, not
a machine switching between states. Between a sample before a change and the one after it, the
trapezoid draws a ramp, and an interval cut at the change (a job's start) gets 3/8 of the ramp
instead of the expected 1/2 (the true switch lies anywhere in the step): a job loses a quarter
of a sample step at the power difference, at each edge. The pipeline therefore inserts a step
in power at each state change found between two joined samples (each sample's power holds up
to the change), which makes the edge error zero on average and leaves the total energy of a
midpoint change unchanged.

Reconciliation: where a machine has both, each day's power-based energy is scaled so that the
day's sum matches the counter's delta within the counter's resolution; per-job energies are the
power-based ones times their day's scale. Both figures are kept.

Units: time [s since the Unix epoch, UTC], power [W], energy [kWh] (the curves work in J
internally: 1 kWh = 3.6e6 J).

References
----------
.. [1] ISO 50006:2014, Energy management systems — Measuring energy performance using energy
   baselines and energy performance indicators (energy over a period, data coverage).
.. [2] IEC 62053-21:2020, Electricity metering equipment — Static meters for AC active energy
   (the cumulative import register and its resolution).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from analytics.arrays import clamp

J_PER_KWH = 3.6e6
DEFAULT_MAX_GAP_S = 120.0
"""Default longest stretch between two power samples that is still integrated [s].

Meters are polled every 1-2 s (the site file's ``poll_interval_s``), so 120 s bridges a lost
minute of polling (a gateway restart, a busy RS-485 line) while an outage longer than two
minutes, in which a job can start or stop unseen, is reported as missing coverage instead of
being guessed.
"""

WRAP_SHARE = 0.1
"""A backwards counter step is a rollover only when the counter, wrapped round, moved forward by
less than this share of its range (it was near the top); otherwise it is a reset."""


class Cumulative(Protocol):
    """A non-decreasing cumulative quantity of time (energy [kWh], CO2e [kg], cost)."""

    def at(self, time_s: np.ndarray) -> np.ndarray:
        """Cumulative value at each time (same shape as time_s)."""



def _median(values: np.ndarray) -> float:
    """The median of finite values, as np.median computes it, without the numpy.ma import
    np.median makes in every fresh process (5 ms of each forked analysis worker)."""
    ordered = np.sort(values)
    n = len(ordered)
    return float(ordered[n // 2]) if n % 2 else float((ordered[n // 2 - 1] + ordered[n // 2]) / 2)

def _as_1d(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _check_intervals(starts_s: np.ndarray, ends_s: np.ndarray) -> None:
    if starts_s.shape != ends_s.shape:
        raise ValueError(f"starts_s and ends_s differ in length: {starts_s.shape} vs {ends_s.shape}")
    if len(starts_s) and not np.all(ends_s >= starts_s):
        bad = int(np.flatnonzero(~(ends_s >= starts_s))[0])
        raise ValueError(f"interval {bad} ends before it starts (or holds NaN): "
                         f"{starts_s[bad]} .. {ends_s[bad]}")


class EnergyCurve:
    """Cumulative energy of a power series (trapezoid rule, gaps not bridged).

    Parameters
    ----------
    time_s : array [s]
        Sample times, non-decreasing (Unix seconds).
    power_w : array [W]
        Power samples; NaN means no reading.
    max_gap_s : float [s]
        Two samples farther apart than this are not joined (None: join everything).

    Building the curve reads the samples once, block by block so that the step, the trapezoid
    and the running sum of a block stay in the processor's cache, and keeps 8 bytes per sample
    (the cumulative energy) plus the list of gaps; the covered time at a sample is its time
    since the first sample minus the gaps before it. Each look-up is a binary search.
    """

    BLOCK = 1 << 15  # samples per block (256 KiB per float64 array)

    def __init__(self, time_s, power_w, max_gap_s: float | None = DEFAULT_MAX_GAP_S) -> None:
        t = _as_1d("time_s", time_s)
        p = _as_1d("power_w", power_w)
        if t.shape != p.shape:
            raise ValueError(f"time_s and power_w differ in length: {t.shape} vs {p.shape}")
        self.max_gap_s = np.inf if max_gap_s is None else float(max_gap_s)
        if not self._build(t, p):  # a NaN (or infinite) sample: drop those, then build again
            finite = np.isfinite(p)
            t, p = t[finite], p[finite]
            del finite
            self._build(t, p)
        self.time_s = t
        self.power_w = p

    def _build(self, t: np.ndarray, p: np.ndarray) -> bool:
        """Twice the energy [J] from the first sample to each sample (the 1/2 of the trapezoid
        is applied once per look-up), and the gaps; False when a power sample is not finite."""
        n = len(t)
        twice = np.empty(n)
        gap_index: list[np.ndarray] = []
        gap_length: list[np.ndarray] = []
        if n:
            twice[0] = 0.0
        carry = 0.0
        check_gaps = np.isfinite(self.max_gap_s)
        for lo in range(0, max(n - 1, 0), self.BLOCK):
            hi = min(lo + self.BLOCK, n - 1)  # segments lo .. hi-1 (samples lo .. hi)
            step = t[lo + 1: hi + 1] - t[lo: hi]
            if not step.min() >= 0.0:
                raise ValueError("time_s must be finite and non-decreasing")
            segment = twice[lo + 1: hi + 1]
            np.add(p[lo: hi], p[lo + 1: hi + 1], out=segment)
            segment *= step
            if check_gaps:
                gaps = np.flatnonzero(step > self.max_gap_s)
                if len(gaps):
                    segment[gaps] = 0.0
                    gap_index.append(gaps + lo)
                    gap_length.append(step[gaps])
            np.cumsum(segment, out=segment)
            if carry:
                segment += carry
            carry = segment[-1]
            if not np.isfinite(carry):
                return False
        self._twice_j = twice
        self._gap_index = np.concatenate(gap_index) if gap_index else np.zeros(0, dtype=np.int64)
        lengths = np.concatenate(gap_length) if gap_length else np.zeros(0)
        self._gaps_before_s = np.concatenate([[0.0], np.cumsum(lengths)])
        return True

    def __len__(self) -> int:
        return len(self.time_s)

    def _lookup(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(twice the energy [J], covered time [s]) from the first sample to each x."""
        t, p = self.time_s, self.power_w
        n = len(t)
        if n < 2:
            return np.zeros(x.shape), np.zeros(x.shape)
        i = np.searchsorted(t, x, side="right") - 1
        k = clamp(i, 0, n - 2)
        t0 = t[k]
        h = t[k + 1] - t0
        inside = (i >= 0) & (i <= n - 2) & (h <= self.max_gap_s)
        u = np.where(inside, x - t0, 0.0)
        h = np.where(inside, h, 1.0)
        p0 = p[k]
        partial = u * (2.0 * p0 + (p[k + 1] - p0) * u / h)
        j = clamp(i, 0, n - 1)
        before = i < 0
        twice = np.where(before, 0.0, self._twice_j[j] + partial)
        gaps = self._gaps_before_s[np.searchsorted(self._gap_index, j, side="left")]
        covered = np.where(before, 0.0, (t[j] - t[0]) - gaps + u)
        return twice, covered

    def at(self, time_s) -> np.ndarray:
        """Energy from the first sample to each time [kWh] (0 before the data)."""
        x = np.asarray(time_s, dtype=np.float64)
        return self._lookup(x)[0] / (2.0 * J_PER_KWH)

    def covered_at(self, time_s) -> np.ndarray:
        """Time backed by data from the first sample to each time [s]."""
        x = np.asarray(time_s, dtype=np.float64)
        return self._lookup(x)[1]

    def between(self, starts_s, ends_s) -> tuple[np.ndarray, np.ndarray]:
        """(energy_kwh, coverage) of each interval [starts_s[j], ends_s[j]]; see energy_between."""
        a = _as_1d("starts_s", starts_s)
        b = _as_1d("ends_s", ends_s)
        _check_intervals(a, b)
        twice_a, cov_a = self._lookup(a)
        twice_b, cov_b = self._lookup(b)
        energy_kwh = (twice_b - twice_a) / (2.0 * J_PER_KWH)
        duration_s = b - a
        with np.errstate(invalid="ignore", divide="ignore"):
            coverage = np.where(duration_s > 0, (cov_b - cov_a) / np.where(duration_s > 0, duration_s, 1.0), 0.0)
        return energy_kwh, clamp(coverage, 0.0, 1.0)

    @property
    def total_kwh(self) -> float:
        """Energy over all the samples [kWh]."""
        return float(self._twice_j[-1] / (2.0 * J_PER_KWH)) if len(self.time_s) else 0.0


def energy_between(time_s, power_w, starts_s, ends_s,
                   max_gap_s: float | None = DEFAULT_MAX_GAP_S) -> tuple[np.ndarray, np.ndarray]:
    """Energy of a power series in each of many intervals, and the share backed by data.

    The trapezoidal integral of the samples, cut exactly at each interval's ends (power
    interpolated linearly at a cut); two samples farther apart than ``max_gap_s`` are not
    joined; NaN samples are no data. Costs O(N + J log N): one cumulative integral, then two
    binary searches per interval.

    Parameters
    ----------
    time_s : array [s]
        Sample times (Unix seconds), non-decreasing.
    power_w : array [W]
        Active power samples; NaN where there is no reading.
    starts_s, ends_s : array [s]
        Interval ends, ``ends_s >= starts_s``; intervals may overlap and lie outside the data.
    max_gap_s : float [s], default 120
        Longest step between two samples that is integrated (None: no limit).

    Returns
    -------
    energy_kwh : array [kWh]
        Energy in each interval.
    coverage : array [1]
        Share of each interval lying between two joined samples (0 for an empty interval).

    References
    ----------
    .. [1] ISO 50006:2014, energy over a period and data coverage.
    """
    return EnergyCurve(time_s, power_w, max_gap_s).between(starts_s, ends_s)


def step_at_changes(time_s, power_w, change_s,
                    max_gap_s: float | None = DEFAULT_MAX_GAP_S) -> tuple[np.ndarray, np.ndarray]:
    """Power samples with a step at each state change (module docstring, "Steps at state changes").

    At a change c strictly between two joined samples (t_i, p_i) and (t_i+1, p_i+1), two samples
    (c, p_i) and (c, p_i+1) are inserted: integrated by the trapezoid rule, power is p_i up to c
    and p_i+1 after it. Changes on a sample, outside the data or in a gap are left out, and of
    several changes within one sample step only the first is kept (the power between them is
    not known).

    Parameters
    ----------
    time_s : array [s]
        Sample times, non-decreasing.
    power_w : array [W]
        Power samples; NaN samples are dropped first.
    change_s : array [s]
        Times of the state changes, sorted.
    max_gap_s : float [s], default 120
        Longest step between two joined samples (as for EnergyCurve).

    Returns
    -------
    (time_s, power_w) : arrays
        The finite samples with 2 samples more per step placed.
    """
    t = _as_1d("time_s", time_s)
    p = _as_1d("power_w", power_w)
    c = _as_1d("change_s", change_s)
    finite = np.isfinite(p)
    if not finite.all():
        t, p = t[finite], p[finite]
    n = len(t)
    if n < 2 or not len(c):
        return t, p
    gap = np.inf if max_gap_s is None else float(max_gap_s)
    i = np.searchsorted(t, c, side="right") - 1
    ok = (i >= 0) & (i < n - 1)
    i, c = i[ok], c[ok]
    placed = (t[i] < c) & (t[i + 1] - t[i] <= gap)
    i, c = i[placed], c[placed]
    if len(i) > 1:
        first = np.concatenate([[True], i[1:] != i[:-1]])
        i, c = i[first], c[first]
    if not len(i):
        return t, p
    where = np.repeat(i + 1, 2)
    new_t = np.repeat(c, 2)
    new_p = np.column_stack([p[i], p[i + 1]]).ravel()
    return np.insert(t, where, new_t), np.insert(p, where, new_p)


class WeightedCumulative:
    """A cumulative quantity weighted by a rate that is constant on pieces of time.

    ``W(x) = sum_k rate_k * (base(min(x, e_k+1)) - base(e_k))`` over the pieces [e_k, e_k+1)
    before x; outside the pieces ``outside_rate`` applies. Used for per-day reconciliation
    scales [1], hourly emission factors [kg/kWh] and time-of-use prices [currency/kWh].

    Parameters
    ----------
    base : Cumulative
        The quantity to weight (e.g. an EnergyCurve [kWh]).
    edges_s : array [s]
        K+1 increasing piece boundaries.
    rates : array
        K rates, one per piece.
    outside_rate : float
        Rate before the first and after the last boundary.
    """

    def __init__(self, base: Cumulative, edges_s, rates, outside_rate: float = 1.0) -> None:
        self.base = base
        self.edges_s = _as_1d("edges_s", edges_s)
        self.rates = _as_1d("rates", rates)
        if len(self.edges_s) and len(self.rates) != len(self.edges_s) - 1:
            raise ValueError(f"{len(self.edges_s)} edges need {len(self.edges_s) - 1} rates, "
                             f"got {len(self.rates)}")
        if np.any(np.diff(self.edges_s) < 0):
            raise ValueError("edges_s must be increasing")
        self.outside_rate = float(outside_rate)
        if len(self.edges_s) < 2:
            self.edges_s = np.zeros(0)
            self.rates = np.zeros(0)
        if len(self.edges_s):
            self._base_at_edges = base.at(self.edges_s)
            self._weighted_at_edges = np.concatenate(
                [[0.0], np.cumsum(self.rates * np.diff(self._base_at_edges))])

    def at(self, time_s) -> np.ndarray:
        x = np.asarray(time_s, dtype=np.float64)
        base = self.base.at(x)
        if not len(self.edges_s):
            return self.outside_rate * base
        k = len(self.rates)
        m = np.searchsorted(self.edges_s, x, side="right") - 1
        rate = np.where((m >= 0) & (m < k), self.rates[clamp(m, 0, k - 1)], self.outside_rate)
        anchor = clamp(m, 0, k)
        return self._weighted_at_edges[anchor] + rate * (base - self._base_at_edges[anchor])

    def between(self, starts_s, ends_s) -> np.ndarray:
        """Weighted quantity in each interval."""
        a = _as_1d("starts_s", starts_s)
        b = _as_1d("ends_s", ends_s)
        _check_intervals(a, b)
        return self.at(b) - self.at(a)


class ScaledCumulative:
    """A cumulative quantity times a constant (e.g. kWh x kg CO2e/kWh)."""

    def __init__(self, base: Cumulative, factor: float) -> None:
        self.base = base
        self.factor = float(factor)

    def at(self, time_s) -> np.ndarray:
        return self.factor * self.base.at(time_s)


# ---------------------------------------------------------------------------------------------
# Cumulative counters


def counter_increments_kwh(energy_import_kwh, rollover_kwh: float | None = None) -> np.ndarray:
    """Energy between consecutive readings of a cumulative counter, resets and rollovers undone.

    A step backwards is a **rollover** when ``rollover_kwh`` (the register's range, e.g.
    ``2**32 * 0.001`` for an unsigned 32-bit Wh register) is given and the counter, wrapped
    round, moved forward by less than 10 % of that range (it was near the top); otherwise it is a
    **reset** (meter replaced or cleared): the counter is taken to have started again from zero,
    so the increment is the reading after the reset.

    Parameters
    ----------
    energy_import_kwh : array [kWh]
        Readings in time order, without NaN.
    rollover_kwh : float [kWh], optional
        Value at which the register wraps round to zero.

    Returns
    -------
    array [kWh]
        N-1 non-negative increments (empty for fewer than two readings).

    References
    ----------
    .. [1] IEC 62053-21:2020 (cumulative energy registers).
    """
    c = _as_1d("energy_import_kwh", energy_import_kwh)
    if len(c) < 2:
        return np.zeros(0)
    return _undo_backward_steps(c, np.diff(c), rollover_kwh)


def _undo_backward_steps(c: np.ndarray, step: np.ndarray, rollover_kwh: float | None) -> np.ndarray:
    """Counter steps (np.diff of the readings c) with resets and rollovers undone, in place."""
    backwards = step < 0
    if backwards.any():
        after = c[1:][backwards]
        replaced = after.copy()  # reset: counted from zero
        if rollover_kwh:
            wrapped = step[backwards] + float(rollover_kwh)
            is_wrap = (wrapped >= 0) & (wrapped < WRAP_SHARE * float(rollover_kwh))
            replaced = np.where(is_wrap, wrapped, replaced)
        step[backwards] = np.maximum(replaced, 0.0)
    return step


def unwrap_counter_kwh(energy_import_kwh, rollover_kwh: float | None = None) -> np.ndarray:
    """Energy since the first reading at each reading [kWh], resets and rollovers undone."""
    increments = counter_increments_kwh(energy_import_kwh, rollover_kwh)
    n = len(_as_1d("energy_import_kwh", energy_import_kwh))
    if n == 0:
        return np.zeros(0)
    return np.concatenate([[0.0], np.cumsum(increments)])


def counter_resolution_kwh(energy_import_kwh) -> float | None:
    """Smallest forward step between readings [kWh] (the register's resolution as seen), or None.

    With readings every few seconds the counter moves by one step at a time at low load, so the
    smallest positive step estimates the resolution (0.1 kWh for a Carlo Gavazzi EM24, about
    1 Wh for a float32 register near 10 000 kWh; docs/reference.md, "Modbus meters").
    """
    c = _as_1d("energy_import_kwh", energy_import_kwh)
    if not np.isfinite(c).all():
        c = c[np.isfinite(c)]
    return _smallest_forward_step(np.diff(c))


def _smallest_forward_step(step: np.ndarray) -> float | None:
    """Smallest positive value of the counter's steps (np.diff of its readings), or None."""
    smallest = float(np.min(step, where=step > 0, initial=np.inf)) if len(step) else np.inf
    return smallest if np.isfinite(smallest) else None


class CounterCurve:
    """Cumulative energy from a counter, resets and rollovers undone, linear between readings.

    Parameters
    ----------
    time_s : array [s]
        Reading times, non-decreasing.
    energy_import_kwh : array [kWh]
        Counter readings; NaN means no reading.
    rollover_kwh : float [kWh], optional
        The register's range (see counter_increments_kwh).
    """

    def __init__(self, time_s, energy_import_kwh, rollover_kwh: float | None = None) -> None:
        t = _as_1d("time_s", time_s)
        c = _as_1d("energy_import_kwh", energy_import_kwh)
        if t.shape != c.shape:
            raise ValueError(f"time_s and energy_import_kwh differ in length: {t.shape} vs {c.shape}")
        if not (np.isfinite(c).all() and np.isfinite(t).all()):
            keep = np.isfinite(c) & np.isfinite(t)
            t, c = t[keep], c[keep]
        if len(t) >= 2 and np.diff(t).min() < 0:
            raise ValueError("time_s must be non-decreasing")
        self.time_s = t
        self.cumulative_kwh = np.zeros(len(c))
        self.resolution_kwh = None
        if len(c) >= 2:
            step = np.diff(c)
            self.resolution_kwh = _smallest_forward_step(step)  # as counter_resolution_kwh
            np.cumsum(_undo_backward_steps(c, step, rollover_kwh), out=self.cumulative_kwh[1:])

    def __len__(self) -> int:
        return len(self.time_s)

    @property
    def span_s(self) -> tuple[float, float] | None:
        """(first, last) reading time, None without readings."""
        return (float(self.time_s[0]), float(self.time_s[-1])) if len(self.time_s) else None

    def at(self, time_s) -> np.ndarray:
        """Energy since the first reading [kWh], constant outside the readings."""
        x = np.asarray(time_s, dtype=np.float64)
        if not len(self.time_s):
            return np.zeros(x.shape)
        return np.interp(x, self.time_s, self.cumulative_kwh)

    def between(self, starts_s, ends_s) -> tuple[np.ndarray, np.ndarray]:
        """(energy_kwh, coverage) of each interval; coverage is the share inside the readings."""
        a = _as_1d("starts_s", starts_s)
        b = _as_1d("ends_s", ends_s)
        _check_intervals(a, b)
        energy = self.at(b) - self.at(a)
        if not len(self.time_s):
            return energy, np.zeros(a.shape)
        first, last = self.span_s
        inside = np.maximum(np.minimum(b, last) - np.maximum(a, first), 0.0)
        duration = b - a
        coverage = np.where(duration > 0, inside / np.where(duration > 0, duration, 1.0), 0.0)
        return energy, clamp(coverage, 0.0, 1.0)


def counter_energy_between(time_s, energy_import_kwh, starts_s, ends_s,
                           rollover_kwh: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Energy from a cumulative counter in each interval, resets and rollovers undone.

    The counter is interpolated linearly between readings (a gap between readings loses no
    energy: the counter kept counting); outside the readings nothing is counted.

    Parameters
    ----------
    time_s : array [s]
        Reading times (Unix seconds), non-decreasing.
    energy_import_kwh : array [kWh]
        Counter readings; NaN means no reading.
    starts_s, ends_s : array [s]
        Interval ends.
    rollover_kwh : float [kWh], optional
        The register's range, to undo rollovers (see counter_increments_kwh).

    Returns
    -------
    energy_kwh : array [kWh]
    coverage : array [1]
        Share of each interval between the first and the last reading.
    """
    return CounterCurve(time_s, energy_import_kwh, rollover_kwh).between(starts_s, ends_s)


# ---------------------------------------------------------------------------------------------
# Reconciliation


def reconciliation_scales(power_kwh, counter_kwh, resolution_kwh: float = 0.0) -> np.ndarray:
    """Scale per period that brings power-based energy within the counter's resolution.

    The counter's delta is only known to within one step of its register, so the power-based
    energy P of a period is moved to the nearest value of [C - r, C + r] (C the counter's
    delta, r its resolution): scale = clip(P, C - r, C + r) / P. A period already inside keeps
    scale 1; a period without power-based energy (P = 0) keeps scale 1, and its counter energy
    stays unexplained (reported beside it).

    Parameters
    ----------
    power_kwh : array [kWh]
        Power-based energy per period.
    counter_kwh : array [kWh]
        Counter delta per period (same periods).
    resolution_kwh : float [kWh]
        The counter's smallest step.

    Returns
    -------
    array [1]
        Scale per period.
    """
    p = _as_1d("power_kwh", power_kwh)
    c = _as_1d("counter_kwh", counter_kwh)
    r = max(float(resolution_kwh or 0.0), 0.0)
    target = clamp(p, c - r, c + r)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(p > 0, target / np.where(p > 0, p, 1.0), 1.0)
    return np.where(np.isfinite(scale), scale, 1.0)


def reconcile(curve: EnergyCurve | GapFilledCurve, counter: CounterCurve, edges_s,
              resolution_kwh: float | None = None) -> tuple[WeightedCumulative, dict[str, np.ndarray]]:
    """Power-based energy scaled per period (e.g. per site-local day) to match the counter.

    Each period [edges_s[k], edges_s[k+1]) is first cut to the span of the counter's readings;
    there the power-based energy P_k and the counter delta C_k are compared, and the power curve
    of the whole period is scaled by ``reconciliation_scales`` (within the counter's
    resolution). Periods without readings, and time outside the edges, keep scale 1.

    Parameters
    ----------
    curve : EnergyCurve or GapFilledCurve
        Power-based cumulative energy (the pipeline gives it the counter's delta in gaps).
    counter : CounterCurve
        The meter's counter.
    edges_s : array [s]
        Period boundaries, increasing.
    resolution_kwh : float [kWh], optional
        Counter resolution; estimated from the readings' smallest step when None.

    Returns
    -------
    reconciled : WeightedCumulative
        Reconciled cumulative energy [kWh] (use ``.between`` or ``.at``).
    table : dict of arrays
        Per period: ``power_kwh``, ``counter_kwh``, ``scale`` (over the counter-covered part).
    """
    edges = _as_1d("edges_s", edges_s)
    k = max(len(edges) - 1, 0)
    power = np.zeros(k)
    count = np.zeros(k)
    scale = np.ones(k)
    if k and counter.span_s is not None:
        first, last = counter.span_s
        a = clamp(edges[:-1], first, last)
        b = clamp(edges[1:], first, last)
        power = curve.between(a, b)[0]
        count = counter.between(a, b)[0]
        if resolution_kwh is None:
            resolution_kwh = counter.resolution_kwh or 0.0
        scale = reconciliation_scales(power, count, resolution_kwh)
    return (WeightedCumulative(curve, edges, scale, outside_rate=1.0),
            {"power_kwh": power, "counter_kwh": count, "scale": scale})


# ---------------------------------------------------------------------------------------------
# Power gaps backed by the counter, and local reconciliation (issue 15)


class GapFilledCurve:
    """Cumulative energy: the power integral where power is dense, the counter's delta in gaps.

    Each gap of ``curve`` (two power samples farther apart than its ``max_gap_s``) that lies
    within the counter's readings (a reading at or before its start and one at or after its end)
    gets the counter's delta across it, the counter interpolated linearly at the gap's ends
    (resets and rollovers undone by CounterCurve), spread uniformly over the gap's time. The
    energy of an interval is then its power integral plus, for each backed gap it overlaps, the
    gap's energy times the share of the gap inside it. Gaps the counter does not bracket, and
    time outside the power samples, stay missing.

    Costs O(N + G) to build (G gaps) and O(log N) per look-up.

    Parameters
    ----------
    curve : EnergyCurve
        Power-based cumulative energy.
    counter : CounterCurve
        The same meter's counter.
    """

    def __init__(self, curve: EnergyCurve, counter: CounterCurve) -> None:
        self.curve = curve
        self.counter = counter
        t = curve.time_s
        i = curve._gap_index
        g0 = t[i] if len(i) else np.zeros(0)
        g1 = t[i + 1] if len(i) else np.zeros(0)
        if counter.span_s is not None and len(g0):
            first, last = counter.span_s
            backed = (g0 >= first) & (g1 <= last)
        else:
            backed = np.zeros(len(g0), dtype=bool)
        self.gap_start_s = g0[backed]
        self.gap_end_s = g1[backed]
        self.gap_kwh = counter.at(self.gap_end_s) - counter.at(self.gap_start_s)
        self._kwh_before = np.concatenate([[0.0], np.cumsum(self.gap_kwh)])
        self._s_before = np.concatenate([[0.0], np.cumsum(self.gap_end_s - self.gap_start_s)])

    def _in_gaps(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(counter-backed energy [kWh], backed gap time [s]) from the first gap to each x."""
        if not len(self.gap_start_s):
            return np.zeros(x.shape), np.zeros(x.shape)
        m = np.searchsorted(self.gap_start_s, x, side="right") - 1
        k = clamp(m, 0, len(self.gap_start_s) - 1)
        length = self.gap_end_s[k] - self.gap_start_s[k]
        inside = clamp(x - self.gap_start_s[k], 0.0, length)
        share = np.where(length > 0, inside / np.where(length > 0, length, 1.0), 0.0)
        before = m < 0
        energy = np.where(before, 0.0, self._kwh_before[k] + share * self.gap_kwh[k])
        time = np.where(before, 0.0, self._s_before[k] + inside)
        return energy, time

    def at(self, time_s) -> np.ndarray:
        """Energy from the first power sample to each time [kWh], backed gaps included."""
        x = np.asarray(time_s, dtype=np.float64)
        return self.curve.at(x) + self._in_gaps(x)[0]

    def between(self, starts_s, ends_s) -> tuple[np.ndarray, np.ndarray]:
        """(energy_kwh, coverage) of each interval; coverage is the share backed by any data
        (power-measured or counter-backed gap), see ``shares``."""
        energy, measured, counter_only = self._parts(starts_s, ends_s)
        return energy, clamp(measured + counter_only, 0.0, 1.0)

    def shares(self, starts_s, ends_s) -> tuple[np.ndarray, np.ndarray]:
        """(measured by power, backed by the counter only) share of each interval [1]; the
        missing share is 1 minus both."""
        _, measured, counter_only = self._parts(starts_s, ends_s)
        return measured, counter_only

    def placement_limit_kwh(self, starts_s, ends_s) -> np.ndarray:
        """Limit [kWh] of the error in where a gap's counter-backed energy lies, per interval.

        A gap's energy is spread uniformly over it, exact for an interval that holds the whole
        gap; for one that holds a part p of a gap of energy G the true part lies anywhere in
        [0, G], so its limit is max(p, G - p). An interval's two edges cut at most two gaps,
        independent: their limits combine as the root sum of squares (analytics.uncertainty).
        """
        a = _as_1d("starts_s", starts_s)
        b = _as_1d("ends_s", ends_s)
        n = len(self.gap_start_s)
        if not n:
            return np.zeros(len(a))
        length = self.gap_end_s - self.gap_start_s

        def cutting(x: np.ndarray) -> np.ndarray:
            k = clamp(np.searchsorted(self.gap_start_s, x, side="right") - 1, 0, n - 1)
            inside = (x > self.gap_start_s[k]) & (x < self.gap_end_s[k])
            return np.where(inside, k, -1)

        ka, kb = cutting(a), cutting(b)

        def limit(k: np.ndarray, part_s: np.ndarray) -> np.ndarray:
            kk = clamp(k, 0, n - 1)
            g = self.gap_kwh[kk]
            part = g * clamp(part_s / length[kk], 0.0, 1.0)
            return np.where(k >= 0, np.maximum(part, g - part), 0.0)

        same = (ka >= 0) & (ka == kb)
        kac = clamp(ka, 0, n - 1)
        kbc = clamp(kb, 0, n - 1)
        at_start = limit(np.where(same, -1, ka), self.gap_end_s[kac] - a)
        at_end = limit(np.where(same, -1, kb), b - self.gap_start_s[kbc])
        within = limit(np.where(same, ka, -1), b - a)
        return np.sqrt(at_start ** 2 + at_end ** 2 + within ** 2)

    def _parts(self, starts_s, ends_s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = _as_1d("starts_s", starts_s)
        b = _as_1d("ends_s", ends_s)
        _check_intervals(a, b)
        power_kwh, measured = self.curve.between(a, b)
        gap_a, time_a = self._in_gaps(a)
        gap_b, time_b = self._in_gaps(b)
        duration = b - a
        with np.errstate(invalid="ignore", divide="ignore"):
            counter_only = np.where(duration > 0, (time_b - time_a) / np.where(duration > 0, duration, 1.0), 0.0)
        return power_kwh + (gap_b - gap_a), measured, clamp(counter_only, 0.0, 1.0)


class LocalReconciled:
    """A cumulative energy brought within the counter's resolution at every counter reading.

    **Property**: for any two counter readings i < j, the energy reported between them is the
    counter's delta C_j - C_i within the resolution r (|E - (C_j - C_i)| <= r); where the base
    curve already agrees with the counter within r at every reading, it is returned unchanged
    (an interval without gaps keeps its power integral).

    How: the base's offset from the counter at each reading, d_k = B(t_k) - C_k, must lie in
    one band [m, m + r]. When the offsets already do, m = min d and nothing moves; otherwise m
    is centred on their median and the cumulative at each reading is clamped into the band,
    A_k = clip(B(t_k), C_k + m, C_k + m + r) (non-decreasing, as B and C are). Between
    consecutive knots the base is scaled by (A_k+1 - A_k) / (B_k+1 - B_k) (linear in time where
    the base does not move), so a correction stays between the two readings where it is
    needed and never moves energy between jobs farther apart. Knots are the first and last
    reading of each run of equal counter values (the smallest span the counter's resolution
    resolves). Outside the readings the base applies, shifted to join.

    Parameters
    ----------
    base : Cumulative
        Cumulative energy [kWh] (an EnergyCurve or a GapFilledCurve).
    counter : CounterCurve
        The meter's counter.
    resolution_kwh : float [kWh], optional
        The counter's resolution; its smallest step as seen when None.
    """

    def __init__(self, base: Cumulative, counter: CounterCurve,
                 resolution_kwh: float | None = None) -> None:
        self.base = base
        r = counter.resolution_kwh if resolution_kwh is None else resolution_kwh
        self.resolution_kwh = max(float(r or 0.0), 0.0)
        t, c = counter.time_s, counter.cumulative_kwh
        if len(t):
            step = np.diff(c)
            keep = np.concatenate([[True], step != 0]) | np.concatenate([step != 0, [True]])
            t, c = t[keep], c[keep]
            distinct = np.concatenate([[True], np.diff(t) > 0])
            t, c = t[distinct], c[distinct]
        self.knot_s = t
        b = np.asarray(base.at(t), dtype=np.float64)
        self._base_at_knots = b
        if len(t):
            d = b - c
            if d.max() - d.min() <= self.resolution_kwh:
                m = float(d.min())
            else:
                m = _median(d) - 0.5 * self.resolution_kwh
            self.knot_kwh = clamp(b, c + m, c + m + self.resolution_kwh)
        else:
            self.knot_kwh = np.zeros(0)

    def at(self, time_s) -> np.ndarray:
        """Reconciled cumulative energy [kWh] at each time (same origin as the base)."""
        x = np.asarray(time_s, dtype=np.float64)
        base = np.asarray(self.base.at(x), dtype=np.float64)
        n = len(self.knot_s)
        if n == 0:
            return base
        tk, bk, ak = self.knot_s, self._base_at_knots, self.knot_kwh
        i = np.searchsorted(tk, x, side="right") - 1
        k = clamp(i, 0, max(n - 2, 0))
        if n == 1:
            return base + (ak[0] - bk[0])
        db = bk[k + 1] - bk[k]
        da = ak[k + 1] - ak[k]
        dt = tk[k + 1] - tk[k]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            scaled = ak[k] + (base - bk[k]) * np.where(db > 0, da / np.where(db > 0, db, 1.0), 0.0)
            linear = ak[k] + da * clamp((x - tk[k]) / dt, 0.0, 1.0)
        inside = np.where(db > 0, scaled, linear)
        before = base + (ak[0] - bk[0])
        after = base + (ak[-1] - bk[-1])
        return np.where(i < 0, before, np.where(i >= n - 1, after, inside))

    def between(self, starts_s, ends_s) -> np.ndarray:
        """Reconciled energy in each interval [kWh] (both ends evaluated in one pass)."""
        a = _as_1d("starts_s", starts_s)
        b = _as_1d("ends_s", ends_s)
        _check_intervals(a, b)
        ends = self.at(np.concatenate([a, b]))
        return ends[len(a):] - ends[:len(a)]


def reconciliation_knots(counter: CounterCurve, filled: GapFilledCurve | None = None,
                         hour_s: float = 3600.0) -> CounterCurve:
    """The counter readings the pipeline reconciles at [kWh, resets undone]: the first and last
    reading in each hour (UTC), and the counter at both ends of every gap it backs.

    Every store keeps these: an hourly rollup holds its hour's first and last sample, and the
    samples around a power gap are always read raw (analytics.rollup_reader), so the
    reconciliation is the same from rollups as from every sample. A correction never leaves
    its hour, and a gap's energy, pinned at both its ends, stays the counter's delta across it
    within the resolution (the power's own error is not scaled into it)."""
    t, c = counter.time_s, counter.cumulative_kwh
    if len(t) >= 3:
        hour = np.floor(t / hour_s)
        change = hour[1:] != hour[:-1]
        edge = np.concatenate([[True], change]) | np.concatenate([change, [True]])
        t, c = t[edge], c[edge]
    if filled is not None and len(filled.gap_start_s):
        ends = np.concatenate([filled.gap_start_s, filled.gap_end_s])
        t = np.concatenate([t, ends])
        c = np.concatenate([c, counter.at(ends)])
        order = np.argsort(t, kind="stable")
        t, c = t[order], c[order]
        distinct = np.concatenate([[True], np.diff(t) > 0])
        t, c = t[distinct], c[distinct]
    return CounterCurve(t, c)


def counter_backed_energy(curve: EnergyCurve, counter: CounterCurve,
                          resolution_kwh: float | None = None) -> LocalReconciled:
    """Power energy with counter-backed gaps (GapFilledCurve), reconciled locally to the counter
    (LocalReconciled): the energy between any two counter readings is their delta within the
    counter's resolution, and no correction leaves the span between two readings."""
    return LocalReconciled(GapFilledCurve(curve, counter), counter, resolution_kwh)
