"""Jobs to sessions, session totals, unattributed energy, shared services."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from analytics.attribution import allocate_service, assign_jobs, session_totals
from analytics.energy import EnergyCurve
from analytics.intervals import CoveredTime, complement, intersect, is_in, shared_totals, sorted_unique, union
from analytics.pipeline import AnalysisOptions, analyze
from analytics.records import MachineData, Session
from devices.site import parse_site

T0 = 1_773_126_000.0  # 2026-03-10T07:00:00Z, a Tuesday (08:00 in Paris)


def constant(power_w: float, start_s: float, end_s: float, step_s: float = 10.0):
    t = np.arange(start_s, end_s + step_s / 2, step_s)
    return t, np.full(len(t), power_w)


def test_assign_jobs_most_overlap():
    sessions_a = np.array([0.0, 100.0])
    sessions_b = np.array([100.0, 200.0])
    # [90, 130]: 10 s with the first, 30 s with the second; [300, 310]: none;
    # [50, 150]: a tie, the earlier session; an instant at 150: the session holding it
    owner = assign_jobs([90.0, 300.0, 50.0, 150.0], [130.0, 310.0, 150.0, 150.0], sessions_a, sessions_b)
    assert owner.tolist() == [1, -1, 0, 1]
    assert assign_jobs([0.0], [1.0], [], []).tolist() == [-1]


def test_overlapping_sessions_share_the_overlap():
    # 1000 W: 1 kWh per hour; sessions [0, 1 h] and [0.5 h, 1.5 h] overlap for half an hour
    curve = EnergyCurve(*constant(1000.0, 0.0, 7200.0))
    totals = session_totals([0.0, 1800.0], [3600.0, 5400.0], curve)
    # each: 0.5 kWh alone + half of the 0.5 kWh shared = 0.75 kWh; sum = 1.5 kWh (the union)
    assert_allclose(totals, [0.75, 0.75])


def test_allocate_service_by_processing_time():
    # the service draws 1000 W for an hour; A processes [0, 1800], B [900, 2700]
    service = EnergyCurve(*constant(1000.0, 0.0, 3600.0))
    shares = allocate_service(service, {"a": (np.array([0.0]), np.array([1800.0])),
                                        "b": (np.array([900.0]), np.array([2700.0]))})
    # 1000 W x 900 s = 0.25 kWh: A alone, shared (0.125 each), B alone; the last 900 s unallocated
    assert_allclose(shares["a"].between([0.0], [3600.0]), [0.375])
    assert_allclose(shares["b"].between([0.0], [3600.0]), [0.375])
    assert_allclose(shares["a"].between([900.0], [1800.0]), [0.125])


def test_interval_sets():
    a, b = union([5.0, 0.0, 20.0, 8.0], [10.0, 6.0, 30.0, 9.0])
    assert a.tolist() == [0.0, 20.0] and b.tolist() == [10.0, 30.0]
    a, b = complement([10.0], [20.0], 0.0, 30.0)
    assert a.tolist() == [0.0, 20.0] and b.tolist() == [10.0, 30.0]
    a, b = intersect([0.0, 20.0], [10.0, 30.0], [5.0], [25.0])
    assert a.tolist() == [5.0, 20.0] and b.tolist() == [10.0, 25.0]
    held = CoveredTime([0.0, 20.0], [10.0, 30.0])
    assert held.at([-1.0, 5.0, 15.0, 25.0, 40.0]).tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 300)), min_size=1, max_size=12))
def test_shared_totals_add_up_to_the_union(intervals):
    a = np.array([x for x, _ in intervals])
    b = a + np.array([w for _, w in intervals])
    held = CoveredTime(a, b)
    assert np.sum(shared_totals(a, b, held)) == pytest.approx(held.total_s, abs=1e-6)


SITE = """
[site]
name = "Test"
timezone = "Europe/Paris"
[opening_hours]
tuesday = ["09:00-12:00"]
[machines.laser-1]
kind = "laser_cutter"
rated_power_w = 3500.0
thresholds = { standby_w = 5.0, idle_w = 100.0, processing_w = 1000.0 }
[machines.router-1]
kind = "cnc_router"
rated_power_w = 9000.0
thresholds = { standby_w = 5.0, idle_w = 100.0, processing_w = 1000.0 }
[services.extraction]
serves = ["laser-1", "router-1"]
rated_power_w = 3000.0
"""


def test_pipeline_unattributed_and_standby_outside_opening():
    site = parse_site(SITE)
    # laser-1, 08:00-10:00 local (07:00-09:00Z): standby 36 W for the first hour, then 3600 W
    t = np.arange(T0, T0 + 7200.0 + 1, 10.0)
    p = np.where(t < T0 + 3600.0, 36.0, 3600.0)
    laser = MachineData("laser-1", t, p)
    # one session 09:30-10:00 local; a job 09:00-10:00 local (processing from T0 + 3600)
    session = Session("laser-1", "amelie", T0 + 5400.0, T0 + 7200.0)
    result = analyze([laser], [session], site, T0, T0 + 7200.0)
    machine = result.machines[0]
    # 36 W x 3590 s + the 10 s sample step (36 W, then 3600 W from the state change halfway,
    # the same energy as the trapezoid's ramp) + 3600 W x 3595 s
    total_j = 36.0 * 3590 + (36.0 + 3600.0) / 2 * 10 + 3600.0 * 3600
    assert machine.energy_kwh == pytest.approx(total_j / 3.6e6)
    # the session holds 1800 s at 3600 W = 1.8 kWh; the rest is unattributed
    assert result.sessions[0].energy_kwh == pytest.approx(1.8)
    assert machine.unattributed_energy_kwh == pytest.approx(total_j / 3.6e6 - 1.8)
    assert machine.unattributed_s == pytest.approx(5400.0)
    # standby before opening (08:00-09:00 local), boundaries at sample midpoints: 3595 s at 36 W
    assert machine.standby_outside_opening_s == pytest.approx(3595.0)
    # power steps at the state change (3595 s): 36 W x 3595 s (with a linear ramp across the
    # 10 s sample step it would be 36 W x 3590 s + 5 s from 36 W to 1818 W)
    assert machine.standby_outside_opening_kwh == pytest.approx(36.0 * 3595 / 3.6e6)
    # the job (09:00-10:00 local) overlaps the session most: it is amelie's
    assert len(result.jobs) == 1 and result.jobs[0].member == "amelie"
    assert result.members[0].member == "amelie"
    assert result.members[0].energy_kwh == pytest.approx(1.8)


def test_pipeline_job_without_session_is_unattributed():
    site = parse_site(SITE)
    t, p = constant(3600.0, T0, T0 + 3600.0)  # 3600 W for an hour: 3.6 kWh
    result = analyze([MachineData("laser-1", t, p)], [], site, T0, T0 + 3600.0)
    assert [j.member for j in result.jobs] == [None]
    assert result.machines[0].unattributed_energy_kwh == pytest.approx(3.6)
    assert result.members == []


def test_pipeline_shared_services_allocated():
    site = parse_site(SITE)
    end = T0 + 3600.0
    laser = MachineData("laser-1", *constant(2000.0, T0, end))  # processing all hour: 2 kWh
    router = MachineData("router-1", *constant(0.0, T0, end))  # off
    extraction = MachineData("extraction", *constant(500.0, T0, end), is_service=True)  # 0.5 kWh
    sessions = [Session("laser-1", "bastien", T0, end)]
    result = analyze([laser, router, extraction], sessions, site, T0, end,
                     AnalysisOptions(allocate_shared_services=True, emission_factor_kg_per_kwh=0.1))
    by_name = {m.machine: m for m in result.machines}
    assert by_name["laser-1"].shared_services_kwh == pytest.approx(0.5)
    assert by_name["router-1"].shared_services_kwh == pytest.approx(0.0)
    assert by_name["extraction"].unallocated_service_kwh == pytest.approx(0.0)
    assert result.sessions[0].shared_services_kwh == pytest.approx(0.5)
    # the member's CO2e includes the share: (2.0 + 0.5) kWh x 0.1 kg/kWh
    assert result.members[0].co2e_kg == pytest.approx(0.25)
    assert result.members[0].shared_services_kwh == pytest.approx(0.5)
    # not allocated by default
    result = analyze([laser, router, extraction], sessions, site, T0, end)
    assert result.sessions[0].shared_services_kwh == 0.0


def test_pipeline_empty_input_and_counter_only():
    site = parse_site(SITE)
    result = analyze([], [], site, T0, T0 + 3600.0)
    assert result.machines == [] and result.jobs == [] and result.members == []
    doc = result.to_json()
    assert doc["machines"] == [] and doc["sessions"] == []
    # a machine without any reading, and a session on a machine without data
    empty = MachineData("laser-1", np.zeros(0), np.zeros(0))
    result = analyze([empty], [Session("router-1", "hugo", T0, T0 + 60.0)], site, T0, T0 + 3600.0)
    assert result.machines[0].energy_kwh == 0.0 and result.machines[0].coverage == 0.0
    assert result.sessions[0].energy_kwh == 0.0 and result.sessions[0].coverage == 0.0
    assert any("no data for that machine" in w for w in result.warnings)
    # counter only: energy from the counter, 1.5 kWh over the hour, half of it in the session
    counter_only = MachineData("laser-1", np.zeros(0), np.zeros(0),
                               counter_time_s=np.array([T0, T0 + 3600.0]),
                               energy_import_kwh=np.array([100.0, 101.5]))
    result = analyze([counter_only], [Session("laser-1", "hugo", T0, T0 + 1800.0)], site, T0, T0 + 3600.0)
    assert result.machines[0].energy_kwh == pytest.approx(1.5)
    assert result.machines[0].energy_power_kwh is None
    assert result.sessions[0].energy_kwh == pytest.approx(0.75)
    assert result.sessions[0].coverage == 1.0
    with pytest.raises(ValueError, match="window"):
        analyze([], [], site, T0, T0)


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                          st.sampled_from([0.0, -0.0, 1.5, float("nan")])), max_size=40))
def test_sorted_unique_is_numpy_unique(values):
    got = sorted_unique(np.array(values, dtype=np.float64))
    expected = np.unique(np.array(values, dtype=np.float64))
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected, equal_nan=True)


def test_sorted_unique_pinned():
    assert sorted_unique([3.0, 1.0, 3.0, np.nan, 2.0, np.nan]).tolist()[:3] == [1.0, 2.0, 3.0]
    assert len(sorted_unique([3.0, 1.0, 3.0, np.nan, 2.0, np.nan])) == 4  # one NaN, last
    assert sorted_unique(np.array([[2, 1], [2, 5]])).tolist() == [1, 2, 5]  # flattened, ints
    assert sorted_unique([]).tolist() == [] and sorted_unique([7.0]).tolist() == [7.0]


@given(st.lists(st.integers(-5, 5), max_size=30), st.lists(st.integers(-5, 5), max_size=10))
def test_is_in_is_numpy_isin(values, candidates):
    v, c = np.array(values, dtype=np.int64), np.array(candidates, dtype=np.int64)
    assert is_in(v, c).tolist() == np.isin(v, c).tolist()
    assert is_in(v.astype(float) / 2, c.astype(float) / 2).tolist() == np.isin(v / 2, c / 2).tolist()
