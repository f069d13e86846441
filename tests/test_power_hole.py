"""A power hole end to end: a meter's readings lost for minutes while its machine and counter run on.

The simulator (devices.sim.holes) leaves out a meter's power and counter readings for a stretch;
the first reading after it shows the counter advanced by the energy used meanwhile. The
analysis must give the counter's delta to the job the hole fell in: every job within 1 % of the
simulator's ground truth, and the jobs away from the hole unchanged (0.01 %) compared with the
same run without the hole. Offline (backfill rows, no sockets) over a working morning, and over
real Modbus and OPC UA sockets through the collector and the stored analysis at PACE (about
3 min 40 s).
"""

from __future__ import annotations

import asyncio
import time

from storage.journal_reader import JournalReader
from analytics.pipeline import AnalysisOptions, analyze
from analytics.records import Session
from storage.journal import Journal
from collector.runtime import Collector
from devices.sim.backfill import Row, backfill_rows, backfill_workshop
from devices.sim.holes import PowerHole, in_windows, parse_power_hole
from devices.sim.physics import Workshop
from devices.sim.workshop import SimulatedWorkshop, relocate
from devices.site import Site
from tests.analytics_sim import machine_data_from_rows, sessions, weekday_morning
from tests.cli_process import assert_clear_failure, run_wattelier
from storage.bookings_store import store_sessions
from wattelier.stored_analysis import run_once

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


# -- end to end: simulators -> collector -> journal -> stored analysis -------------------------
PACE = 10.0
E2E_SEED = 25  # router-1 runs a job from 36 s to 193 s after the start (157 s, 26 min in life)
E2E_HOLE = f"{HOLE_METER}@86+40"  # 40 s inside it (400 s of life): the --drop-power syntax
E2E_END_S = 215.0  # the analysed window ends this long after the start


async def test_a_power_hole_over_real_sockets(tmp_path, example_site):
    hole = parse_power_hole(E2E_HOLE)
    workshop = SimulatedWorkshop(relocate(example_site), seed=E2E_SEED, pace=PACE, pki_dir=tmp_path / "pki",
                                 dt_s=1.0, power_holes=[hole])
    await workshop.start()
    site = workshop.site.model_copy(update={"journal": workshop.site.journal.model_copy(
        update={"path": str(tmp_path / "journal.sqlite")})})
    journal = Journal(tmp_path / "journal.sqlite")
    collector = Collector(site, journal)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    hole_start, hole_end = hole.window(workshop.started_s)
    window_end = workshop.started_s + E2E_END_S
    try:
        deadline = time.monotonic() + 30
        while not all(s.subscribed for s in collector.cnc_sources.values()):
            assert time.monotonic() < deadline, "controllers not subscribed"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # a first poll of every meter
        window_start = time.time()
        await asyncio.sleep(window_end + 2.0 - time.time())  # and the samples after the end
    finally:
        stop.set()
        await task
        journal.close()
        await workshop.stop()
    model = workshop.model
    assert workshop.write_attempts() == 0
    job = next((j for j in model.jobs(window_end) if j.machine == HOLE_METER
                and j.start_s + 10.0 <= hole_start and hole_end + 10.0 <= j.end_s), None)
    assert job is not None, f"no {HOLE_METER} job around the hole: the schedule of seed {E2E_SEED} changed"
    assert window_start + 5.0 <= job.start_s and job.end_s <= window_end - 5.0
    assert workshop.silenced_requests()[HOLE_METER] > 0
    assert workshop.ground_truth(window_end)["power_holes"][0]["start_s"] == hole_start

    # the collector saw the hole: no power reading of the meter inside it, readings either side
    reader = JournalReader(tmp_path / "journal.sqlite")
    (series,) = reader.series("meter", meter=HOLE_METER)
    times, _ = reader.field(series.series_id, "power_w")
    counter_times, counter = reader.field(series.series_id, "energy_import_kwh")
    reader.close()
    inside = (times >= hole_start) & (times < hole_end)
    assert not inside.any()
    assert (times < hole_start).sum() > 10 and (times >= hole_end).sum() > 10
    before = counter_times[counter_times < hole_start][-1]
    after = counter_times[counter_times >= hole_end][0]
    assert after - before >= hole.duration_s
    assert after - before < hole.duration_s + 5.0  # the meter answers again at once

    journal = Journal(tmp_path / "journal.sqlite")
    store_sessions(journal, site.site.name, [Session(s.machine, s.member, s.start_s, s.end_s, "simulator")
                                             for s in model.sessions(window_end)])
    journal.close()
    # the analysis's time settings scaled by PACE as the simulation's durations are: a power
    # step longer than 12 s (2 min in life) is a gap, so the 40 s hole is one
    defaults = AnalysisOptions()
    options = AnalysisOptions(merge_gap_s=defaults.merge_gap_s / PACE, min_dwell_s=defaults.min_dwell_s / PACE,
                              max_gap_s=defaults.max_gap_s / PACE)
    assert hole.duration_s > options.max_gap_s
    found = run_once(site, window_start, window_end, journal_path=tmp_path / "journal.sqlite",
                     options=options).result.jobs

    true_kwh = model.energy_kwh(HOLE_METER, job.end_s) - model.energy_kwh(HOLE_METER, job.start_s)
    hole_kwh = model.energy_kwh(HOLE_METER, hole_end) - model.energy_kwh(HOLE_METER, hole_start)
    got = _match(found, HOLE_METER, job.start_s, job.end_s)
    error = (got.energy_kwh - true_kwh) / true_kwh
    power_error = (got.energy_power_kwh - true_kwh) / true_kwh
    print(f"\n{job.job_id}: {job.end_s - job.start_s:.0f} s, truth {true_kwh:.5f} kWh ({hole_kwh:.5f} kWh "
          f"in the hole), analysis {got.energy_kwh:.5f} kWh ({100 * error:+.3f} %), power alone "
          f"{got.energy_power_kwh:.5f} kWh ({100 * power_error:+.2f} %)")
    # the power integral does not bridge the hole (a gap), and the counter's delta fills it
    assert power_error < -0.5 * hole_kwh / true_kwh
    assert abs(error) <= TOLERANCE


# -- the command line ---------------------------------------------------------------------------
def test_simulate_backfill_drops_the_power_readings_asked_for(tmp_path):
    journal = tmp_path / "holed.sqlite"
    done = run_wattelier("simulate", "--backfill", "0.05", "--journal", str(journal),
                         "--drop-power", "router-1@600+300", "--drop-power", "main@0+60")
    assert done.returncode == 0, done.output
    reader = JournalReader(journal)
    (router,) = reader.series("meter", meter="router-1")
    (main,) = reader.series("meter", meter="main")
    (mill,) = reader.series("meter", meter="mill-1")
    router_s, _ = reader.field(router.series_id, "power_w")
    counter_s, _ = reader.field(router.series_id, "energy_import_kwh")
    main_s, _ = reader.field(main.series_id, "power_w")
    mill_s, _ = reader.field(mill.series_id, "power_w")
    reader.close()
    start = mill_s[0]  # the backfill's start: mill-1 is read every second from it on
    assert len(mill_s) == 0.05 * 86400
    assert len(router_s) == len(counter_s) == 0.05 * 86400 - 300
    offset = router_s - start
    assert not ((offset >= 600) & (offset < 900)).any() and 599 in offset and 900 in offset
    assert main_s[0] - start == 60 and len(main_s) == 0.05 * 86400 / 2 - 30  # read every 2 s


def test_simulate_refuses_a_bad_power_hole_in_one_line():
    for text, expected in [("router-1@600", "METER@OFFSET_S+DURATION_S"),
                           ("router-1@ten+300", "must be numbers of seconds"),
                           ("router-1@600+0", "the duration must be more than 0 s"),
                           ("router-9@600+300", "the site has no meter 'router-9'")]:
        done = run_wattelier("simulate", "--seconds", "1", "--drop-power", text)
        assert_clear_failure(done, "--drop-power", expected, exit_code=2)
