"""Machine states from power and from the controller; threshold calibration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from analytics.states import (FAULT, IDLE, OFF, PROCESSING, SETUP, STANDBY, StateIntervals,
                              apply_min_dwell, calibrate_thresholds, controller_classes,
                              forward_fill, overlay_controller, power_levels, states_from_power)

THRESHOLDS = (10.0, 100.0, 1000.0)


def test_power_levels_with_hysteresis():
    # up: at each threshold; down: below 90 % of it (hysteresis 0.1)
    p = [0, 50, 500, 5000, 950, 850, 95, 85, 5]
    # 950 >= 900 stays processing; 850 drops to idle; 95 >= 90 stays idle; 85 standby; 5 off
    assert_array_equal(power_levels(p, THRESHOLDS, 0.1), [0, 1, 2, 3, 3, 2, 2, 1, 0])
    # without hysteresis 950 is idle and 95 standby
    assert_array_equal(power_levels(p, THRESHOLDS, 0.0), [0, 1, 2, 3, 2, 2, 1, 1, 0])
    assert power_levels([], THRESHOLDS).shape == (0,)


def _series():
    p = np.zeros(183)
    p[30:90] = 2000.0
    p[90:93] = 50.0  # a 3 s dip to standby inside a job
    p[93:153] = 2000.0
    p[153:] = 50.0
    return np.arange(183.0), p


def test_states_from_power_midpoints_and_min_dwell():
    t, p = _series()
    states = states_from_power(t, p, THRESHOLDS, min_dwell_s=10.0)
    # each sample holds up to halfway to its neighbours; the 3 s dip is absorbed
    assert states.names == ["off", "processing", "standby"]
    assert_allclose(states.start_s, [0.0, 29.5, 152.5])
    assert_allclose(states.end_s, [29.5, 152.5, 182.0])
    # with no minimum dwell the dip stays
    states = states_from_power(t, p, THRESHOLDS, min_dwell_s=0.0)
    assert states.names == ["off", "processing", "standby", "processing", "standby"]
    assert_allclose(states.start_s, [0.0, 29.5, 89.5, 92.5, 152.5])


def test_states_nan_and_gap_and_empty():
    t = np.array([0.0, 1.0, 2.0, 3.0, 300.0, 301.0, 302.0])
    p = np.array([50.0, np.nan, 50.0, 50.0, 2000.0, 2000.0, 2000.0])
    states = states_from_power(t, p, THRESHOLDS, min_dwell_s=0.0)
    # NaN dropped (0 -> 2 s joined); 3 -> 300 s is a gap: no state there
    assert states.names == ["standby", "processing"]
    assert_allclose(states.start_s, [0.0, 300.0])
    assert_allclose(states.end_s, [3.0, 302.0])
    assert states.seconds_in(STANDBY) == 3.0 and states.seconds_in(PROCESSING) == 2.0
    assert len(states_from_power([], [], THRESHOLDS)) == 0
    assert len(states_from_power([0.0, 1.0], [np.nan, np.nan], THRESHOLDS)) == 0


def test_min_dwell_at_start_takes_the_next_state():
    runs = StateIntervals(np.array([0.0, 5.0, 100.0]), np.array([5.0, 100.0, 200.0]),
                          np.array([IDLE, PROCESSING, IDLE]))
    out = apply_min_dwell(runs, 10.0)
    assert out.names == ["processing", "idle"]
    assert_allclose(out.start_s, [0.0, 100.0])


def test_calibration_three_levels():
    rng = np.random.default_rng(1)
    p = np.concatenate([
        np.zeros(2000),                                  # off
        20.0 * (1 + 0.03 * rng.standard_normal(4000)),   # standby
        200.0 * (1 + 0.03 * rng.standard_normal(2000)),  # idle
        2000.0 * rng.uniform(0.8, 1.3, 3000),            # processing at several levels
    ])
    cal = calibrate_thresholds(p, rated_power_w=3000.0)
    assert cal.method.startswith("three power levels")
    assert cal.standby_w == 3.0  # 0.1 % of rated power
    # thresholds in the valleys, near the geometric middles (63 W and 700 W)
    assert 35.0 < cal.idle_w < 120.0
    assert 350.0 < cal.processing_w < 1500.0
    levels = power_levels(p, cal.thresholds_w, 0.1)
    assert np.bincount(levels, minlength=4).tolist() == [2000, 4000, 2000, 3000]


def test_calibration_two_levels_and_fallbacks():
    rng = np.random.default_rng(2)
    p = np.concatenate([15.0 * (1 + 0.02 * rng.standard_normal(3000)),
                        3000.0 * (1 + 0.02 * rng.standard_normal(3000))])
    cal = calibrate_thresholds(p)  # no rated power: reference = 99.5th percentile
    assert cal.method == "two power levels: standby and processing"
    assert cal.idle_w == cal.processing_w
    assert 60.0 < cal.processing_w < 700.0
    # no data, with rated power: 0.1 %, 3 %, 25 % of it
    cal = calibrate_thresholds([], rated_power_w=1000.0)
    assert_allclose(cal.thresholds_w, (1.0, 30.0, 250.0))
    # one level, no rated power: everything above the off level is standby
    cal = calibrate_thresholds(np.full(100, 40.0))
    assert cal.standby_w == 1.0 and cal.idle_w == pytest.approx(80.0)


def test_forward_fill_and_controller_classes():
    assert forward_fill(np.array([None, "a", None, "b", None], dtype=object)).tolist() == \
        [None, "a", "a", "b", "b"]
    execution = np.array(["stopped", "running", "ended", None, "aborted", "interrupted"], dtype=object)
    mode = np.array(["manual", "automatic", None, "setup", "automatic", "automatic"], dtype=object)
    assert controller_classes(execution, mode).tolist() == [-2, PROCESSING, -2, SETUP, FAULT, -2]


def test_overlay_controller():
    power = StateIntervals(np.array([0.0, 20.0, 80.0]), np.array([20.0, 80.0, 200.0]),
                           np.array([STANDBY, PROCESSING, IDLE]))
    t = np.array([0.0, 25.0, 75.0, 120.0, 160.0])
    execution = np.array(["stopped", "running", "ended", None, "aborted"], dtype=object)
    mode = np.array(["manual", "automatic", "automatic", "setup", "automatic"], dtype=object)
    out = overlay_controller(power, t, execution, mode, 0.0, 200.0)
    # processing only while the program runs; power above the threshold outside a run is idle
    assert out.names == ["standby", "idle", "processing", "idle", "setup", "fault"]
    assert_allclose(out.start_s, [0.0, 20.0, 25.0, 75.0, 120.0, 160.0])
    assert_allclose(out.end_s, [20.0, 25.0, 75.0, 120.0, 160.0, 200.0])


def test_overlay_controller_power_off_and_gaps():
    # power: off, then no data; controller: aborted from 0, running from 50
    power = StateIntervals(np.array([0.0]), np.array([40.0]), np.array([OFF]))
    out = overlay_controller(power, np.array([0.0, 50.0]), np.array(["aborted", "running"], dtype=object),
                             np.array(["automatic", "automatic"], dtype=object), 0.0, 100.0)
    # a machine switched off is off whatever the controller said last; a run holds without power
    assert out.names == ["off", "fault", "processing"]
    assert_allclose(out.start_s, [0.0, 40.0, 50.0])
    assert_allclose(out.end_s, [40.0, 50.0, 100.0])
    # fault without power data stays fault (the controller has spoken)
    # no controller changes: the power states, clipped to the window
    out = overlay_controller(power, np.zeros(0), np.zeros(0, dtype=object), np.zeros(0, dtype=object), 10.0, 30.0)
    assert out.names == ["off"] and out.start_s[0] == 10.0 and out.end_s[0] == 30.0


def _reference_levels(p, thresholds, hysteresis):
    """One Schmitt trigger per threshold, sample by sample (the definition, unvectorised)."""
    above = [False] * len(thresholds)
    out = []
    for i, x in enumerate(p):
        for k, th in enumerate(thresholds):
            if x >= th:
                above[k] = True
            elif x < th * (1 - hysteresis) or i == 0:
                above[k] = False
        out.append(sum(above))
    return out


def _reference_states(t, p, thresholds, hysteresis, max_gap_s):
    """Runs of equal level, each sample standing for the time halfway to its joined neighbours."""
    level = _reference_levels(p, thresholds, hysteresis)
    runs = []
    for i in range(len(t)):
        joined_before = i > 0 and t[i] - t[i - 1] <= max_gap_s
        joined_after = i < len(t) - 1 and t[i + 1] - t[i] <= max_gap_s
        a = (t[i - 1] + t[i]) / 2 if joined_before else t[i]
        b = (t[i] + t[i + 1]) / 2 if joined_after else t[i]
        if runs and joined_before and runs[-1][2] == level[i]:
            runs[-1][1] = b
        else:
            runs.append([a, b, level[i]])
    return [r for r in runs if r[1] > r[0]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 200.0), st.sampled_from([0.0, 3.0, 9.5, 10.0, 95.0, 99.0, 100.0,
                                                                  900.0, 950.0, 1000.0, 2000.0])),
                min_size=1, max_size=60),
       st.sampled_from([0.0, 0.1, 0.3]))
def test_power_levels_and_runs_match_the_sample_by_sample_definition(samples, hysteresis):
    t = np.cumsum([s[0] for s in samples])
    p = np.array([s[1] for s in samples])
    thresholds = (10.0, 100.0, 1000.0)
    assert power_levels(p, thresholds, hysteresis).tolist() == _reference_levels(p, thresholds, hysteresis)
    got = states_from_power(t, p, thresholds, hysteresis, min_dwell_s=0.0, max_gap_s=120.0)
    expected = _reference_states(t, p, thresholds, hysteresis, 120.0)
    assert_allclose(got.start_s, [r[0] for r in expected])
    assert_allclose(got.end_s, [r[1] for r in expected])
    assert got.code.tolist() == [r[2] for r in expected]
