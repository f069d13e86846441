"""Jobs from the controller and from power, checked by hand and against the simulated workshop."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics.energy import EnergyCurve
from analytics.jobs import jobs_from_controller, jobs_from_states, merge_close
from analytics.pipeline import AnalysisOptions, analyze
from analytics.states import PROCESSING, StateIntervals, calibrate_thresholds, states_from_power
from tests.analytics_sim import controller_data, machine_data, sessions, weekday_morning, workshop

POWER_ONLY = ("laser-1", "printers-1", "kiln-1", "embroidery-1")
WITH_CONTROLLER = ("router-1", "mill-1")


def _obj(values):
    return np.array(values, dtype=object)


def test_merge_close_joins_short_pauses_only():
    a, b = merge_close([0.0, 130.0, 300.0, 460.0], [100.0, 200.0, 400.0, 500.0], 60.0)
    # 30 s pause joined; 100 s not; exactly 60 s is not shorter than 60 s: not joined
    assert_allclose(a, [0.0, 300.0, 460.0])
    assert_allclose(b, [200.0, 400.0, 500.0])


def test_jobs_from_states():
    states = StateIntervals(np.array([0.0, 10.0, 100.0, 130.0, 200.0, 300.0]),
                            np.array([10.0, 100.0, 130.0, 200.0, 300.0, 400.0]),
                            np.array([1, PROCESSING, 2, PROCESSING, 2, PROCESSING]))
    jobs = jobs_from_states(states, merge_gap_s=60.0, data_end_s=400.0)
    assert_allclose(jobs.start_s, [10.0, 300.0])
    assert_allclose(jobs.end_s, [200.0, 400.0])
    assert jobs.outcome == ["ended", "open"] and jobs.source == "power"
    assert len(jobs_from_states(StateIntervals.empty())) == 0
    assert len(jobs_from_states(states, min_job_s=150.0)) == 1


def test_jobs_from_controller_runs():
    t = [0.0, 10.0, 50.0, 60.0, 100.0, 150.0, 170.0, 200.0]
    execution = _obj(["stopped", "running", "interrupted", "running", "ended", "running", "aborted", "running"])
    program = _obj(["", "P1", "P1", "P1", "P1", "P2", "P2", "P3"])
    jobs = jobs_from_controller(t, execution, program, end_s=300.0)
    # an interruption does not end a run; a run open at the end ends at the window's end
    assert_allclose(jobs.start_s, [10.0, 150.0, 200.0])
    assert_allclose(jobs.end_s, [100.0, 170.0, 300.0])
    assert jobs.program == ["P1", "P2", "P3"]
    assert jobs.outcome == ["ended", "aborted", "open"]
    assert jobs.source == "controller"


def test_jobs_from_controller_program_change_and_start_inside_a_run():
    jobs = jobs_from_controller([0.0, 30.0, 60.0], _obj(["running", "running", "ended"]),
                                _obj(["A", "B", "B"]), end_s=100.0)
    assert_allclose(jobs.start_s, [0.0, 30.0])
    assert_allclose(jobs.end_s, [30.0, 60.0])
    assert jobs.program == ["A", "B"]
    # data starting while a run is interrupted: the job starts at the first change
    jobs = jobs_from_controller([0.0, 20.0, 40.0], _obj(["interrupted", "running", "ended"]),
                                _obj(["X", None, None]), end_s=100.0)
    assert_allclose(jobs.start_s, [0.0])
    assert_allclose(jobs.end_s, [40.0])
    assert jobs.program == ["X"]
    assert len(jobs_from_controller([], _obj([]), _obj([]), end_s=1.0)) == 0


@pytest.fixture(scope="module")
def simulated_day(request):
    from devices.site import example_site_path, load_site

    site = load_site(example_site_path())
    t0 = weekday_morning(site)
    end = t0 + 86400.0
    return site, t0, end


@pytest.mark.parametrize("seed", [1, 2])
def test_power_only_detection_finds_every_simulated_job(simulated_day, seed):
    """Machines without a controller: power sampled at 1 s, calibrated thresholds, pauses
    merged below 60 s: every simulated job is found, boundaries within half a sample, energy
    within 1 % for jobs of at least a minute."""
    site, t0, end = simulated_day
    w = workshop(site, t0, end, seed=seed)
    times = np.arange(t0, end, 1.0)
    truth = w.jobs(end)
    for machine in POWER_ONLY:
        power = w.power_series(machine, times)
        calibration = calibrate_thresholds(power, site.machines[machine].rated_power_w)
        assert calibration.method.startswith("three power levels"), (machine, calibration)
        states = states_from_power(times, power, calibration.thresholds_w)
        jobs = jobs_from_states(states, 60.0, data_end_s=times[-1])
        expected = [j for j in truth if j.machine == machine]
        assert len(jobs) == len(expected), machine
        assert_allclose(jobs.start_s, [j.start_s for j in expected], atol=0.5)
        assert_allclose(jobs.end_s, [j.end_s for j in expected], atol=0.5)
        energy, coverage = EnergyCurve(times, power).between(jobs.start_s, jobs.end_s)
        exact = np.array([w.energy_kwh(machine, j.end_s) - w.energy_kwh(machine, j.start_s) for j in expected])
        long_ = np.array([j.end_s - j.start_s >= 60.0 for j in expected])
        assert_allclose(energy[long_], exact[long_], rtol=0.01)
        assert np.all(coverage == 1.0)


def test_controller_detection_matches_simulated_runs(simulated_day):
    site, t0, end = simulated_day
    w = workshop(site, t0, end, seed=1)
    truth = w.jobs(end)
    for machine in WITH_CONTROLLER:
        ctl = controller_data(w, machine, end)
        jobs = jobs_from_controller(ctl.time_s, ctl.execution, ctl.program, end)
        expected = [j for j in truth if j.machine == machine]
        assert len(jobs) == len(expected) > 0, machine
        assert_allclose(jobs.start_s, [j.start_s for j in expected])
        assert_allclose(jobs.end_s, [j.end_s for j in expected])
        assert jobs.program == [j.program for j in expected]
        assert jobs.outcome == [j.outcome for j in expected]


def test_pipeline_finds_jobs_members_and_energy_of_the_simulation(simulated_day):
    """The whole pipeline on a simulated day: job count per machine, member, energy within 1 %."""
    site, t0, end = simulated_day
    w = workshop(site, t0, end, seed=3)
    result = analyze(machine_data(site, w, t0, end), sessions(w, end), site, t0, end, AnalysisOptions())
    truth = w.jobs(end)
    for machine in site.machines:
        expected = [j for j in truth if j.machine == machine]
        found = [j for j in result.jobs if j.machine == machine and j.outcome != "open"]
        assert len(found) == len(expected), machine
        for job, sim in zip(found, expected):
            assert job.member == sim.member
            exact = w.energy_kwh(machine, sim.end_s) - w.energy_kwh(machine, sim.start_s)
            if sim.end_s - sim.start_s >= 60.0:
                assert job.energy_kwh == pytest.approx(exact, rel=0.01)
            assert job.energy_reconciled_kwh is not None
    for record in result.machines:
        assert record.energy_kwh == pytest.approx(w.energy_kwh(record.machine, end), rel=1e-6)
