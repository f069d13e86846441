"""Power gaps filled with the counter's delta, and local reconciliation (issue 15). Numbers by hand.

The day used by the pinned cases: power 1000 W sampled every 60 s from 0 to 14 400 s (4 h),
except a hole from 3600 s to 7200 s (no samples between: a gap, longer than max_gap_s). The
counter is read every 900 s; during the hole the machine drew 2000 W, so the counter moved
0.5 kWh per reading there and 0.25 kWh per reading elsewhere: 5.0 kWh over the day, 2.0 kWh of
them in the hole. The power integral alone finds 3.0 kWh (3 h at 1 kW).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from devices.meter_models import available_models, load_model
from analytics.energy import (CounterCurve, EnergyCurve, GapFilledCurve, LocalReconciled,
                              counter_backed_energy, reconcile)

EXAMPLES = int(os.environ.get("WATTELIER_FUZZ_EXAMPLES", 200))
HOLE = (3600.0, 7200.0)


def _power() -> EnergyCurve:
    t = np.arange(0.0, 14400.0 + 1, 60.0)
    t = t[(t <= HOLE[0]) | (t >= HOLE[1])]
    return EnergyCurve(t, np.full(len(t), 1000.0))


def _counter_values(t: np.ndarray) -> np.ndarray:
    """True cumulative [kWh]: 1 kW, 2 kW in the hole."""
    return (np.minimum(t, HOLE[0]) / 3600.0 + 2.0 * np.clip(t - HOLE[0], 0.0, 3600.0) / 3600.0
            + np.clip(t - HOLE[1], 0.0, None) / 3600.0)


def _counter() -> CounterCurve:
    t = np.arange(0.0, 14400.0 + 1, 900.0)
    return CounterCurve(t, 100.0 + _counter_values(t))


# jobs: J1 before the hole, J2 around it, J3 after it, J4 starting in it
JOB_A = np.array([600.0, 3000.0, 10800.0, 5400.0])
JOB_B = np.array([1800.0, 9000.0, 12600.0, 8100.0])


def test_gap_inside_a_job_gets_the_counters_delta():
    filled = GapFilledCurve(_power(), _counter())
    energy, coverage = filled.between(JOB_A[:3], JOB_B[:3])
    # J1: 1200 s at 1 kW = 1/3 kWh; J2: 2400 s of power (2/3 kWh) + the hole's 2.0 kWh;
    # J3: 1800 s at 1 kW = 0.5 kWh. The other jobs keep their power integral.
    assert_allclose(energy, [1 / 3, 2 / 3 + 2.0, 0.5], rtol=1e-12)
    assert_allclose(coverage, [1.0, 1.0, 1.0])
    measured, counter_only = filled.shares(JOB_A[:3], JOB_B[:3])
    assert_allclose(measured, [1.0, 0.4, 1.0])  # J2: 2400 of 6000 s measured by power
    assert_allclose(counter_only, [0.0, 0.6, 0.0])
    # the whole day is the counter's 5.0 kWh
    assert_allclose(filled.between([0.0], [14400.0])[0], [5.0], rtol=1e-12)
    # the daily reconciliation spreads the hole over every job (what issue 15 fixes):
    # scale (5 - 0.001) / 3 (to within the resolution), J1 gets 4.999/9 kWh instead of 1/3
    daily, table = reconcile(_power(), _counter(), [0.0, 14400.0], 0.001)
    assert_allclose(table["scale"], [4.999 / 3], rtol=1e-12)
    assert_allclose(daily.between(JOB_A[:1], JOB_B[:1]), [4.999 / 9], rtol=1e-12)
    # local reconciliation of the filled curve moves nothing (power and counter agree)
    local = counter_backed_energy(_power(), _counter(), 0.001)
    assert_allclose(local.between(JOB_A, JOB_B), filled.between(JOB_A, JOB_B)[0], rtol=0, atol=1e-12)


def test_gap_across_a_jobs_start():
    filled = GapFilledCurve(_power(), _counter())
    energy, _ = filled.between(JOB_A[3:], JOB_B[3:])
    # J4 [5400, 8100]: half the hole's time (1800 of 3600 s) -> 1.0 kWh, then 900 s at 1 kW
    assert_allclose(energy, [1.0 + 0.25], rtol=1e-12)
    measured, counter_only = filled.shares(JOB_A[3:], JOB_B[3:])
    assert_allclose(measured, [1 / 3])
    assert_allclose(counter_only, [2 / 3])


def test_gap_with_a_counter_reset_inside():
    t = np.arange(0.0, 14400.0 + 1, 900.0)
    values = 100.0 + _counter_values(t)
    # meter replaced between 3600 s and 4500 s: it reads 0.5 kWh at 4500 s and counts from there
    after = t >= 4500.0
    values[after] = values[after] - values[t == 4500.0][0] + 0.5
    counter = CounterCurve(t, values)
    assert_allclose(counter.between([3600.0], [7200.0])[0], [2.0])
    energy, _ = GapFilledCurve(_power(), counter).between(JOB_A, JOB_B)
    assert_allclose(energy, [1 / 3, 2 / 3 + 2.0, 0.5, 1.25], rtol=1e-12)


def test_gap_without_counter_readings_stays_missing():
    t = np.arange(0.0, 3000.0 + 1, 900.0)  # the counter stops before the hole
    filled = GapFilledCurve(_power(), CounterCurve(t, _counter_values(t)))
    energy, coverage = filled.between(JOB_A[:2], JOB_B[:2])
    assert_allclose(energy, [1 / 3, 2 / 3], rtol=1e-12)
    assert_allclose(coverage, [1.0, 0.4])
    assert_allclose(filled.shares(JOB_A[:2], JOB_B[:2])[1], [0.0, 0.0])
    # and no counter at all: the power curve itself
    empty = GapFilledCurve(_power(), CounterCurve([], []))
    assert_allclose(empty.between(JOB_A, JOB_B)[0], _power().between(JOB_A, JOB_B)[0])


def test_local_reconciliation_keeps_corrections_local():
    # power reads 10 % high from 10 800 s on (a drifting sensor); counter resolution 0.001 kWh.
    t = np.arange(0.0, 14400.0 + 1, 60.0)
    p = np.where(t >= 10800.0, 1100.0, 1000.0)
    ct = np.arange(0.0, 14400.0 + 1, 900.0)
    counter = CounterCurve(ct, np.round(ct / 3.6, 0) / 1000.0)  # 1 kW, Wh register
    local = LocalReconciled(EnergyCurve(t, p), counter, 0.001)
    # a job before the drift keeps its power integral: 1200 s at 1 kW
    assert_allclose(local.between([600.0], [1800.0]), [1 / 3], atol=1e-12)
    # a job in the drift gets the counter's 1 kWh per hour within the resolution
    assert abs(local.between([10800.0], [14400.0])[0] - 1.0) <= 0.001 + 1e-12


@st.composite
def _metered(draw):
    """Power samples with random holes, and a counter of random resolution that read the true
    energy (power integral plus random energy in the holes), floored to its resolution."""
    n = draw(st.integers(2, 60))
    steps = draw(st.lists(st.sampled_from([10.0, 30.0, 60.0, 400.0, 2000.0]), min_size=n - 1, max_size=n - 1))
    t = np.concatenate([[0.0], np.cumsum(steps)])
    p = np.array(draw(st.lists(st.floats(0.0, 5000.0), min_size=n, max_size=n)))
    hole_w = draw(st.floats(0.0, 8000.0))
    power = EnergyCurve(t, p)
    r = draw(st.sampled_from([0.0001, 0.001, 0.01, 0.1]))
    m = draw(st.integers(2, 30))
    ct = np.sort(np.array(draw(st.lists(st.floats(0.0, float(t[-1])), min_size=m, max_size=m))))
    # true energy: power where dense, hole_w in the gaps
    gaps = GapFilledCurve(power, CounterCurve([0.0, float(t[-1])], [0.0, 0.0]))
    gap_time = np.interp(ct, [0.0, float(t[-1])], [0.0, 0.0])
    if len(gaps.gap_start_s):
        gap_time = gaps._in_gaps(ct)[1]
    true = power.at(ct) + hole_w * gap_time / 3.6e6
    return power, ct, np.floor(true / r) * r, r


@settings(max_examples=EXAMPLES, deadline=None)
@given(_metered(), st.data())
def test_between_any_two_readings_the_counter_delta(metered, data):
    power, ct, values, r = metered
    counter = CounterCurve(ct, values)
    local = counter_backed_energy(power, counter, r)
    i = data.draw(st.integers(0, len(ct) - 1))
    j = data.draw(st.integers(i, len(ct) - 1))
    got = local.between([ct[i]], [ct[j]])[0]
    assert abs(got - (values[j] - values[i])) <= r * (1 + 1e-9) + 1e-12


@settings(max_examples=EXAMPLES, deadline=None)
@given(_metered(), st.lists(st.floats(0.0, 1.0), max_size=20), st.tuples(st.floats(-0.2, 1.2), st.floats(-0.2, 1.2)))
def test_random_partition_sums_to_the_window(metered, cuts, window):
    power, ct, values, r = metered
    span = float(power.time_s[-1])
    a, b = sorted(window)
    a, b = a * span, b * span
    edges = np.concatenate([[a], np.clip(np.sort(a + np.array(cuts) * (b - a)), a, b), [b]])
    local = counter_backed_energy(power, CounterCurve(ct, values), r)
    filled = GapFilledCurve(power, CounterCurve(ct, values))
    for curve in (local, filled):
        parts = curve.between(edges[:-1], edges[1:])
        parts = parts[0] if isinstance(parts, tuple) else parts
        whole = curve.between([a], [b])
        whole = whole[0] if isinstance(whole, tuple) else whole
        assert np.all(parts >= -1e-12)
        assert abs(np.sum(parts) - whole[0]) <= 1e-9 * max(1.0, abs(whole[0]))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.integers(2, 80), st.floats(0.0, 5000.0), st.sampled_from([0.0001, 0.001, 0.01, 0.1]),
       st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), min_size=1, max_size=10))
def test_without_gaps_the_power_integral_stays(n, watts, r, intervals):
    # dense power at random levels, a counter that read the same energy floored to r
    t = np.arange(n) * 30.0
    p = watts * (1 + np.sin(np.arange(n)))
    power = EnergyCurve(t, p)
    ct = t[::3]
    counter = CounterCurve(ct, np.floor(power.at(ct) / r) * r)
    local = counter_backed_energy(power, counter, r)
    a = np.array([min(x, y) for x, y in intervals]) * t[-1]
    b = np.array([max(x, y) for x, y in intervals]) * t[-1]
    assert_allclose(local.between(a, b), power.between(a, b)[0], rtol=0, atol=1e-9)


def test_pipeline_puts_the_counters_delta_in_the_hole():
    """analyze: the day's hole holds the counter's 2.0 kWh, so the daily scale stays 1 and a
    job outside the hole keeps its power integral (before: scale 4.999/3)."""
    from analytics.pipeline import AnalysisOptions, analyze
    from analytics.records import MachineData

    t0 = 1779926400.0  # 2026-05-28 00:00 UTC, 02:00 in Paris: the 4 h lie in one day
    power = _power()
    ct = np.arange(0.0, 14400.0 + 1, 900.0)
    md = MachineData("laser", t0 + power.time_s, power.power_w, t0 + ct, 100.0 + _counter_values(ct),
                     counter_resolution_kwh=0.001, thresholds_w=(5.0, 50.0, 500.0))
    result = analyze([md], [], None, t0, t0 + 14400.0, AnalysisOptions(emission_factor_kg_per_kwh=0.05))
    assert abs(result.machines[0].energy_kwh - 5.0) <= 1e-9
    (day,) = [u for u in result.usage if u.machine == "laser"]
    assert abs(day.reconciliation_scale - 1.0) <= 1e-12
    filled = GapFilledCurve(power, CounterCurve(ct, _counter_values(ct)))
    assert result.jobs
    for job in result.jobs:
        expected = filled.between([job.start_s - t0], [job.end_s - t0])[0][0]
        assert abs(job.energy_kwh - expected) <= 1e-9


@pytest.mark.parametrize("model_name", available_models())
def test_hole_in_a_job_with_every_shipped_counter_resolution(model_name):
    """A job over a one-hour hole, the counter read by each shipped model's energy register near
    1234.5 kWh (its step r, truncated as a register does): the job's energy is the truth within
    r (one truncation at each of the hole's two edges)."""
    point = load_model(model_name).point("energy_import_kwh")
    r = point.resolution(1234.5)
    t = np.arange(0.0, 14400.0 + 1, 60.0)
    true_w = np.where((t >= 3600.0) & (t < 7200.0), 2000.0, 1000.0)
    true_kwh = np.concatenate([[0.0], np.cumsum((true_w[:-1] + true_w[1:]) / 2 * 60.0 / 3.6e6)])
    hole = (t > 3600.0) & (t < 7200.0)  # the meter answers nothing in between
    counter = CounterCurve(t[~hole], 1234.5 + np.floor(true_kwh[~hole] / r) * r)
    power = EnergyCurve(t[~hole], true_w[~hole], max_gap_s=120.0)
    energy = GapFilledCurve(power, counter).between([3000.0], [9000.0])[0][0]
    truth = float(np.interp(9000.0, t, true_kwh) - np.interp(3000.0, t, true_kwh))
    assert truth > 2.6  # the hole's hour at 2 kW is in it
    assert abs(energy - truth) <= r + 1e-9, (model_name, r, energy - truth)


def _pipeline_energy(t, p, ct, c, r):
    """The reported energy of the pipeline's energy step (analytics.machine_steps) for a
    machine with these power samples and counter readings."""
    from analytics.machine_steps import machine_energy
    from analytics.pipeline import AnalysisOptions, window_of
    from analytics.records import MachineData
    from analytics.states import StateIntervals

    md = MachineData("m", t, p, ct, c, counter_resolution_kwh=r, relative_accuracy=0.01)
    options = AnalysisOptions(emission_factor_kg_per_kwh=0.05, timezone="UTC")
    return machine_energy(md, StateIntervals.empty(), window_of(None, [], t[0], t[-1], options), options)


@settings(max_examples=max(EXAMPLES // 4, 20), deadline=None)
@given(st.floats(0.95, 1.05), st.sampled_from([0.001, 0.01, 0.1]),
       st.lists(st.tuples(st.integers(0, 3 * 3600 - 1), st.integers(121, 1800)), max_size=4),
       st.data())
def test_removing_power_samples_moves_energy_by_at_most_resolution_and_class(gain, r, holes, data):
    """Three hours of 1 Hz power read `gain` off the counter's truth, the counter floored to r.
    Remove random stretches of readings (power and counter alike, as a silent meter; each
    hour's first and last reading kept, as every store keeps them). The pipeline's energy:

    - between any two of its reconciliation knots (each hour's first and last reading, each
      hole's ends) equals the counter's delta within r;
    - between any two readings left, within 3 r (at a knot the reported cumulative lies in a
      band r wide above the counter; between knots it follows the power, which the counter
      trails by up to r, since each reading is floored to r);
    - so it moves by at most the resolution plus the class from the run without holes: within
      2 r at the knots, and within 3 r plus the power's error |gain - 1| anywhere."""
    t = np.arange(0.0, 3 * 3600.0 + 1)
    true_w = 2000.0 + 1500.0 * np.sin(t / 700.0)
    true_kwh = np.concatenate([[0.0], np.cumsum((true_w[:-1] + true_w[1:]) / 2 / 3.6e6)])
    c = 100.0 + np.floor(true_kwh / r) * r
    keep = np.ones(len(t), dtype=bool)
    for first, length in holes:
        keep[first + 1:first + length] = False
    hour = np.floor(t / 3600.0)
    keep |= np.concatenate([[True], hour[1:] != hour[:-1]]) | np.concatenate([hour[1:] != hour[:-1], [True]])
    whole = _pipeline_energy(t, true_w * gain, t, c, r).reported
    holed = _pipeline_energy(t[keep], true_w[keep] * gain, t[keep], c[keep], r).reported

    def energy(curve, a, b):
        return float(curve.at(np.array([b]))[0] - curve.at(np.array([a]))[0])

    def counter(x):
        return float(np.interp(x, t, c))

    knots = holed.knot_s
    k = sorted(data.draw(st.lists(st.integers(0, len(knots) - 1), min_size=2, max_size=2, unique=True)))
    a, b = knots[k[0]], knots[k[1]]
    assert abs(energy(holed, a, b) - (counter(b) - counter(a))) <= r * (1 + 1e-9) + 1e-9
    assert abs(energy(holed, a, b) - energy(whole, a, b)) <= 2 * r * (1 + 1e-9) + 1e-9

    kept = np.flatnonzero(keep)
    i = data.draw(st.integers(0, len(kept) - 2))
    j = data.draw(st.integers(i + 1, len(kept) - 1))
    a, b = t[kept[i]], t[kept[j]]
    got = energy(holed, a, b)
    assert abs(got - (c[kept[j]] - c[kept[i]])) <= 3 * r * (1 + 1e-9) + 1e-9
    assert abs(got - energy(whole, a, b)) <= 3 * r + abs(gain - 1) * abs(got) + 1e-9
