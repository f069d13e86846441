"""End to end: simulators -> collector -> journal -> `wattelier analyze` (issue 4, acceptance 1).

The simulated workshop runs at PACE times life for RUN_S seconds over real OPC UA and Modbus
TCP; the collector journals it; the members' sessions the simulation ran are stored as bookings;
the stored analysis then finds the jobs. Every simulated job that ran inside the window must be
found on its machine (count equal per machine), attributed to its member, and, for jobs of at
least one minute, carry the simulator's energy within 1 %. The analysis's time settings are
scaled by PACE as the simulation's durations are.
"""

from __future__ import annotations

import asyncio
import time

from analytics.pipeline import AnalysisOptions
from analytics.records import Session
from storage.journal import Journal
from collector.runtime import Collector
from devices.sim.workshop import SimulatedWorkshop, relocate
from storage.bookings_store import store_sessions
from analytics.result_points import RESULT_MEASUREMENTS
from wattelier.stored_analysis import run_once

PACE = 10.0
RUN_S = 240.0
EDGE_S = 5.0  # jobs within this of the window's ends are left out (cut by the window)


def _overlap(a0, a1, b0, b1) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


async def test_every_job_found_attributed_and_within_1_percent(tmp_path, example_site):
    # A 1 s model grid: each 1 Hz meter reading stands for one second, as a meter's averaged
    # power does (with the paced default of 0.25 s, per-sample noise is not averaged out).
    workshop = SimulatedWorkshop(relocate(example_site), seed=21, pace=PACE, pki_dir=tmp_path / "pki",
                                 dt_s=1.0)
    await workshop.start()
    site = workshop.site.model_copy(update={"journal": workshop.site.journal.model_copy(
        update={"path": str(tmp_path / "journal.sqlite")})})
    journal = Journal(tmp_path / "journal.sqlite")
    collector = Collector(site, journal)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        deadline = time.monotonic() + 30
        while not all(s.subscribed for s in collector.cnc_sources.values()):
            assert time.monotonic() < deadline, "controllers not subscribed"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # a first poll of every meter
        window_start = time.time()
        await asyncio.sleep(RUN_S)
        window_end = time.time()
        await asyncio.sleep(2.0)  # the last samples after the window's end
    finally:
        stop.set()
        await task
        journal.close()
        await workshop.stop()
    model = workshop.model
    assert workshop.write_attempts() == 0

    # The members' bookings, as `wattelier sessions import` would store them.
    booked = [Session(s.machine, s.member, s.start_s, s.end_s, "simulator")
              for s in model.sessions(window_end)]
    journal = Journal(tmp_path / "journal.sqlite")
    store_sessions(journal, site.site.name, booked)
    journal.close()

    options = AnalysisOptions(merge_gap_s=60.0 / PACE, min_dwell_s=AnalysisOptions().min_dwell_s / PACE)
    run = run_once(site, window_start, window_end, journal_path=tmp_path / "journal.sqlite", options=options)
    found = run.result.jobs

    a, b = window_start + EDGE_S, window_end - EDGE_S
    truth = [j for j in model.jobs(window_end) if j.start_s >= a and j.end_s <= b]
    found = [f for f in found if f.outcome != "open"]  # still running at the window's end
    assert len(truth) >= 4 and len({j.machine for j in truth}) >= 3  # the run was a real test
    report = []
    for machine in sorted({j.machine for j in truth} | {j.machine for j in found}):
        expected = [j for j in truth if j.machine == machine]
        inside = [f for f in found if f.machine == machine and f.start_s >= a and f.end_s <= b]
        for j in expected:
            match = max((f for f in found if f.machine == machine),
                        key=lambda f: _overlap(f.start_s, f.end_s, j.start_s, j.end_s), default=None)
            assert match is not None and _overlap(match.start_s, match.end_s, j.start_s, j.end_s) \
                > 0.5 * (j.end_s - j.start_s), (machine, j)
            assert match.member == j.member, (machine, j, match)
            true_kwh = model.energy_kwh(machine, j.end_s) - model.energy_kwh(machine, j.start_s)
            error = (match.energy_kwh - true_kwh) / true_kwh
            report.append((machine, j.job_id, j.end_s - j.start_s, true_kwh, match.energy_kwh, error))
            if j.end_s - j.start_s >= 60.0:
                assert abs(error) <= 0.01, report[-1]
        assert len(inside) == len(expected), (machine, [(f.start_s, f.end_s) for f in inside],
                                              [(j.start_s, j.end_s) for j in expected])
    long_jobs = [r for r in report if r[2] >= 60.0]
    assert len(long_jobs) >= 2
    print("\n".join(f"{m:<13} {jid:<18} {d:6.0f} s  truth {t:.5f} kWh  analytics {e:.5f} kWh  {100 * err:+.2f} %"
                    for m, jid, d, t, e, err in report))

    # Stored: re-running over the same window leaves the same result points, no duplicates.
    import sqlite3

    def results() -> list[tuple]:
        db = sqlite3.connect(tmp_path / "journal.sqlite")
        marks = ",".join("?" for _ in RESULT_MEASUREMENTS)
        rows = db.execute(f"SELECT s.key, p.time_ns, p.fields FROM points p JOIN series s ON s.id = p.series_id "
                          f"WHERE s.measurement IN ({marks}) ORDER BY s.key, p.time_ns", RESULT_MEASUREMENTS).fetchall()
        db.close()
        return rows

    first = results()
    assert any(key.startswith("job,") for key, _, _ in first)
    again = run_once(site, window_start, window_end, journal_path=tmp_path / "journal.sqlite", options=options)
    assert again.points_replaced == len(first)
    assert results() == first
