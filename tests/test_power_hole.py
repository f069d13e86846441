"""A power hole end to end: a meter's readings lost for minutes while its machine and counter run on.

The simulator (devices.sim.holes) leaves out a meter's power and counter readings for a stretch;
the first reading after it shows the counter advanced by the energy used meanwhile. The
analysis must give the counter's delta to the job the hole fell in: every job within 1 % of the
simulator's ground truth, and the jobs away from the hole unchanged (0.01 %) compared with the
same run without the hole.
"""

from __future__ import annotations

from analytics.pipeline import AnalysisOptions, analyze
from devices.sim.backfill import Row, backfill_rows, backfill_workshop
from devices.sim.holes import PowerHole, in_windows
from devices.sim.physics import Workshop
from devices.site import Site
from tests.analytics_sim import machine_data_from_rows, sessions, weekday_morning

SEED = 1
HOLE_METER = "router-1"  # it has a controller: its jobs come from it, whatever the power does
HOLE_S = 300.0  # five minutes, well over the longest step integrated by power (max_gap_s)
TOLERANCE = 0.01  # of the ground truth
UNCHANGED = 1e-4  # relative, against the run without the hole


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _morning(site: Site, holes: tuple[PowerHole, ...] = ()) -> tuple[Workshop, list[Row], float, float]:
    """A working morning, 08:00 to 12:30 local time, backfilled with the holes."""
    t0 = weekday_morning(site)
    end = t0 + 4.5 * 3600.0
    workshop = backfill_workshop(site, t0, end, seed=SEED)
    rows = [row for _, chunk in backfill_rows(site, workshop, t0, end, holes) for row in chunk]
    return workshop, rows, t0, end


def _analyze(site: Site, workshop: Workshop, rows: list[Row], t0: float, end: float,
             counters: bool = True) -> list:
    machines = machine_data_from_rows(site, workshop, rows, end, counters=counters)
    return analyze(machines, sessions(workshop, end), site, t0, end, AnalysisOptions()).jobs


def _true_kwh(workshop: Workshop, machine: str, start_s: float, end_s: float) -> float:
    return workshop.energy_kwh(machine, end_s) - workshop.energy_kwh(machine, start_s)


def _match(found: list, machine: str, start_s: float, end_s: float):
    """The found job on machine overlapping [start_s, end_s] most (more than half of it)."""
    best = max((f for f in found if f.machine == machine),
               key=lambda f: _overlap(f.start_s, f.end_s, start_s, end_s))
    assert _overlap(best.start_s, best.end_s, start_s, end_s) > 0.5 * (end_s - start_s), (machine, start_s)
    return best


def _meter_rows(rows: list[Row], meter: str) -> list[Row]:
    return [r for r in rows if r.measurement == "meter" and r.tags["meter"] == meter]


def test_a_power_hole_inside_a_job_is_filled_by_the_counter(example_site):
    site = example_site
    workshop, rows, t0, end = _morning(site)
    # the hole: five minutes in the middle third of the machine's longest job of the morning
    job = max((j for j in workshop.jobs(end) if j.machine == HOLE_METER), key=lambda j: j.end_s - j.start_s)
    assert job.end_s - job.start_s >= 3 * HOLE_S
    hole = PowerHole(HOLE_METER, round(job.start_s + (job.end_s - job.start_s) / 3 - t0), HOLE_S)
    hole_start, hole_end = hole.window(t0)
    holed_workshop, holed_rows, _, _ = _morning(site, (hole,))

    # the hole removed the meter's readings inside it, power and counter alike, and no others
    before, after = _meter_rows(rows, HOLE_METER), _meter_rows(holed_rows, HOLE_METER)
    interval = site.meters[HOLE_METER].poll_interval_s
    assert len(before) - len(after) == HOLE_S / interval
    assert not in_windows([(hole_start, hole_end)], [r.time_ns / 1e9 for r in after]).any()
    assert len(rows) - len(holed_rows) == HOLE_S / interval
    # the first reading after the hole shows the counter advanced by the energy used in it
    last_before = max((r for r in after if r.time_ns / 1e9 < hole_start), key=lambda r: r.time_ns)
    first_after = min((r for r in after if r.time_ns / 1e9 >= hole_end), key=lambda r: r.time_ns)
    advanced_kwh = first_after.fields["energy_import_kwh"] - last_before.fields["energy_import_kwh"]
    used_kwh = _true_kwh(holed_workshop, HOLE_METER, last_before.time_ns / 1e9, first_after.time_ns / 1e9)
    assert used_kwh > 0.05 and abs(advanced_kwh - used_kwh) <= 1e-3

    plain = _analyze(site, workshop, rows, t0, end)
    holed = _analyze(site, holed_workshop, holed_rows, t0, end)
    power_only = _analyze(site, holed_workshop, holed_rows, t0, end, counters=False)

    report = []
    truth = [j for j in holed_workshop.jobs(end) if j.end_s - j.start_s >= 60.0]
    assert len(truth) >= 15 and len({j.machine for j in truth}) >= 4  # a real morning
    for j in truth:
        true_kwh = _true_kwh(holed_workshop, j.machine, j.start_s, j.end_s)
        got = _match(holed, j.machine, j.start_s, j.end_s)
        same = _match(plain, j.machine, j.start_s, j.end_s)
        in_hole = j.machine == HOLE_METER and _overlap(j.start_s, j.end_s, hole_start, hole_end) > 0
        error = (got.energy_kwh - true_kwh) / true_kwh
        change = (got.energy_kwh - same.energy_kwh) / same.energy_kwh
        report.append(f"{j.job_id:<20} {j.end_s - j.start_s:6.0f} s  truth {true_kwh:.5f} kWh  "
                      f"with the hole {got.energy_kwh:.5f} kWh ({100 * error:+.3f} %)  "
                      f"without {same.energy_kwh:.5f} kWh ({100 * change:+.4f} %)"
                      f"{'  <- the hole' if in_hole else ''}")
        assert abs(error) <= TOLERANCE, "\n".join(report)
        if not in_hole:
            assert abs(change) <= UNCHANGED, "\n".join(report)
    print("\n".join(report))

    # the test can fail: without the counter, the job over the hole misses its energy
    true_kwh = _true_kwh(holed_workshop, HOLE_METER, job.start_s, job.end_s)
    missed = _match(power_only, HOLE_METER, job.start_s, job.end_s)
    print(f"{job.job_id} by power alone: {missed.energy_kwh:.5f} kWh "
          f"({100 * (missed.energy_kwh - true_kwh) / true_kwh:+.2f} %)")
    assert (true_kwh - missed.energy_kwh) / true_kwh > 5 * TOLERANCE
    # and the job over the hole is the one that changed
    assert _match(holed, HOLE_METER, job.start_s, job.end_s).energy_kwh != \
        _match(plain, HOLE_METER, job.start_s, job.end_s).energy_kwh
