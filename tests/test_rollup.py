"""Rollups (storage/rollup.py) and the stand-in samples built from them (analytics.rollup_plan):
numbers worked out by hand, and the analysis's view of the samples kept."""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose

from analytics.energy import EnergyCurve
from analytics.rollup_plan import replaceable, stand_in, zone_edges
from analytics.states import PowerHistogram, calibrate_from_histogram, calibrate_thresholds, power_levels
from storage.rollup import (COLUMN, block_stats, histogram, pack, power_bins, rollup_fields, unpack,
                            unpack_histogram, unpack_histograms, unpack_many)

T0_NS = 1_794_182_400 * 10**9  # an hour boundary
MIN_NS = 60 * 10**9


def _stats(t_s, p, c=None, block_ns=MIN_NS):
    t_ns = T0_NS + np.round(np.asarray(t_s) * 1e9).astype(np.int64)
    c = np.full(len(t_ns), np.nan) if c is None else np.asarray(c, dtype=np.float64)
    return block_stats(t_ns, np.asarray(p, dtype=np.float64), c, block_ns)


def test_block_statistics_by_hand():
    # minute 0: samples at 0, 10, 30 s; minute 1: one sample at 70 s; minute 2: 125 s and 130 s
    s = _stats([0, 10, 30, 70, 125, 130], [100.0, 120.0, 80.0, 50.0, 10.0, float("nan")],
               [1.0, 1.5, 1.25, 2.0, 2.0, 2.5])
    t0 = T0_NS / 1e9
    assert s.shape == (3, len(COLUMN))
    assert_allclose(s[:, COLUMN["block_s"]], [t0, t0 + 60, t0 + 120])
    assert_allclose(s[:, COLUMN["first_s"]] - t0, [0, 70, 125])
    assert_allclose(s[:, COLUMN["last_s"]] - t0, [30, 70, 130])
    # trapezoids: (100+120)/2*10 + (120+80)/2*20 = 1100 + 2000; one sample: 0; NaN: NaN
    assert s[0, COLUMN["energy_ws"]] == 3100.0 and s[1, COLUMN["energy_ws"]] == 0.0
    assert np.isnan(s[2, COLUMN["energy_ws"]])
    assert s[0, COLUMN["max_step_s"]] == 20.0 and s[1, COLUMN["max_step_s"]] == 0.0
    assert s[0, COLUMN["min_w"]] == 80.0 and s[0, COLUMN["max_w"]] == 120.0
    assert s[:, COLUMN["samples"]].tolist() == [3, 1, 2] and s[:, COLUMN["nan_samples"]].tolist() == [0, 0, 1]
    # counter: minute 0 goes backwards (1.5 -> 1.25), the others go forwards only
    assert s[:, COLUMN["counter_irregular"]].tolist() == [1, 0, 0]
    assert s[0, COLUMN["counter_min_step_kwh"]] == 0.5 and np.isnan(s[1, COLUMN["counter_min_step_kwh"]])
    assert s[2, COLUMN["counter_min_step_kwh"]] == 0.5
    assert_allclose(unpack(pack(s), len(COLUMN)), s)



def test_rollups_decoded_together_equal_each_decoded_alone():
    # hours of one machine: one row of statistics each, minutes of varying length (a quiet
    # hour has one sample a minute, a partial hour fewer minutes), details maybe empty
    rng = np.random.default_rng(11)
    fields = []
    for h, (samples, span_s) in enumerate([(3600, 3600), (600, 3600), (61, 1800), (3, 5)]):
        t_ns = T0_NS + h * 3600 * 10**9 + np.sort(rng.choice(span_s * 10**9, samples, replace=False))
        p = np.where(rng.random(samples) < 0.3, 2000.0, 40.0) * rng.uniform(0.9, 1.1, samples)
        fields.append(rollup_fields(t_ns, p, 1000.0 + np.cumsum(p) / 3.6e6))
    for key, columns in (("hour", len(COLUMN)), ("minutes", len(COLUMN)), ("detail", 4)):
        texts = [f[key] for f in fields] + [""]
        alone = np.concatenate([unpack(t, columns) for t in texts])
        together = unpack_many(texts, columns)
        assert together.shape == alone.shape and np.array_equal(together, alone, equal_nan=True)
    assert unpack_many([], 4).shape == (0, 4)
    one_by_one = PowerHistogram.merge([PowerHistogram(*unpack_histogram(f["histogram"]), f["power_max_w"])
                                       for f in fields])
    together = PowerHistogram.summed(*unpack_histograms([f["histogram"] for f in fields]),
                                     max(f["power_max_w"] for f in fields))
    assert (together.below, together.max_w) == (one_by_one.below, one_by_one.max_w)
    assert together.bins.tolist() == one_by_one.bins.tolist()
    assert together.counts.tolist() == one_by_one.counts.tolist() and together.total == 3600 + 600 + 61 + 3


def test_histogram_bins_are_fixed_and_add_up():
    assert power_bins(np.array([1.0, 1.04, 1.05, 100.0, 99.99])).tolist() == [0, 0, 1, 100, 99]
    below, bins, counts = histogram([0.0, -3.0, 1.0, 1.01, 100.0, np.nan])
    assert below == 2 and bins.tolist() == [0, 100] and counts.tolist() == [2, 1]
    rng = np.random.default_rng(4)
    p = np.concatenate([rng.normal(20, 1, 3000), rng.normal(900, 40, 2000), np.zeros(500)])
    whole = PowerHistogram.of(p)
    halves = PowerHistogram.merge([PowerHistogram.of(p[:2345]), PowerHistogram.of(p[2345:])])
    assert whole.total == halves.total == 5500 and whole.max_w == halves.max_w
    assert whole.bins.tolist() == halves.bins.tolist() and whole.counts.tolist() == halves.counts.tolist()
    assert calibrate_from_histogram(halves, 2000.0) == calibrate_thresholds(p, 2000.0)
    # the 99.5th percentile, to a bin: the upper edge of the bin that holds it, at most the max
    assert 900.0 < whole.percentile_w(99.5) <= whole.max_w


def _minute(t_s, p):
    return _stats(t_s, p)[0:1]


def test_stand_in_keeps_energy_levels_and_ends():
    t = np.arange(0.0, 60.0, 1.0)
    rng = np.random.default_rng(2)
    p = 500.0 + 20.0 * rng.standard_normal(60)
    s = _minute(t, p)
    ts, ps, _, _ = stand_in(s)
    t0 = T0_NS / 1e9
    assert ts[0] == t0 and ts[-1] == t0 + 59.0 and ps[0] == p[0] and ps[-1] == p[-1]
    assert len(ts) == 4 and np.all(np.diff(ts) > 0)
    # the same trapezoid energy, and at the ends the same cumulative energy
    real = EnergyCurve(t0 + t, p)
    thin = EnergyCurve(ts, ps)
    assert_allclose(thin.total_kwh, real.total_kwh, rtol=1e-12)
    thresholds = (5.0, 100.0, 300.0)
    assert set(power_levels(ps, thresholds).tolist()) == set(power_levels(p, thresholds).tolist()) == {3}


def test_which_blocks_can_be_replaced():
    edges = zone_edges((5.0, 100.0, 300.0), 0.1)
    assert edges.tolist() == [4.5, 5.0, 90.0, 100.0, 270.0, 300.0]
    steady = _minute(np.arange(0, 60, 1.0), np.full(60, 500.0))
    crossing = _minute(np.arange(0, 60, 1.0), np.r_[np.full(30, 500.0), np.full(30, 50.0)])
    in_band = _minute(np.arange(0, 60, 1.0), np.full(60, 95.0))  # inside 90..100 W: its level is carried
    gappy = _minute([0.0, 50.0], [500.0, 500.0])
    nan = _minute(np.arange(0, 60, 1.0), np.r_[np.full(59, 500.0), np.nan])
    stats = np.concatenate([steady, crossing, in_band, gappy, nan])
    none = np.array([])
    assert replaceable(stats, edges, 120.0, none).tolist() == [True, False, True, True, False]
    assert replaceable(stats, edges, 30.0, none).tolist() == [False] * 5  # max_gap under a minute
    t0 = T0_NS / 1e9
    # a cut strictly inside a block's samples sends it to the raw samples; at its first sample not
    assert replaceable(steady, edges, 120.0, np.array([t0 + 30.5])).tolist() == [False]
    assert replaceable(steady, edges, 120.0, np.array([t0, t0 + 59.0])).tolist() == [True]


def test_minutes_that_change_most_keep_their_samples_in_the_rollup():
    from storage.rollup import DETAIL_MAX_SAMPLES, rollup_fields

    t_ns = T0_NS + np.arange(0, 3600) * 10**9
    p = np.full(3600, 40.0)
    p[600:630] = 400.0   # minute 10: 40 -> 400 W (a state change)
    p[1230:1290] = 44.0  # minutes 20-21: 40 <-> 44 W, ratio 1.1 (noise: not kept)
    p[3000] = np.nan     # minute 50: a sample without power (kept: the analysis reads it raw)
    fields = rollup_fields(t_ns, p, np.linspace(1.0, 2.0, 3600))
    minutes = unpack(fields["minutes"], len(COLUMN))
    assert np.flatnonzero(minutes[:, COLUMN["detail"]] == 1).tolist() == [10, 50]
    detail = unpack(fields["detail"], 4)
    t0 = T0_NS / 1e9
    assert sorted(set(detail[:, 0] - t0)) == [600.0, 3000.0] and len(detail) == 120
    assert_allclose(detail[detail[:, 0] == t0 + 600, 2], p[600:660])
    # a busy hour keeps the minutes that change most, as many as fit in one string field
    busy = np.where(np.arange(3600) % 60 < 30, 10.0, 1000.0) * (1 + np.arange(3600) / 3600)
    fields = rollup_fields(t_ns, busy, np.full(3600, np.nan))
    kept = unpack(fields["minutes"], len(COLUMN))[:, COLUMN["detail"]].sum()
    assert kept == DETAIL_MAX_SAMPLES // 60 and len(fields["detail"]) < 65536
