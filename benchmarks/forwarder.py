"""Benchmark of the forwarder and of the collector's footprint, from one run.

(a) Throughput: a journal backlog of one million meter points (15 fields each, as a
    three-phase meter gives) forwarded into a fresh InfluxDB 1.6.7, beside a baseline that POSTs
    the same line protocol with a plain HTTP client (http.client, keep-alive, no compression) in
    batches of 10 000 lines into another fresh InfluxDB. Reports points/s of both and the ratio
    (target: at least 0.9), for two backlogs: point rows (what an outage leaves: rows wait for
    every target before their hour is packed) and packed hours (a history written straight into
    hours, storage.journal.Journal.write_history, sent to a target configured afterwards).
(b) Footprint: `wattelier collect` reading 50 simulated CNC controllers (OPC UA subscriptions)
    and 50 meters (Modbus TCP, polled at 1 Hz) and forwarding to InfluxDB, with the simulator in
    another process. Reports the collector's CPU share of one core and its peak resident memory
    (targets: under 25 %, under 150 MB), beside a baseline process that only imports the same
    modules.

Run: python benchmarks/forwarder.py [--points N] [--seconds S] [--skip-throughput|--skip-footprint]
Needs the Debian packages influxdb (1.6.7) as the tests do (`bash scripts/test.sh` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.forward_store import ForwardStore  # noqa: E402
from collector.forwarder import Forwarder  # noqa: E402
from storage.influxdb import InfluxSettings, InfluxTarget  # noqa: E402
from storage.journal import Journal  # noqa: E402
from storage.points import Point  # noqa: E402
from tests.servers import InfluxServer  # noqa: E402

PHASE_FIELDS = ("voltage_l{}_v", "current_l{}_a", "power_l{}_w")


def build_journal(path: Path, n_points: int, meters: int = 50, packed: bool = False) -> None:
    """A journal holding n_points meter readings (1 Hz per meter), committed in chunks as point
    rows, or (packed) written straight into packed hours."""
    journal = Journal(path, max_points=max(n_points * 2, 1000))
    t0_ns = (int(time.time()) - n_points // meters - 3600) * 10**9
    chunk = 50_000
    for first in range(0, n_points, chunk):
        points = []
        for i in range(first, min(first + chunk, n_points)):
            meter = i % meters
            step = i // meters
            power = 1000.0 + (i % 977) * 1.5
            fields = {"power_w": power, "energy_import_kwh": 1000.0 + step * 0.0003,
                      "power_factor": 0.93, "frequency_hz": 50.01}
            for phase in (1, 2, 3):
                fields[PHASE_FIELDS[0].format(phase)] = 230.0 + phase * 0.1
                fields[PHASE_FIELDS[1].format(phase)] = power / 3 / 214.0
                fields[PHASE_FIELDS[2].format(phase)] = power / 3
            fields["energy_export_kwh"] = 0.0
            fields["reactive_power_var"] = power * 0.39
            points.append(Point("meter", {"site": "Benchmark workshop", "meter": f"meter-{meter:02d}",
                                          "machine": f"machine-{meter:02d}"}, fields, t0_ns + step * 10**9))
        if packed:
            for meter in range(meters):
                mine = points[meter::meters] if first % meters == 0 else [q for q in points if
                                                                           q.tags["meter"] == f"meter-{meter:02d}"]
                if mine:
                    names = list(mine[0].fields)
                    journal.write_history("meter", mine[0].tags, np.array([q.time_ns for q in mine], dtype=np.int64),
                                          {k: np.array([q.fields[k] for q in mine]) for k in names})
        else:
            journal.put(points)
            journal.commit()
    journal.close()


def journal_lines(path: Path, batch: int) -> list[bytes]:
    """The journal's line protocol, exactly as the forwarder formats it, in request bodies."""
    store = ForwardStore(path, "baseline-reader")
    bodies, after = [], 0
    while True:
        b = store.read_batch(after, batch)
        if not b.lines:
            break
        bodies.append(("\n".join(b.lines) + "\n").encode())
        after = b.last_id
    store.close()
    return bodies


def count_points(server: InfluxServer, database: str) -> int:
    series = server.query('SELECT count("power_w") FROM "meter"', database)
    return int(series[0]["values"][0][1]) if series else 0


def baseline_post(server: InfluxServer, bodies: list[bytes], database: str) -> float:
    """POST every body with http.client; return seconds."""
    server.query(f'CREATE DATABASE "{database}"')
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    start = time.perf_counter()
    for body in bodies:
        conn.request("POST", f"/write?db={database}&precision=ns", body=body,
                     headers={"Content-Type": "text/plain"})
        response = conn.getresponse()
        response.read()
        if response.status != 204:
            raise RuntimeError(f"baseline write failed: {response.status}")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


async def forward(server: InfluxServer, journal_path: Path, database: str, batch: int) -> tuple[float, Forwarder]:
    target = InfluxTarget(InfluxSettings(server.url, api="v1", database=database))
    forwarder = Forwarder(journal_path, target, batch_points=batch)
    stop = asyncio.Event()
    start = time.perf_counter()
    stop.set()  # drain the backlog, then stop
    await forwarder.run(stop, drain_timeout_s=3600)
    return time.perf_counter() - start, forwarder


def throughput(n_points: int, batch: int, workdir: Path, packed: bool) -> dict:
    journal_path = workdir / f"backlog-{'hours' if packed else 'rows'}.sqlite"
    t = time.perf_counter()
    build_journal(journal_path, n_points, packed=packed)
    print(f"journal of {n_points} points as {'packed hours' if packed else 'point rows'} built in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    bodies = journal_lines(journal_path, batch)
    megabytes = sum(len(b) for b in bodies) / 1e6
    results: dict = {"points": n_points, "batch_points": batch, "line_protocol_mb": round(megabytes, 1)}
    kind = "hours" if packed else "rows"
    with InfluxServer(workdir / f"influx-baseline-{kind}") as server:
        seconds = baseline_post(server, bodies, "baseline")
        assert count_points(server, "baseline") == n_points
    results["baseline_points_per_s"] = round(n_points / seconds)
    print(f"baseline (http.client, {batch} lines per POST): {n_points / seconds:,.0f} points/s "
          f"({seconds:.1f} s)", flush=True)
    del bodies
    with InfluxServer(workdir / f"influx-forwarder-{kind}") as server:
        seconds, forwarder = asyncio.run(forward(server, journal_path, "forwarded", batch))
        assert forwarder.stats.forwarded >= n_points, forwarder.stats
        assert count_points(server, "forwarded") == n_points
    results["forwarder_points_per_s"] = round(n_points / seconds)
    results["ratio"] = round(results["forwarder_points_per_s"] / results["baseline_points_per_s"], 3)
    print(f"forwarder (journal -> /write, uncompressed over loopback): {n_points / seconds:,.0f} points/s ({seconds:.1f} s, "
          f"{forwarder.stats.requests} requests)", flush=True)
    print(f"ratio forwarder / baseline: {results['ratio']:.2f} (target >= 0.90)", flush=True)
    return results


# -- footprint ------------------------------------------------------------------------------
KINDS = ("cnc_router", "cnc_mill", "laser_cutter", "lathe", "printer_bench")
MODELS = ("eastron-sdm630", "schneider-iem3155", "carlo-gavazzi-em24-din", "eastron-sdm120",
          "eastron-sdm72d-m", "abb-b23", "carlo-gavazzi-em24-ethernet", "janitza-umg604")


def big_site(n: int, ports: list[int], opc_ports: list[int], journal: Path) -> str:
    """A site of n machines, each with a meter (Modbus TCP, 5 units per port) and an OPC UA
    controller (umati MachineTool instances, 10 per simulated server; policy None allowed:
    a loopback benchmark)."""
    lines = ['[site]', 'name = "Benchmark workshop"', "",
             "[journal]", f'path = "{journal}"', "",
             "[members.alice]", 'name = "Alice"', ""]
    for i in range(n):
        name = f"machine-{i:02d}"
        lines += [f"[machines.{name}]", f'kind = "{KINDS[i % len(KINDS)]}"', "rated_power_w = 5000.0", "",
                  f"[meters.{name}]", f'model = "{MODELS[i % len(MODELS)]}"', f'feeds = "{name}"',
                  'transport = "tcp"', 'host = "127.0.0.1"', f"port = {ports[i // 5]}",
                  f"unit_id = {i % 5 + 1}", "poll_interval_s = 1.0", "",
                  f"[controllers.{name}-cnc]", f'machine = "{name}"',
                  f'endpoint = "opc.tcp://127.0.0.1:{opc_ports[i // 10]}/bench"',
                  'node_map = "umati-machinetool"',
                  f'machine_browse_name = "M{i:02d}"', 'security_policy = "None"', "allow_insecure = true", ""]
    return "\n".join(lines)


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_listening(ports: list[int], timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"simulator not listening on port {port}")
                time.sleep(0.5)


def footprint(n: int, seconds: float, workdir: Path) -> dict:
    from tests.servers import free_port

    ports = [free_port() for _ in range((n + 4) // 5)]
    site_file = workdir / "big-site.toml"
    opc_ports = [free_port() for _ in range((n + 9) // 10)]
    site_file.write_text(big_site(n, ports, opc_ports, workdir / "big-journal.sqlite"), encoding="utf-8")
    cli = [sys.executable, "-m", "wattelier.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict = {"machines": n, "meters": n, "seconds": seconds}
    with InfluxServer(workdir / "influx-footprint") as server:
        sim_log = open(workdir / "simulate.log", "wb")
        sim = subprocess.Popen(cli + ["simulate", "--config", str(site_file), "--pace", "60"],
                               stdout=sim_log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_listening(opc_ports + ports, 180.0)  # the simulator builds its address spaces
            col_log = open(workdir / "collect.log", "wb")
            collector = subprocess.Popen(cli + ["collect", "--config", str(site_file), "--influx-url",
                                                server.url, "--influx-api", "v1", "--influx-db", "bench"],
                                         stdout=col_log, stderr=subprocess.STDOUT, env=env)
            baseline = subprocess.Popen([sys.executable, "-c",
                                         "import collector.runtime, wattelier.cli, time; time.sleep(3600)"],
                                        env=env)
            time.sleep(15.0)  # connect, resolve, subscribe
            cpu0, t0 = _proc_cpu_s(collector.pid), time.monotonic()
            base_cpu0 = _proc_cpu_s(baseline.pid)
            time.sleep(seconds)
            cpu1, t1 = _proc_cpu_s(collector.pid), time.monotonic()
            share = (cpu1 - cpu0) / (t1 - t0)
            results["collector_cpu_share_of_one_core"] = round(share, 4)
            results["baseline_cpu_share_of_one_core"] = round((_proc_cpu_s(baseline.pid) - base_cpu0) / (t1 - t0), 4)
            results["collector_peak_rss_mb"] = round(_proc_peak_rss_mb(collector.pid), 1)
            results["baseline_peak_rss_mb"] = round(_proc_peak_rss_mb(baseline.pid), 1)
            baseline.kill()
            collector.send_signal(signal.SIGTERM)
            results["collector_exit_code"] = collector.wait(timeout=60)
            col_log.close()
        finally:
            sim.send_signal(signal.SIGINT)
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.kill()
            sim_log.close()
        journal = workdir / "big-journal.sqlite"
        import sqlite3

        db = sqlite3.connect(journal)
        by_measurement = dict(db.execute("SELECT s.measurement, count(*) FROM points p JOIN series s "
                                         "ON s.id = p.series_id GROUP BY s.measurement"))
        db.close()
        results["journaled_points"] = by_measurement
        results["points_in_influxdb_meter"] = count_points(server, "bench")
    print(f"collector reading {n} controllers and {n} meters at 1 Hz for {seconds:.0f} s: "
          f"CPU {100 * results['collector_cpu_share_of_one_core']:.1f} % of one core (target < 25 %), "
          f"peak memory {results['collector_peak_rss_mb']:.0f} MB (target < 150 MB); "
          f"baseline process with the same imports: CPU "
          f"{100 * results['baseline_cpu_share_of_one_core']:.1f} %, {results['baseline_peak_rss_mb']:.0f} MB; "
          f"journaled {by_measurement}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-footprint", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="wattelier-bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_throughput:
            results["throughput_rows"] = throughput(args.points, args.batch, workdir, packed=False)
            results["throughput_hours"] = throughput(args.points, args.batch, workdir, packed=True)
        if not args.skip_footprint:
            results["footprint"] = footprint(args.machines, args.seconds, workdir)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
