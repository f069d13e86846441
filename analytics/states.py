"""Machine states from power (thresholds, hysteresis, minimum dwell) and from the controller.

States are those of devices.vocabulary.MACHINE_STATES: the ISO 14955 energy states off,
standby, idle (ISO 14955 "ready") and processing, plus setup and fault, which only a
controller can tell. ISO 14955 names the states but gives no power thresholds: they come from
the site file (``[machines.NAME] thresholds``) or are calibrated per machine from the power
distribution (``calibrate_thresholds``).

From power (``states_from_power``):

1. each sample gets a level by comparing it with the thresholds: below ``standby_w`` off, below
   ``idle_w`` standby, below ``processing_w`` idle, else processing. Each threshold has a
   hysteresis band: a level is entered when power reaches the threshold and left only when
   power falls below ``threshold x (1 - hysteresis)``, so noise around a threshold does not
   make the state flicker (a Schmitt trigger per threshold, vectorised);
2. each sample stands for the time up to halfway to its neighbours (the instant between two
   samples is given to the nearer one); across a gap longer than ``max_gap_s`` there is no
   state (no data), consistently with analytics.energy;
3. a run of one state shorter than ``min_dwell_s`` takes the state of the run before it (or
   after it, at the start of the data): a state must last to count.

From the controller (``overlay_controller``), where it has spoken (from its first change on):
execution ``running`` is processing (a program run); mode ``setup`` is setup; execution
``aborted`` is fault; otherwise (stopped, ended, canceled, interrupted, waiting) power decides
between off, standby and idle, and power above the processing threshold counts as idle (the
machine is not running a program: warm-up, manual jogging). Where power shows the machine off,
it is off whatever the last controller value was, except while a program runs. Controller
processing holds even where power samples are missing (power fills the controller's gaps, not
the other way round).

References
----------
.. [1] ISO 14955-1:2017, Machine tools — Environmental evaluation of machine tools — Part 1:
   Design methodology for energy-efficient machine tools (energy states: off, standby, ready,
   processing).
.. [2] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. Systems,
   Man, and Cybernetics 9(1), 1979 (calibration, extended to three classes).
.. [3] OPC 40501-1 Machine Tools and OPC 40502 CNC Systems (execution and mode values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.arrays import clamp
from analytics.intervals import is_in, sorted_unique
from storage.rollup import BINS_PER_DECADE, histogram, power_bins
from devices.vocabulary import MACHINE_STATES

OFF, STANDBY, IDLE, PROCESSING, SETUP, FAULT = range(6)
assert MACHINE_STATES[OFF] == "off" and MACHINE_STATES[FAULT] == "fault"

DEFAULT_HYSTERESIS = 0.1
DEFAULT_MIN_DWELL_S = 10.0

# Controller classes (what a controller change says about the state).
_CTL_UNKNOWN, _CTL_CAPPED = -1, -2
_STOPPED_EXECUTIONS = ("stopped", "ended", "canceled", "aborted")

# Calibration (see calibrate_thresholds).
OFF_SHARE = 0.001
"""Below this share of the reference power (and below 1 W) a machine is off."""
FALLBACK_SHARES = (0.001, 0.03, 0.25)
"""(standby, idle, processing) thresholds as shares of rated power when the data cannot tell."""
VALLEY_DEPTH = 0.2


@dataclass
class StateIntervals:
    """Contiguous runs of one state: [start_s[i], end_s[i]) in state MACHINE_STATES[code[i]].

    Sorted by start and disjoint; time with no data is not covered.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    code: np.ndarray

    @classmethod
    def empty(cls) -> StateIntervals:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.start_s)

    @property
    def names(self) -> list[str]:
        return [MACHINE_STATES[c] for c in self.code]

    @property
    def duration_s(self) -> np.ndarray:
        return self.end_s - self.start_s

    def of(self, code: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the runs in one state."""
        sel = self.code == code
        return self.start_s[sel], self.end_s[sel]

    def seconds_in(self, code: int) -> float:
        a, b = self.of(code)
        return float(np.sum(b - a))

    def clip(self, start_s: float, end_s: float) -> StateIntervals:
        a = clamp(self.start_s, start_s, end_s)
        b = clamp(self.end_s, start_s, end_s)
        keep = b > a
        return StateIntervals(a[keep], b[keep], self.code[keep])


@dataclass(frozen=True)
class Calibration:
    """Thresholds [W] found from a power distribution, and how."""

    standby_w: float
    idle_w: float
    processing_w: float
    method: str

    @property
    def thresholds_w(self) -> tuple[float, float, float]:
        return (self.standby_w, self.idle_w, self.processing_w)


# ---------------------------------------------------------------------------------------------
# Calibration


def _three_class_otsu(counts: np.ndarray, centres: np.ndarray) -> tuple[int, int]:
    """Bin indexes (i, j), 0 < i < j < B, splitting a histogram into three classes
    [0, i), [i, j), [j, B) with the largest between-class variance."""
    w = np.concatenate([[0.0], np.cumsum(counts)])
    m = np.concatenate([[0.0], np.cumsum(counts * centres)])
    b = len(counts)
    i = np.arange(1, b - 1)[:, None]
    j = np.arange(2, b)[None, :]
    w0, m0 = w[i], m[i]
    w1, m1 = w[j] - w[i], m[j] - m[i]
    w2, m2 = w[b] - w[j], m[b] - m[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (np.where(w0 > 0, m0 ** 2 / w0, 0.0) + np.where(w1 > 0, m1 ** 2 / w1, 0.0)
                 + np.where(w2 > 0, m2 ** 2 / w2, 0.0))
    score = np.where((j > i) & (w0 > 0) & (w1 > 0) & (w2 > 0), score, -np.inf)
    flat = int(np.argmax(score))
    ii, jj = np.unravel_index(flat, score.shape)
    return int(ii + 1), int(jj + 2)


def _histogram_median(counts: np.ndarray, centres: np.ndarray) -> float:
    """Median [W] of log-power samples binned as counts over bin centres [log10 W]."""
    total = np.cumsum(counts)
    if not len(total) or total[-1] <= 0:
        return float("nan")
    return float(10 ** centres[np.searchsorted(total, total[-1] / 2.0)])


def _valley(smooth: np.ndarray, lo_mode: int, hi_mode: int) -> tuple[int, int]:
    """(first, last) bin of the lowest stretch of a smoothed histogram between two modes."""
    segment = smooth[lo_mode: hi_mode + 1]
    low = segment.min()
    where = np.flatnonzero(segment <= low + 1e-12)
    # the stretch of lowest bins that contains the first lowest bin
    first = last = where[0]
    while last + 1 < len(segment) and segment[last + 1] <= low + 1e-12:
        last += 1
    return lo_mode + int(first), lo_mode + int(last)


@dataclass(frozen=True)
class PowerHistogram:
    """Power samples counted per global log-power bin (storage.rollup.power_bins: bin k holds
    [10**(k/50), 10**((k+1)/50)) W), the input of calibration. Histograms of parts of a series
    (the hours of rollups) merge into the histogram of the whole, exactly.

    below: finite samples <= 0 W; bins: ascending bin numbers; counts: samples per bin;
    max_w: the largest sample [W] (-inf without samples).
    """

    below: int
    bins: np.ndarray
    counts: np.ndarray
    max_w: float

    @classmethod
    def of(cls, power_w) -> PowerHistogram:
        """The histogram of power samples [W] (NaN ignored)."""
        below, bins, counts = histogram(power_w)
        p = np.asarray(power_w, dtype=np.float64)
        finite = p[np.isfinite(p)]
        return cls(below, bins, counts, float(finite.max()) if len(finite) else -np.inf)

    @classmethod
    def summed(cls, below: int, bins, counts, max_w: float) -> PowerHistogram:
        """The histogram of (bin, count) pairs in any order, a bin maybe more than once (the
        hours of rollups decoded together: storage.rollup.unpack_histograms)."""
        merged, where = np.unique(np.asarray(bins, dtype=np.int64), return_inverse=True)
        return cls(int(below), merged, np.bincount(where, weights=counts,
                                                   minlength=len(merged)).astype(np.int64), float(max_w))

    @classmethod
    def merge(cls, parts: list[PowerHistogram]) -> PowerHistogram:
        if not parts:
            return cls(0, np.zeros(0, np.int64), np.zeros(0, np.int64), -np.inf)
        return cls.summed(sum(h.below for h in parts), np.concatenate([h.bins for h in parts]),
                          np.concatenate([h.counts for h in parts]),
                          max((h.max_w for h in parts), default=-np.inf))

    @property
    def total(self) -> int:
        return int(self.below + self.counts.sum())

    def percentile_w(self, q: float) -> float:
        """The q-th percentile [W], to a bin: the upper edge of the bin holding it (at most the
        largest sample); 0 when it falls among samples <= 0 W."""
        rank = q / 100.0 * self.total
        if rank <= self.below or not len(self.bins):
            return 0.0
        k = int(np.searchsorted(np.cumsum(self.counts), rank - self.below))
        k = min(k, len(self.bins) - 1)
        return float(min(10.0 ** ((self.bins[k] + 1) / BINS_PER_DECADE), self.max_w))


def calibrate_thresholds(power_w, rated_power_w: float | None = None) -> Calibration:
    """State thresholds of one machine from the distribution of its power [W].

    The histogram of the samples (PowerHistogram) goes to calibrate_from_histogram, which
    describes the method.

    Parameters
    ----------
    power_w : array [W]
        Power samples of one machine (NaN ignored); a day or more that includes processing is
        best.
    rated_power_w : float [W], optional
        Nameplate power (site file).

    Returns
    -------
    Calibration
    """
    return calibrate_from_histogram(PowerHistogram.of(power_w), rated_power_w)


def calibrate_from_histogram(hist: PowerHistogram, rated_power_w: float | None = None) -> Calibration:
    """State thresholds of one machine from the histogram of its power samples.

    Method (documented for the reports):

    1. the reference power is the rated power, or without it the 99.5th percentile of the
       samples (to a bin); below ``max(1 W, 0.1 % of it)`` the machine is **off**
       (``standby_w``);
    2. the samples in the bins from the one holding the off level up form the log-power
       histogram (0.02-decade bins on a fixed grid, smoothed over 0.1 decade): a machine's
       states are clusters whose levels differ by factors, so they separate on a log scale;
    3. three-class Otsu [2]_ splits them into low (standby), middle (idle) and high
       (processing) by the largest between-class variance;
    4. a split is kept only where the smoothed histogram has a valley there (at most 20 % of
       the lower of the two neighbouring peaks), and the threshold is put in the middle of the
       valley's lowest stretch (geometric middle between the clusters);
    5. with one valid split the low class is taken as standby when the high class's median is
       more than 20 times the low class's (medians read from the histogram), else as idle;
       with none (one cluster, or too few samples) the thresholds are 0.1 %, 3 % and 25 % of
       the rated power.

    The bins are fixed (not fitted to the data), so the histogram of a week is the sum of the
    histograms of its hours: rollups (storage/rollup.py) give the same thresholds as
    the samples themselves.

    Parameters
    ----------
    hist : PowerHistogram
        Power samples of one machine, counted.
    rated_power_w : float [W], optional
        Nameplate power (site file).

    Returns
    -------
    Calibration
        standby_w, idle_w, processing_w [W] and a one-line description of how they were found.
    """
    if hist.total:
        reference = float(rated_power_w) if rated_power_w else hist.percentile_w(99.5)
    else:
        reference = float(rated_power_w or 0.0)
    off_w = max(1.0, OFF_SHARE * reference)

    def fallback(why: str) -> Calibration:
        if rated_power_w:
            s, i, q = (share * float(rated_power_w) for share in FALLBACK_SHARES)
            return Calibration(max(off_w, s), max(off_w, i), max(off_w, q),
                               f"{why}: 0.1 %, 3 % and 25 % of rated power")
        top = hist.max_w * 2.0 if hist.total else np.inf
        return Calibration(off_w, top, top, f"{why}: no rated power, every sample above "
                           f"{off_w:g} W is standby")

    on = hist.bins >= int(power_bins(np.array([off_w]))[0])
    if hist.counts[on].sum() < 20:
        return fallback("too few samples above the off level")
    lo, hi = int(hist.bins[on][0]), int(hist.bins[on][-1])
    nbins = hi - lo + 1
    if nbins < 8:
        return fallback("one power level only")
    counts = np.zeros(nbins)
    counts[hist.bins[on] - lo] = hist.counts[on]
    edges = (lo + np.arange(nbins + 1)) / BINS_PER_DECADE
    centres = (edges[:-1] + edges[1:]) / 2
    smooth = np.convolve(counts, np.ones(5) / 5.0, mode="same")
    i, j = _three_class_otsu(counts, centres)

    def split_at(cut: int, left: slice, right: slice) -> float | None:
        """Threshold [W] in the valley at bin `cut` between two classes, or None if no valley."""
        if left.stop <= left.start or right.stop <= right.start:
            return None
        lo_mode = left.start + int(np.argmax(counts[left]))
        hi_mode = right.start + int(np.argmax(counts[right]))
        if hi_mode <= lo_mode:
            return None
        first, last = _valley(smooth, lo_mode, hi_mode)
        depth = smooth[first] / max(min(smooth[lo_mode], smooth[hi_mode]), 1e-12)
        if depth > VALLEY_DEPTH:
            return None
        middle = (edges[first] + edges[last + 1]) / 2
        return float(10 ** middle)

    low_mid = split_at(i, slice(0, i), slice(i, j))
    mid_high = split_at(j, slice(i, j), slice(j, nbins))
    if low_mid is not None and mid_high is not None and low_mid < mid_high:
        return Calibration(off_w, low_mid, mid_high, "three power levels (log-power Otsu, "
                           "thresholds in the valleys)")
    cut = mid_high if mid_high is not None else low_mid
    if cut is None:
        # the three-class split found no valley; try two classes on the whole range
        two = split_at(0, slice(0, nbins // 2), slice(nbins // 2, nbins))
        cut = two
    if cut is None:
        return fallback("no valley in the power distribution")
    # medians of the two classes, read from the histogram (to a bin, 0.02 decade)
    split = np.searchsorted(centres, np.log10(cut))
    low_median = _histogram_median(counts[:split], centres[:split])
    high_median = _histogram_median(counts[split:], centres[split:])
    if high_median > 20.0 * low_median:
        return Calibration(off_w, cut, cut, "two power levels: standby and processing")
    return Calibration(off_w, off_w, cut, "two power levels: idle and processing")


# ---------------------------------------------------------------------------------------------
# States from power


def power_levels(power_w, thresholds_w: tuple[float, float, float],
                 hysteresis: float = DEFAULT_HYSTERESIS) -> np.ndarray:
    """State code per sample (OFF, STANDBY, IDLE or PROCESSING) with hysteresis.

    Each threshold T is a Schmitt trigger: the sample is above it from the first sample with
    power >= T until the first sample with power < T x (1 - hysteresis). The level is the
    number of thresholds the sample is above. NaN samples must have been removed.

    A sample outside every band [T x (1 - hysteresis), T) is decided by its own power; only
    the few samples inside a band look back, to the last sample outside that band (a run of
    in-band samples keeps the side it entered from; the first sample counts as below).

    Parameters
    ----------
    power_w : array [W]
    thresholds_w : (standby_w, idle_w, processing_w) [W]
    hysteresis : float [1]
        Width of each band as a share of its threshold (0: none).

    Returns
    -------
    array of int8
    """
    p = np.asarray(power_w, dtype=np.float64)
    if not len(p):
        return np.zeros(0, dtype=np.int8)
    level = np.zeros(len(p), dtype=np.int8)
    entered = np.zeros(len(p), dtype=np.int8)
    for threshold in thresholds_w:
        level += p >= threshold
        entered += p >= threshold * (1.0 - hysteresis)
    undecided = np.flatnonzero(level != entered)  # inside at least one band
    if not len(undecided):
        return level
    pu = p[undecided]
    for threshold in thresholds_w:
        low = threshold * (1.0 - hysteresis)
        in_band = undecided[(pu >= low) & (pu < threshold)]
        if not len(in_band):
            continue
        # runs of consecutive in-band samples take the side of the sample before the run
        run_start = np.concatenate([[True], in_band[1:] != in_band[:-1] + 1])
        before = in_band[run_start] - 1
        side = np.where(before >= 0, p[np.maximum(before, 0)] >= threshold, False)
        level[in_band] += side[np.cumsum(run_start) - 1]
    return level


def _runs(code: np.ndarray, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of each run of equal codes; `breaks[i]` True starts a new run at i."""
    n = len(code)
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = (code[1:] != code[:-1]) | breaks[1:]
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:] - 1, [n - 1]])
    return first, last


def merge_runs(start_s, end_s, code) -> StateIntervals:
    """Join neighbouring intervals of the same state that touch (end == next start)."""
    a = np.asarray(start_s, dtype=np.float64)
    b = np.asarray(end_s, dtype=np.float64)
    c = np.asarray(code, dtype=np.int64)
    if not len(a):
        return StateIntervals.empty()
    breaks = np.zeros(len(a), dtype=bool)
    breaks[1:] = a[1:] != b[:-1]
    first, last = _runs(c, breaks)
    return StateIntervals(a[first], b[last], c[first])


def apply_min_dwell(states: StateIntervals, min_dwell_s: float) -> StateIntervals:
    """Runs shorter than min_dwell_s take the state of the run before them (after, at the start
    of a block of contiguous data); a block made only of short runs is kept as it is."""
    n = len(states)
    if n == 0 or min_dwell_s <= 0:
        return states
    a, b, c = states.start_s, states.end_s, states.code.copy()
    block_start = np.empty(n, dtype=bool)
    block_start[0] = True
    block_start[1:] = a[1:] != b[:-1]
    block = np.cumsum(block_start) - 1
    long_ = (b - a) >= min_dwell_s
    index = np.arange(n)
    prev_long = np.maximum.accumulate(np.where(long_, index, -1))
    next_long = np.minimum.accumulate(np.where(long_, index, n)[::-1])[::-1]
    use_prev = (prev_long >= 0) & (block[clamp(prev_long, 0, n - 1)] == block)
    use_next = (next_long < n) & (block[clamp(next_long, 0, n - 1)] == block)
    short = ~long_
    c[short & use_prev] = states.code[prev_long[short & use_prev]]
    only_next = short & ~use_prev & use_next
    c[only_next] = states.code[next_long[only_next]]
    return merge_runs(a, b, c)


def states_from_power(time_s, power_w, thresholds_w: tuple[float, float, float],
                      hysteresis: float = DEFAULT_HYSTERESIS,
                      min_dwell_s: float = DEFAULT_MIN_DWELL_S,
                      max_gap_s: float | None = 120.0) -> StateIntervals:
    """State intervals of one machine from its power samples.

    Parameters
    ----------
    time_s : array [s]
        Sample times, non-decreasing.
    power_w : array [W]
        Power; NaN is no data.
    thresholds_w : (standby_w, idle_w, processing_w) [W]
        Site file thresholds, or ``calibrate_thresholds(...).thresholds_w``.
    hysteresis : float [1], default 0.1
        Band below each threshold, as a share of it.
    min_dwell_s : float [s], default 10
        Shortest run of a state that counts.
    max_gap_s : float [s], default 120
        Longest step between samples that still joins them.

    Returns
    -------
    StateIntervals
        Runs of off/standby/idle/processing (codes 0-3), sorted, disjoint.

    References
    ----------
    .. [1] ISO 14955-1:2017 (energy states).
    """
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        keep = np.isfinite(p) & np.isfinite(t)
        t, p = t[keep], p[keep]
    n = len(t)
    if n == 0:
        return StateIntervals.empty()
    gap_limit = np.inf if max_gap_s is None else float(max_gap_s)
    step = np.diff(t)
    if n >= 2 and step.min() < 0:
        raise ValueError("time_s must be non-decreasing")
    level = power_levels(p, thresholds_w, hysteresis)
    # a run starts at the first sample, after a level change, and after a gap
    gap_after = np.flatnonzero(step > gap_limit)  # no join between sample i and i + 1
    del step
    first = sorted_unique(np.concatenate([np.flatnonzero(level[1:] != level[:-1]) + 1, gap_after + 1]))
    first = np.concatenate([[0], first])
    last = np.concatenate([first[1:] - 1, [n - 1]])
    # each sample stands for the time up to halfway to its joined neighbours
    joined_before = ~is_in(first - 1, gap_after) & (first > 0)
    prev = np.maximum(first - 1, 0)
    start_s = np.where(joined_before, (t[prev] + t[first]) / 2, t[first])
    joined_after = ~is_in(last, gap_after) & (last < n - 1)
    nxt = np.minimum(last + 1, n - 1)
    end_s = np.where(joined_after, (t[last] + t[nxt]) / 2, t[last])
    runs = StateIntervals(start_s, end_s, level[first].astype(np.int64))
    keep_runs = runs.end_s > runs.start_s
    runs = StateIntervals(runs.start_s[keep_runs], runs.end_s[keep_runs], runs.code[keep_runs])
    return apply_min_dwell(runs, min_dwell_s)


# ---------------------------------------------------------------------------------------------
# States from the controller


def forward_fill(values) -> np.ndarray:
    """Object array with each None (or empty) entry replaced by the last value before it."""
    v = np.asarray(values, dtype=object)
    if not len(v):
        return v
    present = np.array([x is not None and x == x for x in v], dtype=bool)
    index = np.where(present, np.arange(len(v)), -1)
    last = np.maximum.accumulate(index)
    out = np.empty(len(v), dtype=object)
    out[:] = None
    ok = last >= 0
    out[ok] = v[last[ok]]
    return out


def controller_classes(execution, mode) -> np.ndarray:
    """What each controller change says: PROCESSING, SETUP, FAULT, or -2 (power decides,
    capped at idle); -1 where nothing is known yet. Values are forward-filled first."""
    e = forward_fill(execution)
    m = forward_fill(mode)
    out = np.full(len(e), _CTL_UNKNOWN, dtype=np.int64)
    known = np.array([x is not None or y is not None for x, y in zip(e, m)], dtype=bool)
    out[known] = _CTL_CAPPED
    out[e == "aborted"] = FAULT
    out[e == "running"] = PROCESSING
    out[m == "setup"] = SETUP
    return out


def overlay_controller(power_states: StateIntervals, controller_time_s, execution, mode,
                       start_s: float, end_s: float) -> StateIntervals:
    """Combine power states with controller signals (rules in the module docstring).

    Parameters
    ----------
    power_states : StateIntervals
        From states_from_power.
    controller_time_s : array [s]
        Times of the controller changes, non-decreasing; the last one holds until end_s.
    execution, mode : arrays of str or None
        Controller values at each change (None: not carried by that change).
    start_s, end_s : float [s]
        The analysed window.
    """
    ct = np.asarray(controller_time_s, dtype=np.float64)
    if not len(ct):
        return power_states.clip(start_s, end_s)
    cls = controller_classes(execution, mode)
    cuts = sorted_unique(np.concatenate([[start_s, end_s], power_states.start_s, power_states.end_s,
                                     ct]))
    cuts = cuts[(cuts >= start_s) & (cuts <= end_s)]
    if len(cuts) < 2:
        return StateIntervals.empty()
    lo, hi = cuts[:-1], cuts[1:]
    mid = (lo + hi) / 2
    pi = np.searchsorted(power_states.start_s, mid, side="right") - 1
    pk = clamp(pi, 0, max(len(power_states) - 1, 0))
    if len(power_states):
        in_power = (pi >= 0) & (mid < power_states.end_s[pk])
        power = np.where(in_power, power_states.code[pk], -1)
    else:
        power = np.full(len(mid), -1)
    ci = np.searchsorted(ct, mid, side="right") - 1
    ctl = np.where(ci >= 0, cls[clamp(ci, 0, len(cls) - 1)], _CTL_UNKNOWN)
    state = power.copy()
    capped = ctl == _CTL_CAPPED
    state[capped] = np.where(power[capped] >= 0, np.minimum(power[capped], IDLE), -1)
    for code in (SETUP, FAULT):
        sel = ctl == code
        state[sel] = np.where(power[sel] == OFF, OFF, code)
    state[ctl == PROCESSING] = PROCESSING
    keep = state >= 0
    return merge_runs(lo[keep], hi[keep], state[keep])
