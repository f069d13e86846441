"""The simulated workshop's physical model: deterministic, counters exact integrals of power."""

from __future__ import annotations

import numpy as np
import pytest

from devices.sim.physics import SITE, Workshop

T0 = 1_800_000_000.0


def test_deterministic_for_a_seed(example_site):
    a = Workshop(example_site, seed=5, t0_s=T0, pace=60)
    b = Workshop(example_site, seed=5, t0_s=T0, pace=60)
    c = Workshop(example_site, seed=6, t0_s=T0, pace=60)
    times = np.arange(T0, T0 + 300, 0.5)
    for m in a.machines():
        assert np.array_equal(a.power_series(m, times), b.power_series(m, times))
    assert not np.array_equal(a.power_series("router-1", times), c.power_series("router-1", times))


def test_counter_is_exact_integral_of_power(example_site):
    w = Workshop(example_site, seed=2, t0_s=T0, pace=60, dt_s=0.25)
    end = T0 + 900
    for name in w.machines() + ["extraction", SITE]:
        fine = np.arange(T0, end, 0.05) + 0.025  # midpoints of a finer grid
        integral_kwh = w.power_series(name, fine).sum() * 0.05 / 3.6e6
        assert w.energy_kwh(name, end) == pytest.approx(integral_kwh, rel=1e-9, abs=1e-12)


def test_site_meter_is_sum_plus_base_load(example_site):
    w = Workshop(example_site, seed=2, t0_s=T0, pace=60)
    end = T0 + 600
    parts = sum(w.energy_kwh(n, end) for n in w.entities if n != SITE)
    assert w.energy_kwh(SITE, end) == pytest.approx(parts + w.base_load_w * 600 / 3.6e6, rel=1e-12)


def test_job_energy_and_states_agree(example_site):
    w = Workshop(example_site, seed=3, t0_s=T0, pace=60)
    jobs = w.jobs(T0 + 1800)
    assert len({j.machine for j in jobs}) >= 4
    for job in jobs[:20]:
        mid = (job.start_s + job.end_s) / 2
        assert w.machine_state(job.machine, mid) == "processing"
        if job.machine in ("router-1", "mill-1"):
            _, signals = w.controller_signals(job.machine, mid)
            assert signals.execution == "running" and signals.program == job.program
        assert w.energy_kwh(job.machine, job.end_s) > w.energy_kwh(job.machine, job.start_s)


def test_per_phase_values_consistent(example_site):
    w = Workshop(example_site, seed=4, t0_s=T0, pace=60)
    v = w.meter_values("router-1", T0 + 123.4)
    assert v["power_l1_w"] + v["power_l2_w"] + v["power_l3_w"] == pytest.approx(v["power_w"])
    for i in (1, 2, 3):
        assert v[f"current_l{i}_a"] * v[f"voltage_l{i}_v"] * v["power_factor"] == pytest.approx(v[f"power_l{i}_w"])
    assert v["energy_import_kwh"] >= w.counter_offset_kwh["router-1"]


def test_sessions_cover_jobs(example_site):
    w = Workshop(example_site, seed=3, t0_s=T0, pace=60)
    until = T0 + 1800
    sessions = w.sessions(until)
    for job in w.jobs(until):
        covering = [s for s in sessions if s.machine == job.machine and s.start_s <= job.start_s and job.end_s <= s.end_s]
        assert len(covering) == 1 and covering[0].member == job.member


def test_a_workshop_that_forgets_the_past_answers_the_future_alike(example_site):
    """forget_before lets a backfill keep its memory flat: later values are those of a workshop
    that kept everything, and a forgotten time is refused, never answered wrongly."""
    kept = Workshop(example_site, seed=7, t0_s=T0, pace=1.0, dt_s=1.0)
    forgetful = Workshop(example_site, seed=7, t0_s=T0, pace=1.0, dt_s=1.0)
    for day in range(3):
        times = T0 + day * 86400.0 + np.arange(0.0, 86400.0, 7.5)
        for name in ("router-1", SITE):
            assert np.array_equal(kept.power_series(name, times), forgetful.power_series(name, times))
            assert np.array_equal(kept.energy_series(name, times), forgetful.energy_series(name, times))
        forgetful.forget_before(T0 + (day + 1) * 86400.0)
    assert forgetful._power[SITE].n < kept._power[SITE].n / 2
    with pytest.raises(ValueError, match="forgotten"):
        forgetful.energy_series("router-1", np.array([T0 + 3600.0]))
