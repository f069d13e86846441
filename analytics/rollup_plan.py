"""Which parts of a machine's power series the analysis can take from rollups, and the
samples that stand in for them (storage/rollup.py says what a rollup holds).

The analysis of one machine (analytics.pipeline) looks at its power samples in three ways:

1. each sample's state level (thresholds with hysteresis, analytics.states);
2. the trapezoid between consecutive samples, bridged where the step is at most ``max_gap_s``;
3. the cumulative energy at a set of times known before the samples are read: the window's
   ends, site-local day edges, session ends, opening hours, tariff and hourly-factor edges,
   controller changes (``cut_times``); state changes fall between two samples.

A block (an hour or a minute) whose samples all have a power, all lie in one zone between the
thresholds' edges (so every sample has the level its predecessor gives it), whose steps are all
bridged, whose energy counter is regular and inside whose sample span no cut time falls,
can be replaced by its first sample, its last sample and a constant in between that gives the
block's trapezoid energy (``stand_in``): levels, state runs, every cumulative value the
analysis asks for and every coverage stay those of the samples (to rounding). The block's
energy counter is kept at its first and last sample (it is read only at cut times). Blocks that
cannot be replaced are read raw.
"""

from __future__ import annotations


import numpy as np

from analytics.intervals import sorted_unique
from storage.rollup import COLUMN, MINUTE_S

# Steps between stand-in samples [s]: a stand-in never has a step the analysis would not bridge
# as long as max_gap_s is at least this (analytics.energy.DEFAULT_MAX_GAP_S is 120 s).
STAND_IN_STEP_S = MINUTE_S
# The stand-in constant starts this long after the first sample [s] (and ends as long before
# the last); small, so the constant is the block's mean power to within (max - min) x 1e-3 / T.
_EDGE_S = 1e-3


def zone_edges(thresholds_w: tuple[float, float, float], hysteresis: float) -> np.ndarray:
    """Sorted power edges [W] between which a sample's level depends on nothing else than the
    level before it: each threshold T and the bottom of its band T x (1 - hysteresis)."""
    t = np.asarray(thresholds_w, dtype=np.float64)
    return sorted_unique(np.concatenate([t, t * (1.0 - hysteresis)]))


def zone_of(power_w, edges_w: np.ndarray) -> np.ndarray:
    """Zone of each power [W]: the number of edges at or below it (analytics.states.power_levels
    compares with >=)."""
    return np.searchsorted(edges_w, np.asarray(power_w, dtype=np.float64), side="right")


def _stand_in_times(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) time [s] of each block's stand-in constant: _EDGE_S inside its samples
    (a quarter of their span for very short blocks), as floats."""
    first_s, last_s = stats[:, COLUMN["first_s"]], stats[:, COLUMN["last_s"]]
    edge_s = np.minimum(_EDGE_S, (last_s - first_s) / 4.0)
    return first_s + edge_s, last_s - edge_s


def _stand_in_constant(stats: np.ndarray) -> np.ndarray:
    """Power [W] between a block's first and last sample that gives its trapezoid energy, for
    blocks of 3 samples and more (NaN for others). Solved with the stand-in's own float times,
    so the trapezoid over them is the block's energy to rounding."""
    first_s, last_s = stats[:, COLUMN["first_s"]], stats[:, COLUMN["last_s"]]
    a_s, z_s = _stand_in_times(stats)
    d1, d2 = a_s - first_s, last_s - z_s
    known_ws = stats[:, COLUMN["first_w"]] * d1 / 2.0 + stats[:, COLUMN["last_w"]] * d2 / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (stats[:, COLUMN["energy_ws"]] - known_ws) / (d1 / 2.0 + (z_s - a_s) + d2 / 2.0)
    return np.where((stats[:, COLUMN["samples"]] >= 3) & (z_s > a_s), value, np.nan)


def replaceable(stats: np.ndarray, edges_w: np.ndarray, max_gap_s: float, cuts_s: np.ndarray) -> np.ndarray:
    """Which blocks (rows of rollup statistics) stand-in samples can replace (module docstring).

    Parameters
    ----------
    stats : array (blocks, STAT_COLUMNS)
    edges_w : array [W]
        zone_edges of the machine's thresholds.
    max_gap_s : float [s]
        The analysis's longest bridged step.
    cuts_s : array [s]
        Sorted times at which the analysis cuts the machine's energy (cut_times).
    """
    if not len(stats):
        return np.zeros(0, dtype=bool)
    first_s, last_s = stats[:, COLUMN["first_s"]], stats[:, COLUMN["last_s"]]
    low = zone_of(stats[:, COLUMN["min_w"]], edges_w)
    ok = (stats[:, COLUMN["nan_samples"]] == 0) & (stats[:, COLUMN["counter_irregular"]] == 0)
    ok &= low == zone_of(stats[:, COLUMN["max_w"]], edges_w)
    ok &= (stats[:, COLUMN["max_step_s"]] <= max_gap_s) & (max_gap_s >= STAND_IN_STEP_S)
    cuts = np.asarray(cuts_s, dtype=np.float64)
    inside = np.searchsorted(cuts, last_s, side="left") - np.searchsorted(cuts, first_s, side="right")
    ok &= inside == 0
    constant = _stand_in_constant(stats)
    three = stats[:, COLUMN["samples"]] >= 3
    ok &= ~three | (np.isfinite(constant) & (zone_of(np.nan_to_num(constant), edges_w) == low))
    return ok


def stand_in(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples that replace blocks: (time_s, power_w, counter_time_s, energy_import_kwh).

    A block of one or two samples is its samples; one of three or more is its first sample, a
    constant from 1 ms after it to 1 ms before its last sample (steps of at most
    STAND_IN_STEP_S), and its last sample. The counter keeps its first and last reading."""
    if not len(stats):
        empty = np.empty(0)
        return empty, empty, empty, empty
    first_s, last_s = stats[:, COLUMN["first_s"]], stats[:, COLUMN["last_s"]]
    first_w, last_w = stats[:, COLUMN["first_w"]], stats[:, COLUMN["last_w"]]
    samples = stats[:, COLUMN["samples"]]
    constant = _stand_in_constant(stats)
    a_all, z_all = _stand_in_times(stats)
    inner = np.where(samples >= 3, np.maximum(2, np.ceil((z_all - a_all) / STAND_IN_STEP_S) + 1), 0)
    inner = inner.astype(np.int64)
    ends = np.where(samples >= 2, 2, 1)
    per_block = ends + inner
    block = np.repeat(np.arange(len(stats)), per_block)
    position = np.arange(len(block)) - np.repeat(np.cumsum(per_block) - per_block, per_block)
    time_s = np.empty(len(block))
    power_w = np.empty(len(block))
    is_first = position == 0
    is_last = (position == per_block[block] - 1) & (per_block[block] >= 2)
    middle = ~is_first & ~is_last
    time_s[is_first] = first_s[block[is_first]]
    power_w[is_first] = first_w[block[is_first]]
    time_s[is_last] = last_s[block[is_last]]
    power_w[is_last] = last_w[block[is_last]]
    b = block[middle]
    k = position[middle] - 1  # 0 .. inner - 1
    a_s, z_s = a_all[b], z_all[b]
    time_s[middle] = np.where(k == inner[b] - 1, z_s, a_s + (z_s - a_s) * k / (inner[b] - 1))
    power_w[middle] = constant[b]
    c_first = stats[:, COLUMN["counter_first_kwh"]]
    c_last = stats[:, COLUMN["counter_last_kwh"]]
    has = np.isfinite(c_first)
    two = has & (samples >= 2)
    counter_time_s = np.concatenate([first_s[has], last_s[two]])
    counter_kwh = np.concatenate([c_first[has], c_last[two]])
    order = np.argsort(counter_time_s, kind="stable")
    return time_s, power_w, counter_time_s[order], counter_kwh[order]


