"""The demo: a simulated workshop and the collector on free loopback ports, then a summary.

Everything runs over real sockets (OPC UA and Modbus TCP) on this computer; the journal is the
store, so no server is needed. The summary sets, per metered machine, the energy the collector
counted (the meter's counter delta between its first and last reading) beside the simulator's
ground truth over the same instants.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from analytics.journal_reader import JournalReader
from collector.journal import Journal
from collector.forward_store import journal_status
from collector.influx_adapter import InfluxSettings
from collector.runtime import Collector
from devices.meter_models import load_model
from devices.sim.workshop import SimulatedWorkshop, iso, relocate
from devices.site import Site


@dataclass
class DemoResult:
    summary: dict
    ok: bool


def _live_table(site: Site, workshop: SimulatedWorkshop, collector: Collector, elapsed_s: float,
                seconds: float) -> Table:
    table = Table(title=f"wattelier demo — {site.site.name} — {elapsed_s:4.0f} / {seconds:.0f} s")
    for column in ("machine", "state", "power (W)", "energy (kWh)", "points"):
        table.add_column(column, justify="right" if column not in ("machine", "state") else "left")
    now = time.time()
    counts = collector.sink.counts
    for machine in list(site.machines) + list(site.services) + ["site"]:
        state = workshop.model.machine_state(machine, now) if machine in site.machines else ""
        power = energy = ""
        points = 0
        for meter_name, meter in site.meters.items():
            if meter.feeds == machine:
                latest = collector.sink.latest.get(f"meter:{meter_name}", {})
                if "power_w" in latest:
                    power = f"{latest['power_w']:.0f}"
                if "energy_import_kwh" in latest:
                    energy = f"{latest['energy_import_kwh']:.3f}"
                points += counts.get(f"meter:{meter_name}", 0)
        for ctl_name, ctl in site.controllers.items():
            if ctl.machine == machine:
                points += counts.get(f"cnc:{ctl_name}", 0)
        table.add_row(machine, state, power, energy, str(points))
    return table


def summarise(site: Site, workshop: SimulatedWorkshop, journal_path: Path, seconds: float) -> DemoResult:
    """Points per device and, per meter, collector energy beside ground truth."""
    reader = JournalReader(journal_path)
    counts = reader.count_by_series()
    devices: dict[str, dict] = {}
    for series in reader.series():
        if series.measurement == "meter":
            key = f"meter:{series.tags['meter']}"
        elif series.measurement == "cnc":
            key = f"controller:{series.tags['controller']}"
        else:
            continue
        devices.setdefault(key, {"points": 0})["points"] += counts.get(series.series_id, 0)
    for name in site.meters:
        devices.setdefault(f"meter:{name}", {"points": 0})
    for name in site.controllers:
        devices.setdefault(f"controller:{name}", {"points": 0})

    energies = []
    ok = all(d["points"] > 0 for d in devices.values())
    model = workshop.model
    for name, meter in sorted(site.meters.items()):
        [series] = reader.series("meter", meter=name) or [None]
        if series is None:
            continue
        times, counter = reader.field(series.series_id, "energy_import_kwh")
        if len(times) < 2:
            continue
        point = load_model(meter.model).point("energy_import_kwh")
        collected = float(counter[-1] - counter[0])
        truth = model.energy_kwh(meter.feeds, times[-1]) - model.energy_kwh(meter.feeds, times[0])
        resolution = point.resolution(float(counter[-1]))
        within = abs(collected - truth) <= resolution
        ok &= within
        energies.append({
            "meter": name, "feeds": meter.feeds, "model": meter.model,
            "from": iso(times[0]), "to": iso(times[-1]),
            "collector_energy_kwh": round(collected, 6), "truth_energy_kwh": round(truth, 6),
            "difference_kwh": round(collected - truth, 6),
            "counter_resolution_kwh": resolution, "within_resolution": bool(within),
        })
    drops = reader.drops()
    reader.close()
    writes = workshop.write_attempts()
    ok &= writes == 0
    end = time.time()
    summary = {
        "site": site.site.name, "seconds": seconds, "seed": workshop.seed, "pace": workshop.pace,
        "start": iso(model.t0_s), "end": iso(end),
        "devices": dict(sorted(devices.items())),
        "energy": energies,
        "jobs_completed": len(model.jobs(end)),
        "write_attempts": writes,
        "drops": drops,
        "ok": bool(ok),
    }
    return DemoResult(summary, bool(ok))


async def run_demo(site: Site, seconds: float, out: Path, seed: int = 1, pace: float = 60.0,
                   console: Console | None = None, influx: InfluxSettings | None = None) -> DemoResult:
    """Run the simulated workshop and the collector for `seconds`, write results into `out`;
    with `influx`, the collector also forwards the journal there (drained before the summary)."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: do not squeeze the tables
            console = Console(width=max(console.width, 120))
    out.mkdir(parents=True, exist_ok=True)
    journal_path = out / "journal.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(journal_path) + suffix).unlink(missing_ok=True)
    site = relocate(site)
    # A 1 s model grid: each 1 Hz meter reading stands for one second of the model's power.
    workshop = SimulatedWorkshop(site, seed=seed, pace=pace, pki_dir=out / "pki", dt_s=1.0)
    await workshop.start()
    site = workshop.site  # OPC UA certificate folders moved into out/pki
    journal = Journal(journal_path, commit_interval_s=site.journal.commit_interval_s)
    collector = Collector(site, journal, influx=influx)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    start = time.monotonic()
    collect_start_s = time.time()
    try:
        if console.is_terminal:
            with Live(_live_table(site, workshop, collector, 0, seconds), console=console,
                      refresh_per_second=2) as live:
                while (elapsed := time.monotonic() - start) < seconds:
                    await asyncio.sleep(0.5)
                    live.update(_live_table(site, workshop, collector, elapsed, seconds))
        else:
            next_print = 0.0
            while (elapsed := time.monotonic() - start) < seconds:
                if elapsed >= next_print:
                    total = sum(collector.sink.counts.values())
                    console.print(f"[{elapsed:5.1f} s] {total} points collected")
                    next_print += 10.0
                await asyncio.sleep(0.25)
            console.print(_live_table(site, workshop, collector, seconds, seconds))
    finally:
        stop.set()
        await task
        journal.close()
        await workshop.stop()
    end = time.time()
    workshop.write_sessions_csv(out / "sessions.csv", end)
    workshop.write_truth_json(out / "ground_truth.json", end)
    result = summarise(site, workshop, journal_path, seconds)
    result.summary["analysis"] = _analyse(site, workshop, journal_path, collect_start_s, end)
    if influx is not None:
        await _forward_rest(journal_path, influx)  # the bookings and results written since
        _add_forwarding(result, collector, journal_path)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2), encoding="utf-8")
    _print_summary(console, result, out)
    return result


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _analyse(site: Site, workshop: SimulatedWorkshop, journal_path: Path, start_s: float,
             end_s: float) -> dict:
    """Store the simulated bookings, run the stored analysis over the run, and set each job and
    member beside the simulator's ground truth. Time settings are scaled by the pace, as the
    simulation's durations are."""
    from analytics.pipeline import AnalysisOptions
    from analytics.records import Session
    from wattelier.sessions_store import store_sessions
    from wattelier.stored_analysis import run_once

    model = workshop.model
    booked = [Session(s.machine, s.member, s.start_s, s.end_s, "simulator") for s in model.sessions(end_s)]
    journal = Journal(journal_path)
    store_sessions(journal, site.site.name, booked)
    journal.close()
    defaults = AnalysisOptions()
    options = AnalysisOptions(merge_gap_s=defaults.merge_gap_s / workshop.pace,
                              min_dwell_s=defaults.min_dwell_s / workshop.pace)
    run = run_once(site, start_s, end_s, journal_path=journal_path, options=options)
    found = [j for j in run.result.jobs if j.outcome != "open"]
    truth = [j for j in model.jobs(end_s) if j.start_s >= start_s + 2 and j.end_s <= end_s - 2]
    jobs = []
    for j in truth:
        true_kwh = model.energy_kwh(j.machine, j.end_s) - model.energy_kwh(j.machine, j.start_s)
        match = max((f for f in found if f.machine == j.machine),
                    key=lambda f: _overlap(f.start_s, f.end_s, j.start_s, j.end_s), default=None)
        if match is not None and _overlap(match.start_s, match.end_s, j.start_s, j.end_s) <= 0:
            match = None
        jobs.append({
            "machine": j.machine, "job_id": j.job_id, "start": iso(j.start_s),
            "duration_s": round(j.end_s - j.start_s, 1), "member": j.member,
            "member_found": match.member if match else None, "truth_energy_kwh": round(true_kwh, 6),
            "analytics_energy_kwh": round(match.energy_kwh, 6) if match else None,
            "difference_pct": round(100 * (match.energy_kwh - true_kwh) / true_kwh, 2)
            if match and true_kwh > 0 else None,
        })
    members: dict[str, dict] = {}
    for row in jobs:
        m = members.setdefault(row["member"], {"member": row["member"], "jobs": 0, "truth_energy_kwh": 0.0,
                                               "analytics_energy_kwh": 0.0})
        m["jobs"] += 1
        m["truth_energy_kwh"] += row["truth_energy_kwh"]
        if row["member_found"] == row["member"] and row["analytics_energy_kwh"] is not None:
            m["analytics_energy_kwh"] += row["analytics_energy_kwh"]
    return {
        "jobs_in_window": len(truth),
        "jobs_found": sum(1 for r in jobs if r["analytics_energy_kwh"] is not None),
        "jobs_with_right_member": sum(1 for r in jobs if r["member_found"] == r["member"]),
        "jobs": jobs,
        "members": [{**m, "truth_energy_kwh": round(m["truth_energy_kwh"], 6),
                     "analytics_energy_kwh": round(m["analytics_energy_kwh"], 6)}
                    for m in sorted(members.values(), key=lambda m: m["member"])],
        "result_points_written": run.points_written,
    }


async def _forward_rest(journal_path: Path, influx: InfluxSettings, timeout_s: float = 60.0) -> None:
    from collector.forwarder import Forwarder
    from collector.influx_adapter import InfluxTarget

    forwarder = Forwarder(journal_path, InfluxTarget(influx))
    stop = asyncio.Event()
    stop.set()  # send what is there, then stop
    await forwarder.run(stop, drain_timeout_s=timeout_s)


def _add_forwarding(result: DemoResult, collector: Collector, journal_path: Path) -> None:
    """What reached InfluxDB: every journaled point forwarded, none left, none quarantined."""
    status = journal_status(journal_path)
    forwarder = collector.forwarder
    target = forwarder.store.target if forwarder and forwarder.store else None
    backlog = status.backlog.get(target, status.points) if target else status.points
    quarantined = status.quarantine.get(target, 0) if target else 0
    forwarded = status.counters.get(f"forwarded:{target}", 0) if target else 0
    result.summary["influxdb"] = {
        "url": collector.influx.url, "api": forwarder.target.api if forwarder else None,
        "target": target, "points_journaled": status.points, "points_forwarded": forwarded,
        "backlog": backlog, "quarantined": quarantined,
    }
    result.ok = result.ok and backlog == 0 and quarantined == 0 and forwarded == status.points
    result.summary["ok"] = result.ok


def _print_summary(console: Console, result: DemoResult, out: Path) -> None:
    s = result.summary
    table = Table(title="Energy per meter: collector (counter delta) vs simulator ground truth")
    for column in ("meter", "feeds", "model", "collector kWh", "truth kWh", "difference kWh",
                   "resolution kWh", "ok"):
        table.add_column(column)
    for e in s["energy"]:
        table.add_row(e["meter"], e["feeds"], e["model"], f"{e['collector_energy_kwh']:.5f}",
                      f"{e['truth_energy_kwh']:.5f}", f"{e['difference_kwh']:+.6f}",
                      f"{e['counter_resolution_kwh']:.6f}", "yes" if e["within_resolution"] else "NO")
    console.print(table)
    points = ", ".join(f"{k} {v['points']}" for k, v in s["devices"].items())
    console.print(f"points per device: {points}")
    console.print(f"jobs completed: {s['jobs_completed']}; write attempts on machines: "
                  f"{s['write_attempts']}; drops: {s['drops'] or 'none'}")
    a = s.get("analysis")
    if a:
        jobs = Table(title=f"Jobs: analytics vs simulator ground truth ({a['jobs_found']} of "
                           f"{a['jobs_in_window']} found, {a['jobs_with_right_member']} with the right member)")
        for column in ("machine", "job", "start", "s", "member", "found for", "truth kWh", "analytics kWh", "diff %"):
            jobs.add_column(column)
        for j in a["jobs"]:
            jobs.add_row(j["machine"], j["job_id"], j["start"][11:19], f"{j['duration_s']:.0f}", j["member"],
                         j["member_found"] or "-", f"{j['truth_energy_kwh']:.5f}",
                         "-" if j["analytics_energy_kwh"] is None else f"{j['analytics_energy_kwh']:.5f}",
                         "-" if j["difference_pct"] is None else f"{j['difference_pct']:+.2f}")
        console.print(jobs)
        members = Table(title="Members: energy of their jobs, analytics vs ground truth")
        for column in ("member", "jobs", "truth kWh", "analytics kWh"):
            members.add_column(column)
        for m in a["members"]:
            members.add_row(m["member"], str(m["jobs"]), f"{m['truth_energy_kwh']:.5f}",
                            f"{m['analytics_energy_kwh']:.5f}")
        console.print(members)
    if "influxdb" in s:
        i = s["influxdb"]
        console.print(f"InfluxDB {i['url']} ({i['api']} API): {i['points_forwarded']} of "
                      f"{i['points_journaled']} journaled points forwarded, backlog {i['backlog']}, "
                      f"quarantined {i['quarantined']}")
    console.print(f"summary written to {out / 'summary.json'}" + ("" if result.ok else
                  " — SOMETHING IS WRONG: see above"))

