"""Benchmarks of the analytics, from one run; each figure is the median of five repetitions.

Part ``kernel``: ``analytics.energy_between`` on 20 million power samples (1 Hz, a few gaps
longer than max_gap_s) and 20 000 intervals, beside

- an idiomatic pandas version of the same result: the samples in a Series with a
  DatetimeIndex, sliced per interval (``index.slice_locs``), one neighbour kept on each side
  so the trapezoid can be cut exactly at the interval's ends, gaps masked;
- one ``numpy.sum`` over the same two arrays: reading the input once, the memory floor.

It prints the times, the ratios (targets: at least 5x faster than pandas, at most 15x the
floor), checks that pandas and the kernel agree, and measures the kernel's peak memory with
tracemalloc (numpy reports its allocations to it) against the size of the input arrays
(target: at most 3x).

Run: python benchmarks/analytics.py --part kernel [--samples N] [--intervals J] [--repeat R]
pandas is a benchmark-only dependency: pip install '.[bench]' (or pip install 'pandas>=2.2,<3').

Part ``end_to_end``: a week of 1 Hz power for 20 machines and a few hundred sessions written to
the journal (straight into packed hours, as a backfill writes history, with the hourly rollups
the journal writes for each packed meter hour, storage/rollup.py) and forwarded to a real
InfluxDB 1.6.7; the time of ``wattelier analyze --json`` over the week from each store
(a new process each time, start-up included, run as installed: bytecode compiled once, by an
untimed first run of each; from InfluxDB through the rollups, the default,
and once reading every sample, ``--no-rollups``), beside InfluxDB computing each session's
energy itself with one InfluxQL ``INTEGRAL()`` query per session, and the largest difference
between the two sets of session energies (target: 0.1 %).

Run: python benchmarks/analytics.py --part end_to_end [--days D] [--machines M]
[--e2e-repeat R] [--workdir DIR]  (DIR keeps the built journal and InfluxDB data for the next run)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics import energy_between  # noqa: E402
from analytics.energy import DEFAULT_MAX_GAP_S, J_PER_KWH  # noqa: E402

T0_S = 1_790_000_000.0


def median_time_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------
# Part: kernel


def kernel_data(samples: int, intervals: int, seed: int = 7):
    """1 Hz samples with jitter and ten 10-minute gaps; intervals of random length inside."""
    rng = np.random.default_rng(seed)
    time_s = T0_S + np.arange(samples, dtype=np.float64)
    time_s += rng.uniform(0.0, 0.2, samples)
    for k in range(10):  # ten outages of 600 s (> max_gap_s): not bridged
        time_s[(k + 1) * samples // 11:] += 600.0
    power_w = 500.0 + 3000.0 * (np.sin(np.arange(samples) / 900.0) > 0) + rng.normal(0, 50, samples)
    span = time_s[-1] - time_s[0]
    starts = np.sort(rng.uniform(time_s[0] - 100, time_s[0] + span * 0.999, intervals))
    ends = starts + rng.uniform(1.0, 2.0 * span / intervals, intervals)
    return time_s, power_w, starts, ends


def pandas_energy_between(series, starts_s, ends_s, max_gap_s: float):
    """The same result with pandas: a DatetimeIndex sliced per interval, trapezoid rule."""
    import pandas as pd

    index = series.index
    values = series.to_numpy()
    energy = np.empty(len(starts_s))
    coverage = np.empty(len(starts_s))
    for k, (a_s, b_s) in enumerate(zip(starts_s, ends_s)):
        a = pd.Timestamp(a_s, unit="s")
        b = pd.Timestamp(b_s, unit="s")
        first, last = index.slice_locs(a, b)  # positions of the samples in [a, b]
        lo, hi = max(first - 1, 0), min(last + 1, len(index))  # one neighbour each side
        part = series.iloc[lo:hi]
        x = part.index.asi8 / 1e9
        y = part.to_numpy()
        if len(x) < 2:
            energy[k] = coverage[k] = 0.0
            continue
        ok = np.diff(x) <= max_gap_s
        ca, cb = np.clip(a_s, x[0], x[-1]), np.clip(b_s, x[0], x[-1])
        xs = np.concatenate([[ca], x[(x > ca) & (x < cb)], [cb]])
        ys = np.interp(xs, x, y)
        seg = np.searchsorted(x, xs[:-1], side="right") - 1  # original segment of each piece
        seg_ok = ok[np.clip(seg, 0, len(ok) - 1)]
        dx = np.diff(xs)
        energy[k] = np.sum(np.where(seg_ok, (ys[:-1] + ys[1:]) / 2 * dx, 0.0)) / J_PER_KWH
        coverage[k] = np.sum(np.where(seg_ok, dx, 0.0)) / (b_s - a_s)
    del values
    return energy, coverage


def part_kernel(args) -> None:
    try:
        import pandas as pd
    except ImportError:
        sys.exit("the kernel benchmark compares with pandas: pip install '.[bench]' "
                 "(or pip install 'pandas>=2.2,<3')")
    n, j, r = args.samples, args.intervals, args.repeat
    print(f"kernel: energy_between on {n:,} samples and {j:,} intervals "
          f"(max_gap_s = {DEFAULT_MAX_GAP_S:g}); medians of {r} repetitions")
    time_s, power_w, starts, ends = kernel_data(n, j)
    input_bytes = time_s.nbytes + power_w.nbytes
    series = pd.Series(power_w, index=pd.DatetimeIndex(pd.to_datetime(time_s, unit="s")))

    kernel_s = median_time_s(lambda: energy_between(time_s, power_w, starts, ends), r)
    floor_s = median_time_s(lambda: (np.sum(time_s), np.sum(power_w)), r)
    pandas_s = median_time_s(lambda: pandas_energy_between(series, starts, ends, DEFAULT_MAX_GAP_S), r)

    # agreement (pandas' DatetimeIndex holds nanoseconds: times agree to about 1e-7 s)
    e_np, c_np = energy_between(time_s, power_w, starts, ends)
    e_pd, c_pd = pandas_energy_between(series, starts, ends, DEFAULT_MAX_GAP_S)
    agree = np.allclose(e_np, e_pd, rtol=1e-6, atol=1e-9) and np.allclose(c_np, c_pd, atol=1e-6)

    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    energy_between(time_s, power_w, starts, ends)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    extra = peak - before

    print(f"  energy_between     {kernel_s * 1e3:10.1f} ms")
    print(f"  pandas (per slice) {pandas_s * 1e3:10.1f} ms   kernel is {pandas_s / kernel_s:6.1f}x faster "
          f"(target >= 5x)  {'OK' if pandas_s / kernel_s >= 5 else 'MISSED'}")
    print(f"  numpy.sum floor    {floor_s * 1e3:10.1f} ms   kernel is {kernel_s / floor_s:6.1f}x the floor "
          f"(target <= 15x)  {'OK' if kernel_s / floor_s <= 15 else 'MISSED'}")
    print(f"  peak memory during the call: {extra / 2**20:8.1f} MiB = {extra / input_bytes:4.2f}x the "
          f"input arrays ({input_bytes / 2**20:.1f} MiB; inputs + peak = "
          f"{(input_bytes + extra) / input_bytes:4.2f}x; target <= 3x)  "
          f"{'OK' if extra <= 3 * input_bytes else 'MISSED'}")
    print(f"  pandas and energy_between agree: {'yes' if agree else 'NO'} "
          f"(max |diff| {np.max(np.abs(e_np - e_pd)):.3g} kWh)")


# ---------------------------------------------------------------------------------------------
# Part: end_to_end — `wattelier analyze` on a week of stored data, from the journal and from
# InfluxDB 1.6.7, beside InfluxDB computing the per-session energies itself (INTEGRAL()).

E2E_KINDS = ("cnc_router", "laser_cutter", "printer_bench", "embroidery", "cnc_mill")


def e2e_site_text(machines: int, journal: Path) -> str:
    lines = ['[site]', 'name = "Benchmark workshop"', "", "[journal]", f'path = "{journal}"',
             "max_points = 100000000", "", "[opening_hours]"]
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday"):
        lines.append(f'{day} = ["08:30-12:30", "13:30-19:00"]')
    lines.append('saturday = ["10:00-17:00"]')
    lines.append("")
    for i in range(10):
        lines += [f"[members.member-{i}]", f'name = "Member {i}"', ""]
    for i in range(machines):
        name = f"machine-{i:02d}"
        lines += [f"[machines.{name}]", f'kind = "{E2E_KINDS[i % len(E2E_KINDS)]}"', "rated_power_w = 4000.0", "",
                  f"[meters.{name}]", 'model = "eastron-sdm630"', f'feeds = "{name}"', 'host = "127.0.0.1"',
                  f"port = {20000 + i}", ""]
    return "\n".join(lines)


def _installed_env(pycache: Path) -> dict[str, str]:
    """The environment of a command run as installed: pip byte-compiles a package's modules
    when it installs it, so bytecode is cached (here in `pycache`, filled by a first run) and
    not compiled again at every start, even where PYTHONDONTWRITEBYTECODE is set."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _time_command(args: list[str], env: dict[str, str] | None = None) -> tuple[float, dict]:
    import json
    import subprocess

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wattelier.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return elapsed, json.loads(proc.stdout)


def part_end_to_end(args: argparse.Namespace) -> None:
    import asyncio
    import json
    import tempfile

    from analytics.records import Session
    from collector.forwarder import Forwarder
    from storage.influxdb import InfluxSettings, InfluxTarget
    from storage.journal import Journal
    from storage.journal_schema import SCHEMA_VERSION
    from devices.site import parse_site
    from devices.sim.physics import Workshop
    from devices.sim.schedule import OpenWindows
    from devices.calendar import opening_windows
    from tests.servers import InfluxServer
    from storage.bookings_store import store_sessions

    days, machines = args.days, args.machines
    with tempfile.TemporaryDirectory(prefix="wattelier-bench-") as scratch:
        tmp = Path(args.workdir) if args.workdir else Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        journal_path = tmp / "journal.sqlite"
        site_file = tmp / "site.toml"
        site_file.write_text(e2e_site_text(machines, journal_path), encoding="utf-8")
        site = parse_site(site_file.read_text(), str(site_file))
        # A fixed window (ending on Monday 2026-11-16 00:00 UTC), so a kept workdir
        # can be reused from one run to the next.
        end_s = 1794787200.0
        start_s = end_s - days * 86400
        marker = tmp / "built.json"
        built = time.perf_counter()
        built_as = {"days": days, "machines": machines, "journal_schema": SCHEMA_VERSION}
        written_now = not (marker.exists() and json.loads(marker.read_text()) == built_as)
        if not written_now:
            from analytics.sessions import read_booked_sessions

            sessions = read_booked_sessions(journal_path, start_s, end_s)
            journal = Journal(journal_path, max_points=10**9)
        else:
            import shutil

            for stale in (journal_path, journal_path.with_name(journal_path.name + "-wal")):
                stale.unlink(missing_ok=True)
            shutil.rmtree(tmp / "influx", ignore_errors=True)
            model = Workshop(site, seed=3, t0_s=start_s, pace=1.0, dt_s=1.0,
                             windows=OpenWindows(opening_windows(site, start_s, end_s)))
            journal = Journal(journal_path, max_points=10**9)
            grid = np.arange(start_s, end_s, 1.0)
            for name in site.machines:
                for a in range(0, len(grid), 86400):
                    t = grid[a:a + 86400]
                    power = model.power_series(name, t)
                    energy = model.energy_series(name, t) + 1000.0
                    # straight into packed hours, as a backfill writes history (storage.journal)
                    journal.write_history("meter", {"site": site.site.name, "meter": name, "machine": name},
                                          (t * 1e9).astype(np.int64), {"power_w": power, "energy_import_kwh": energy})
            sessions = [Session(s.machine, s.member, s.start_s, s.end_s, "simulator")
                        for s in model.sessions(end_s)]
            store_sessions(journal, site.site.name, sessions)
            marker.write_text(json.dumps(built_as))
        n_points = journal.count()
        print(f"end_to_end: {days} days of 1 Hz power for {machines} machines = {n_points:,} points and "
              f"{len(sessions)} sessions, built in {time.perf_counter() - built:.0f} s", flush=True)
        # The history went straight into packed hours; what is left as rows (bookings) stays.
        journal.compact(horizon_ns=int(end_s * 1e9) + 7200 * 10**9)
        journal.close()
        print(f"  journal {'written' if written_now else 'reused from ' + str(tmp)}: "
              f"{journal_path.stat().st_size / 1e6:.0f} MB", flush=True)
        with InfluxServer(tmp / "influx") as server:
            # The server listens on a new port each run; its forwarding cursor is kept under
            # one name, so a kept workdir's InfluxDB is sent only what the journal gained since.
            class BenchmarkTarget(InfluxTarget):
                @property
                def target_key(self) -> str:
                    return "benchmark InfluxDB (workdir)"

            forwarder = Forwarder(journal_path, BenchmarkTarget(InfluxSettings(server.url, api="v1",
                                                                              database="bench")))
            stop = asyncio.Event()
            stop.set()
            loaded = time.perf_counter()
            asyncio.run(forwarder.run(stop, drain_timeout_s=7200))
            print(f"  forwarded to InfluxDB 1.6.7 in {time.perf_counter() - loaded:.0f} s", flush=True)
            window = ["--from", str(start_s), "--to", str(end_s), "--json"]
            env = _installed_env(Path(scratch) / "pycache")
            from_journal = ["analyze", "--config", str(site_file), "--journal", str(journal_path), *window]
            from_influx = ["analyze", "--config", str(site_file), "--influx-url", server.url, "--influx-api", "v1",
                           "--influx-db", "bench", *window]
            for warm_up in (from_journal, from_influx):  # bytecode cached, as installed; not timed
                _time_command(warm_up, env)
            t_journal, doc_journal = [], None
            t_influx, doc_influx = [], None
            t_integral, integral_kwh = [], None
            for _ in range(args.e2e_repeat):
                elapsed, doc_journal = _time_command(from_journal, env)
                t_journal.append(elapsed)
                elapsed, doc_influx = _time_command(from_influx, env)
                t_influx.append(elapsed)
                start = time.perf_counter()
                integral_kwh = []
                for s in sessions:
                    q = (f"SELECT INTEGRAL(\"power_w\", 1h) FROM \"meter\" WHERE \"machine\" = '{s.machine}' "
                         f"AND time >= {int(s.start_s * 1e9)} AND time < {int(s.end_s * 1e9)}")
                    series = server.query(q, "bench")
                    integral_kwh.append(series[0]["values"][0][1] / 1000.0 if series else 0.0)
                t_integral.append(time.perf_counter() - start)
            t_raw, doc_raw = _time_command([*from_influx, "--no-rollups"], env)
        # INTEGRAL() is power alone: compared with our power integral (energy_power_kwh); the
        # reported energy_kwh is reconciled to the counter within its resolution, shown beside it
        by_key = {(s["machine"], s["member"], s["start"]): s for s in doc_journal["sessions"]}
        from analytics.pipeline import iso_utc

        worst = worst_reported = 0.0
        compared = 0
        for s, kwh in zip(sessions, integral_kwh):
            mine = by_key.get((s.machine, s.member, iso_utc(s.start_s)))
            if mine is None or kwh <= 0.001:
                continue
            compared += 1
            worst = max(worst, abs(mine["energy_power_kwh"] - kwh) / kwh)
            worst_reported = max(worst_reported, abs(mine["energy_kwh"] - kwh) / kwh)
        same = all(abs(a["energy_kwh"] - b["energy_kwh"]) <= 1e-9 * max(1.0, abs(a["energy_kwh"]))
                   for doc in (doc_influx, doc_raw) for a, b in zip(doc_journal["sessions"], doc["sessions"]))
        same = same and all(len(doc_journal[k]) == len(doc[k]) for doc in (doc_influx, doc_raw)
                            for k in ("jobs", "sessions", "states"))
        tj, ti, tq = (statistics.median(t) for t in (t_journal, t_influx, t_integral))
        def versus(t: float) -> str:
            return (f"{tq / t:.2f}x faster than" if t < tq else f"{t / tq:.1f}x slower than") + " InfluxQL INTEGRAL"

        print(f"  wattelier analyze from the journal:   {tj:7.2f} s  ({versus(tj)})")
        print(f"  wattelier analyze from InfluxDB:      {ti:7.2f} s  ({versus(ti)}; through the rollups)")
        print(f"  ... reading every sample:             {t_raw:7.2f} s  ({versus(t_raw)}; one run, --no-rollups)")
        print(f"  InfluxQL INTEGRAL() per session:      {tq:7.2f} s  ({len(sessions)} queries)")
        print(f"  session power integrals vs INTEGRAL(): worst relative difference {100 * worst:.4f} % over "
              f"{compared} sessions (target <= 0.1 %); journal, InfluxDB and InfluxDB --no-rollups "
              f"give the same records and energies: {same}")
        print(f"  session energies reconciled to the counter vs INTEGRAL(): worst relative difference "
              f"{100 * worst_reported:.4f} % (the counter's correction, within its resolution)")
        print(json.dumps({"days": days, "machines": machines, "points": n_points, "sessions": len(sessions),
                          "analyze_journal_s": round(tj, 2), "analyze_influx_s": round(ti, 2),
                          "analyze_influx_every_sample_s": round(t_raw, 2),
                          "influxql_integral_s": round(tq, 2), "worst_session_difference_pct": 100 * worst,
                          "worst_reconciled_difference_pct": 100 * worst_reported}))


PARTS: dict[str, Callable[[argparse.Namespace], None]] = {
    "kernel": part_kernel,
    "end_to_end": part_end_to_end,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS) + ["all"], default="all",
                        help="which benchmark to run (default: all)")
    parser.add_argument("--samples", type=int, default=20_000_000, help="kernel: power samples")
    parser.add_argument("--intervals", type=int, default=20_000, help="kernel: intervals")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (the median is shown)")
    parser.add_argument("--days", type=float, default=7.0, help="end_to_end: days of 1 Hz data")
    parser.add_argument("--machines", type=int, default=20, help="end_to_end: machines")
    parser.add_argument("--e2e-repeat", type=int, default=5, help="end_to_end: repetitions")
    parser.add_argument("--workdir", help="end_to_end: keep the journal and InfluxDB data here and reuse "
                        "them on the next run (default: a temporary folder)")
    args = parser.parse_args(argv)
    for name, part in PARTS.items():
        if args.part in (name, "all"):
            part(args)


if __name__ == "__main__":
    main()
