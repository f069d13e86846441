"""Energy in intervals from power and from counters; reconciliation. Numbers pinned by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import analytics
from analytics.energy import (CounterCurve, EnergyCurve, WeightedCumulative, counter_energy_between,
                              counter_increments_kwh, counter_resolution_kwh, energy_between,
                              reconcile, reconciliation_scales, step_at_changes, unwrap_counter_kwh)
from analytics.pipeline import AnalysisOptions, analyze
from analytics.records import MachineData

ROLLOVER_U32_WH_KWH = 2**32 / 1000.0  # an unsigned 32-bit Wh register wraps at 4 294 967.296 kWh


def test_exported_from_package():
    assert analytics.energy_between is energy_between


def test_cut_exactly_at_interval_ends():
    # 100 W from 0 to 10 s, then a ramp to 200 W at 20 s.
    # [5, 15]: 100 W x 5 s = 500 J; 10..15 s ramps 100 -> 150 W: mean 125 W x 5 s = 625 J.
    # 1125 J / 3.6e6 = 3.125e-4 kWh, fully covered.
    energy, coverage = energy_between([0.0, 10.0, 20.0], [100.0, 100.0, 200.0], [5.0], [15.0])
    assert_allclose(energy, [1125 / 3.6e6])
    assert_allclose(coverage, [1.0])


def test_whole_series_and_several_intervals():
    t = [0.0, 10.0, 20.0]
    p = [100.0, 100.0, 200.0]
    # [0, 20]: 1000 J + 1500 J = 2500 J; [0, 0]: empty; [20, 20]: empty
    energy, coverage = energy_between(t, p, [0.0, 0.0, 20.0], [20.0, 0.0, 20.0])
    assert_allclose(energy, [2500 / 3.6e6, 0.0, 0.0])
    assert_allclose(coverage, [1.0, 0.0, 0.0])


def test_empty_input():
    energy, coverage = energy_between([], [], [0.0, 5.0], [10.0, 6.0])
    assert_allclose(energy, [0.0, 0.0])
    assert_allclose(coverage, [0.0, 0.0])
    energy, coverage = energy_between([0.0, 1.0], [1.0, 1.0], [], [])
    assert energy.shape == (0,) and coverage.shape == (0,)
    # a single sample has no segment
    energy, coverage = energy_between([5.0], [1000.0], [0.0], [10.0])
    assert_allclose(energy, [0.0])
    assert_allclose(coverage, [0.0])


def test_nan_samples_are_no_data():
    t = [0.0, 10.0, 20.0, 30.0]
    p = [100.0, np.nan, 100.0, 100.0]
    # NaN dropped: 0 -> 20 -> 30 s at 100 W: 3000 J, fully covered (20 s <= max_gap_s)
    energy, coverage = energy_between(t, p, [0.0], [30.0])
    assert_allclose(energy, [3000 / 3.6e6])
    assert_allclose(coverage, [1.0])
    # with max_gap_s = 15 the 0 -> 20 s step is a gap: only 20..30 s counts, 1000 J, 10/30
    energy, coverage = energy_between(t, p, [0.0], [30.0], max_gap_s=15.0)
    assert_allclose(energy, [1000 / 3.6e6])
    assert_allclose(coverage, [1 / 3])
    # all NaN: no data at all
    energy, coverage = energy_between(t, [np.nan] * 4, [0.0], [30.0])
    assert_allclose(energy, [0.0])
    assert_allclose(coverage, [0.0])


def test_a_gap_is_not_bridged():
    # 360 W x 10 s = 3600 J = 0.001 kWh per segment; 10 -> 200 s is a gap (> 120 s)
    t = [0.0, 10.0, 200.0, 210.0]
    p = [360.0] * 4
    energy, coverage = energy_between(t, p, [0.0, 5.0, 50.0], [210.0, 205.0, 100.0])
    # [0, 210]: two segments, 0.002 kWh, covered 20 of 210 s
    # [5, 205]: 5 s + 5 s at 360 W = 3600 J = 0.001 kWh, covered 10 of 200 s
    # [50, 100]: inside the gap
    assert_allclose(energy, [0.002, 0.001, 0.0])
    assert_allclose(coverage, [20 / 210, 10 / 200, 0.0])
    # without a limit the gap is bridged: 210 s x 360 W = 75600 J = 0.021 kWh
    energy, coverage = energy_between(t, p, [0.0], [210.0], max_gap_s=None)
    assert_allclose(energy, [0.021])
    assert_allclose(coverage, [1.0])


def test_intervals_outside_the_data():
    t = [0.0, 10.0]
    p = [360.0, 360.0]  # 0.001 kWh over the 10 s
    energy, coverage = energy_between(t, p, [-100.0, 300.0, -10.0, 5.0], [-50.0, 400.0, 10.0, 20.0])
    # before, after, half before (10 s of 20 covered), half after (5 s of 15)
    assert_allclose(energy, [0.0, 0.0, 0.001, 0.0005])
    assert_allclose(coverage, [0.0, 0.0, 0.5, 5 / 15])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="ends before it starts"):
        energy_between([0.0, 1.0], [1.0, 1.0], [5.0], [4.0])
    with pytest.raises(ValueError, match="non-decreasing"):
        energy_between([0.0, 2.0, 1.0], [1.0, 1.0, 1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="differ in length"):
        energy_between([0.0, 1.0], [1.0], [0.0], [1.0])


def test_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.exponential(20.0, 500))
    p = rng.uniform(0.0, 3000.0, 500)
    p[rng.random(500) < 0.05] = np.nan
    a = rng.uniform(t[0] - 50, t[-1] + 50, 200)
    b = a + rng.uniform(0, 800, 200)
    reference = energy_between(t, p, a, b, max_gap_s=60.0)
    for block in (1, 7, 64, 499, 10_000):
        monkeypatch.setattr(EnergyCurve, "BLOCK", block)
        result = energy_between(t, p, a, b, max_gap_s=60.0)
        assert_allclose(result[0], reference[0], rtol=1e-12, atol=1e-15)
        assert_allclose(result[1], reference[1], rtol=1e-12, atol=1e-15)


def test_matches_a_slow_reference():
    rng = np.random.default_rng(11)
    t = np.cumsum(rng.exponential(30.0, 120))
    p = rng.uniform(0.0, 1000.0, 120)
    a = rng.uniform(-100.0, t[-1] + 100.0, 40)
    b = a + rng.uniform(0.0, 600.0, 40)
    energy, coverage = energy_between(t, p, a, b, max_gap_s=60.0)
    for k in range(40):
        joules = covered = 0.0
        for i in range(len(t) - 1):
            if t[i + 1] - t[i] > 60.0:
                continue
            lo, hi = max(a[k], t[i]), min(b[k], t[i + 1])
            if hi <= lo:
                continue
            p_lo, p_hi = np.interp([lo, hi], t[i: i + 2], p[i: i + 2])
            joules += (p_lo + p_hi) / 2 * (hi - lo)
            covered += hi - lo
        assert energy[k] == pytest.approx(joules / 3.6e6, rel=1e-9, abs=1e-12)
        assert coverage[k] == pytest.approx(covered / (b[k] - a[k]), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    samples=st.lists(st.tuples(st.floats(0.01, 100.0), st.floats(0.0, 5000.0)), min_size=0, max_size=60),
    cuts=st.lists(st.floats(0.0, 1.0), min_size=0, max_size=20),
    window=st.tuples(st.floats(-50.0, 2000.0), st.floats(0.0, 3000.0)),
    max_gap=st.one_of(st.none(), st.floats(1.0, 80.0)),
)
def test_random_partition_sums_to_the_whole(samples, cuts, window, max_gap):
    """energy_between over a random partition of a window sums to the whole window's energy."""
    t = np.cumsum([s[0] for s in samples]) if samples else np.zeros(0)
    p = np.array([s[1] for s in samples])
    lo, width = window
    hi = lo + width
    edges = np.sort(np.concatenate([[lo, hi], lo + np.array(cuts) * width]))
    parts, part_cov = energy_between(t, p, edges[:-1], edges[1:], max_gap_s=max_gap)
    whole, whole_cov = energy_between(t, p, [lo], [hi], max_gap_s=max_gap)
    assert np.sum(parts) == pytest.approx(whole[0], rel=1e-9, abs=1e-12)
    assert np.all(parts >= -1e-12)
    if width > 0:
        covered = np.sum(part_cov * np.diff(edges))
        assert covered == pytest.approx(whole_cov[0] * width, rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Counters


def test_counter_energy_plain():
    # 10.0 -> 12.0 kWh over 0..100 s, linear between readings: [25, 75] holds 1.0 kWh
    energy, coverage = counter_energy_between([0.0, 100.0], [10.0, 12.0], [25.0, 0.0], [75.0, 100.0])
    assert_allclose(energy, [1.0, 2.0])
    assert_allclose(coverage, [1.0, 1.0])


def test_counter_reset_counts_from_zero():
    # 100.0 -> 100.5 (+0.5), reset to 0.2 (+0.2 since zero), -> 0.7 (+0.5): 1.2 kWh in all
    t = [0.0, 1.0, 2.0, 3.0]
    c = [100.0, 100.5, 0.2, 0.7]
    assert_allclose(counter_increments_kwh(c), [0.5, 0.2, 0.5])
    assert_allclose(unwrap_counter_kwh(c), [0.0, 0.5, 0.7, 1.2])
    # [0.5, 2.5]: cumulative 0.25 at 0.5 s and 0.95 at 2.5 s
    energy, coverage = counter_energy_between(t, c, [0.0, 0.5], [3.0, 2.5])
    assert_allclose(energy, [1.2, 0.7])
    assert_allclose(coverage, [1.0, 1.0])


def test_counter_32_bit_rollover():
    # an unsigned 32-bit Wh register: 4294967.0 -> 4294967.2 -> wraps to 0.104 -> 0.304
    # each step is 0.2 kWh (4294967.296 - 4294967.2 + 0.104 = 0.2): 0.6 kWh in all
    t = [0.0, 60.0, 120.0, 180.0]
    c = [4294967.0, 4294967.2, 0.104, 0.304]
    energy, _ = counter_energy_between(t, c, [0.0], [180.0], rollover_kwh=ROLLOVER_U32_WH_KWH)
    assert_allclose(energy, [0.6], rtol=1e-6)
    assert_allclose(counter_increments_kwh(c, ROLLOVER_U32_WH_KWH), [0.2, 0.2, 0.2], rtol=1e-5)
    # without the register's range the step back is a reset: 0.2 + 0.104 + 0.2
    energy, _ = counter_energy_between(t, c, [0.0], [180.0])
    assert_allclose(energy, [0.504], rtol=1e-6)
    # a drop far from the top of the range is a reset even when the range is known
    assert_allclose(counter_increments_kwh([5000.0, 0.3], ROLLOVER_U32_WH_KWH), [0.3])


def test_counter_outside_readings_and_empty():
    energy, coverage = counter_energy_between([10.0, 20.0], [1.0, 2.0], [0.0, 30.0, 15.0], [5.0, 40.0, 25.0])
    # before, after, half inside (15..20 s: 0.5 kWh, 5 of 10 s)
    assert_allclose(energy, [0.0, 0.0, 0.5])
    assert_allclose(coverage, [0.0, 0.0, 0.5])
    energy, coverage = counter_energy_between([], [], [0.0], [1.0])
    assert_allclose(energy, [0.0])
    assert_allclose(coverage, [0.0])
    # NaN readings are no reading (an empty CSV cell)
    energy, _ = counter_energy_between([0.0, 5.0, 10.0], [1.0, np.nan, 3.0], [0.0], [10.0])
    assert_allclose(energy, [2.0])


def test_counter_resolution_estimate():
    assert counter_resolution_kwh([1.0, 1.0, 1.1, 1.1, 1.3]) == pytest.approx(0.1)
    assert counter_resolution_kwh([1.0, 1.0]) is None
    assert counter_resolution_kwh([]) is None


# ---------------------------------------------------------------------------------------------
# Reconciliation


def test_reconciliation_scales_within_resolution():
    # power says 2.0 kWh; counter 2.2 kWh +- 0.1: moved to the nearest 2.1 (scale 1.05);
    # +- 0.5 already holds 2.0 (scale 1); no power energy: scale 1
    assert_allclose(reconciliation_scales([2.0], [2.2], 0.1), [1.05])
    assert_allclose(reconciliation_scales([2.0], [2.2], 0.5), [1.0])
    assert_allclose(reconciliation_scales([0.0], [0.3], 0.1), [1.0])
    assert_allclose(reconciliation_scales([2.0], [1.5], 0.0), [0.75])


def test_reconcile_per_period_sums_to_counter():
    # 1000 W for two hours: 1 kWh per hour from power
    curve = EnergyCurve([0.0, 3600.0, 7200.0], [1000.0, 1000.0, 1000.0], max_gap_s=None)
    # the counter saw 1.5 kWh in the first hour and 1.0 kWh in the second
    counter = CounterCurve([0.0, 3600.0, 7200.0], [20.0, 21.5, 22.5])
    reconciled, table = reconcile(curve, counter, [0.0, 3600.0, 7200.0], resolution_kwh=0.0)
    assert_allclose(table["scale"], [1.5, 1.0])
    assert_allclose(table["power_kwh"], [1.0, 1.0])
    assert_allclose(table["counter_kwh"], [1.5, 1.0])
    # a job over [1800, 5400]: 0.5 kWh x 1.5 + 0.5 kWh x 1.0 = 1.25 kWh (power said 1.0)
    assert_allclose(reconciled.between([1800.0], [5400.0]), [1.25])
    assert_allclose(curve.between([1800.0], [5400.0])[0], [1.0])
    # over each period the reconciled sum is the counter's delta
    assert_allclose(reconciled.between([0.0, 3600.0], [3600.0, 7200.0]), [1.5, 1.0])


def test_reconcile_with_counter_resolution():
    curve = EnergyCurve([0.0, 7200.0], [1000.0, 1000.0], max_gap_s=None)  # 2.0 kWh
    counter = CounterCurve([0.0, 7200.0], [10.0, 12.2])  # 2.2 kWh, steps of 0.1 kWh
    reconciled, table = reconcile(curve, counter, [0.0, 7200.0], resolution_kwh=0.1)
    assert_allclose(table["scale"], [1.05])  # to 2.1 kWh, the nearest value the counter allows
    assert_allclose(reconciled.between([0.0], [3600.0]), [1.05])
    # resolution estimated from the readings (one step of 2.2 kWh): 2.0 is within it
    _, table = reconcile(curve, counter, [0.0, 7200.0])
    assert_allclose(table["scale"], [1.0])


def test_weighted_cumulative_outside_edges():
    curve = EnergyCurve([0.0, 10800.0], [1000.0, 1000.0], max_gap_s=None)  # 1 kWh/h, 3 h
    weighted = WeightedCumulative(curve, [3600.0, 7200.0], [2.0], outside_rate=1.0)
    # hour 1 at rate 1, hour 2 at rate 2, hour 3 at rate 1
    assert_allclose(weighted.between([0.0, 0.0, 5400.0], [10800.0, 3600.0, 9000.0]), [4.0, 1.0, 1.0 + 0.5])
    with pytest.raises(ValueError, match="rates"):
        WeightedCumulative(curve, [0.0, 1.0, 2.0], [1.0])


def test_step_at_changes_places_one_step_per_joined_sample_step():
    t, p = step_at_changes([0.0, 1.0, 2.0, 3.0, 200.0], [1.0, 2.0, np.nan, 4.0, 5.0],
                           [-1.0, 0.5, 0.7, 2.0, 2.5, 100.0, 300.0], max_gap_s=120.0)
    # -1 and 300 outside the data; 0.7 a second change in the step [0, 1]; 2.0 on a NaN sample
    # (dropped: the step is [1, 3]) and 2.5 a second change in it; 100 in the gap [3, 200]
    assert_allclose(t, [0.0, 0.5, 0.5, 1.0, 2.0, 2.0, 3.0, 200.0])
    assert_allclose(p, [1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 5.0])
    # on a sample: nothing to place
    t, p = step_at_changes([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [1.0])
    assert_allclose(t, [0.0, 1.0, 2.0]) and assert_allclose(p, [1.0, 2.0, 3.0])
    t, p = step_at_changes([], [], [1.0])
    assert len(t) == len(p) == 0
    # the energy of the stepped series: 1 W for 0.5 s, then 2 W for 0.5 s (1.5 J), 2 W then 4 W
    # over [1, 3] stepping at 2 (6 J), gap
    curve = EnergyCurve(*step_at_changes([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, np.nan, 4.0], [0.5, 2.0]))
    assert curve.total_kwh * 3.6e6 == pytest.approx(1.5 + 6.0)


@pytest.mark.parametrize("phase_s", [0.05, 0.3, 0.5, 0.7, 0.95])
def test_job_energy_is_unbiased_for_a_machine_switching_state(phase_s):
    """A machine switches from 300 W (idle) to 2000 W at 100 s and back at 180 s (on a 1 s
    grid); a 1 Hz meter samples it at a phase. With a linear ramp across the sample step
    around each change, the job cut at the state change gets 3/8 of each ramp instead of 1/2
    (-2 x 1700 W x 1/8 s = -0.118 Wh of 44.4 Wh, -0.27 %); with a step in power at each change
    the job's energy is exact to the sampling: 80 samples of 2000 W."""
    t = np.arange(0.0, 300.0) + phase_s
    p = np.where((t >= 100.0) & (t < 180.0), 2000.0, 300.0)
    true_wh = 80.0 * 2000.0 / 3600.0
    md = MachineData("laser", t, p, thresholds_w=(5.0, 50.0, 1000.0))
    result = analyze([md], [], None, 0.0, 300.0, AnalysisOptions(min_dwell_s=0.0, emission_factor_kg_per_kwh=0.05))
    (job,) = result.jobs
    assert (job.start_s, job.end_s) == pytest.approx((99.5 + phase_s, 179.5 + phase_s))
    assert job.energy_kwh * 1000.0 == pytest.approx(true_wh, abs=1e-9)
    ramp_cut_wh = EnergyCurve(t, p).between([job.start_s], [job.end_s])[0][0] * 1000.0
    assert ramp_cut_wh == pytest.approx(true_wh - 2 * 1700.0 / 8 / 3600.0, abs=1e-9)
    # the machine's total is the same either way
    assert result.machines[0].energy_kwh == pytest.approx(EnergyCurve(t, p).between([0.0], [300.0])[0][0])
