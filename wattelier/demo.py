"""The demo: a simulated workshop and the collector on free loopback ports, then a summary.

Everything runs over real sockets (OPC UA and Modbus TCP) on this computer; the journal is the
store, so no server is needed. The summary sets, per metered machine, the energy the collector
counted (the meter's counter delta between its first and last reading) beside the simulator's
ground truth over the same instants.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from storage.journal_reader import JournalReader
from storage.journal import Journal
from storage.forward_store import journal_status
from storage.influxdb import InfluxSettings
from collector.runtime import Collector
from devices.meter_models import MeterPoint, load_model
from devices.sim.workshop import SimulatedWorkshop, iso, relocate
from devices.site import Site
from wattelier.analysis_summary import number


@dataclass
class DemoResult:
    summary: dict
    ok: bool


class LiveView:
    """The live table: per machine, state, power, energy used since the run began, points.

    The energy column is the meter's counter now minus its first reading of the run (the
    counters themselves hold the meters' lifetime energy)."""

    def __init__(self, site: Site, workshop: SimulatedWorkshop, collector: Collector,
                 seconds: float) -> None:
        self.site, self.workshop, self.collector, self.seconds = site, workshop, collector, seconds
        self.first_counter_kwh: dict[str, float] = {}

    def observe(self) -> None:
        """Note each meter's first counter reading of the run."""
        for meter_name in self.site.meters:
            latest = self.collector.sink.latest.get(f"meter:{meter_name}", {})
            if "energy_import_kwh" in latest:
                self.first_counter_kwh.setdefault(meter_name, latest["energy_import_kwh"])

    def table(self, elapsed_s: float) -> Table:
        self.observe()
        site, collector = self.site, self.collector
        table = Table(title=f"wattelier demo — {site.site.name} — {elapsed_s:4.0f} / {self.seconds:.0f} s")
        for column in ("machine", "state", "power W", "kWh this run", "points"):
            table.add_column(column, justify="left" if column in ("machine", "state") else "right")
        now = time.time()
        counts = collector.sink.counts
        for machine in list(site.machines) + list(site.services) + ["site"]:
            state = self.workshop.model.machine_state(machine, now) if machine in site.machines else ""
            power_w = used_kwh = None
            points = 0
            for meter_name, meter in site.meters.items():
                if meter.feeds != machine:
                    continue
                latest = collector.sink.latest.get(f"meter:{meter_name}", {})
                if "power_w" in latest:
                    power_w = (power_w or 0.0) + latest["power_w"]
                if "energy_import_kwh" in latest:
                    first = self.first_counter_kwh[meter_name]
                    used_kwh = (used_kwh or 0.0) + latest["energy_import_kwh"] - first
                points += counts.get(f"meter:{meter_name}", 0)
            for ctl_name, ctl in site.controllers.items():
                if ctl.machine == machine:
                    points += counts.get(f"cnc:{ctl_name}", 0)
            table.add_row(machine, state, "" if power_w is None else f"{power_w:.0f}",
                          "" if used_kwh is None else f"{used_kwh:.4f}", str(points))
        return table


@contextlib.contextmanager
def logs_above(live: Live):
    """Log lines printed above the live table instead of through it: the handlers that write to
    the terminal write, while the table is shown, to the live display's console."""
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout,
                                                                           sys.__stderr__, sys.__stdout__)]
    streams = [h.stream for h in handlers]
    proxy = _ConsoleStream(live.console)
    for handler in handlers:
        handler.setStream(proxy)
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)


class _ConsoleStream(io.TextIOBase):
    """A text stream whose lines go to a rich console (printed above a live display)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.console.print(self._partial, markup=False, highlight=False, soft_wrap=True)
            self._partial = ""


def counter_check(model, feeds: str, point: MeterPoint, first_s: float, first_kwh: float,
                  last_s: float, last_kwh: float, poll_span_s: float) -> dict:
    """The collector's energy (a meter's counter delta between two readings) beside the
    simulator's ground truth between the readings' time stamps, and the error allowed.

    Two things separate them, and nothing else may:
    - the register step: each reading is the true counter rounded to the register's
      resolution (MeterPoint.resolution), so a difference of two readings is off by less than
      one step;
    - timing: a reading is stamped when its poll's first request is sent, and the meter takes
      the value when it answers the request holding the counter, at most `poll_span_s` later
      (the longest poll of the run, first send to last answer, MeterSource.poll_span_max_s).
      A late reading counts the energy of that delay too: at most the true energy of
      [t, t + poll_span_s] after either reading, whichever is larger (both are late the same
      way, so their delays partly cancel; the larger alone bounds the difference).
    allowed = step + max(E(t0, t0 + span), E(t1, t1 + span)), E from the simulator's model.
    A wrong scale or register address is off by far more (tests/test_demo.py shows both fail).
    """
    collected = last_kwh - first_kwh
    truth = model.energy_kwh(feeds, last_s) - model.energy_kwh(feeds, first_s)
    step_kwh = point.resolution(last_kwh)
    timing_kwh = max(model.energy_kwh(feeds, t + poll_span_s) - model.energy_kwh(feeds, t)
                     for t in (first_s, last_s))
    allowed = step_kwh + timing_kwh
    within = abs(collected - truth) <= allowed
    return {
        "collector_energy_kwh": round(collected, 6), "truth_energy_kwh": round(truth, 6),
        "difference_kwh": round(collected - truth, 6),
        "counter_resolution_kwh": step_kwh, "poll_span_s": round(poll_span_s, 4),
        "timing_allowance_kwh": timing_kwh, "allowed_error_kwh": allowed,
        "within_allowed": bool(within),
    }


def summarise(site: Site, workshop: SimulatedWorkshop, journal_path: Path, seconds: float,
              poll_spans_s: dict[str, float] | None = None) -> DemoResult:
    """Points per device and, per meter, collector energy beside ground truth (counter_check).

    poll_spans_s: per meter, the longest poll of the run [s] (MeterSource.poll_span_max_s)."""
    poll_spans_s = poll_spans_s or {}
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
        check = counter_check(model, meter.feeds, load_model(meter.model).point("energy_import_kwh"),
                              float(times[0]), float(counter[0]), float(times[-1]), float(counter[-1]),
                              poll_spans_s.get(name, 0.0))
        ok &= check["within_allowed"]
        energies.append({"meter": name, "feeds": meter.feeds, "model": meter.model,
                         "from": iso(times[0]), "to": iso(times[-1]), **check})
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
                   console: Console | None = None, influx: InfluxSettings | None = None,
                   history_s: float = 0.0, site_path: Path | None = None) -> DemoResult:
    """Run the simulated workshop and the collector for `seconds`, write results into `out`;
    with `influx`, the collector also forwards the journal there (drained before the summary).
    history_s: first write that much simulated history (ending on the hour before the run) into
    the journal and analyse it. site_path: the site's file, named and hashed in the report
    (default: the example site's)."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: do not squeeze the tables
            console = Console(width=80)
    out.mkdir(parents=True, exist_ok=True)
    journal_path = out / "journal.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(journal_path) + suffix).unlink(missing_ok=True)
    history = _history(site, journal_path, history_s, seed, console) if history_s > 0 else None
    site = relocate(site)
    # A 1 s model grid: each 1 Hz meter reading stands for one second of the model's power.
    workshop = SimulatedWorkshop(site, seed=seed, pace=pace, pki_dir=out / "pki", dt_s=1.0)
    await workshop.start()
    site = workshop.site  # OPC UA certificate folders moved into out/pki
    journal = Journal(journal_path, commit_interval_s=site.journal.commit_interval_s, collector=True)
    collector = Collector(site, journal, influx=influx)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    start = time.monotonic()
    collect_start_s = time.time()
    view = LiveView(site, workshop, collector, seconds)
    try:
        if console.is_terminal:
            with Live(view.table(0), console=console, refresh_per_second=2) as live, logs_above(live):
                while (elapsed := time.monotonic() - start) < seconds:
                    await asyncio.sleep(0.5)
                    live.update(view.table(elapsed))
        else:
            next_print = 0.0
            while (elapsed := time.monotonic() - start) < seconds:
                if elapsed >= next_print:
                    total = sum(collector.sink.counts.values())
                    console.print(f"[{elapsed:5.1f} s] {total} points collected")
                    next_print += 10.0
                view.observe()
                await asyncio.sleep(0.25)
            console.print(view.table(seconds))
    finally:
        stop.set()
        await task
        journal.close()
        await workshop.stop()
    end = time.time()
    workshop.write_sessions_csv(out / "sessions.csv", end)
    workshop.write_truth_json(out / "ground_truth.json", end)
    spans = {name: source.poll_span_max_s for name, source in collector.meter_sources.items()}
    result = summarise(site, workshop, journal_path, seconds, spans)
    result.summary["analysis"] = _analyse(site, workshop, journal_path, collect_start_s, end)
    if history is not None:
        result.summary["history"] = history
        result.summary["site_file"] = str(site_path) if site_path is not None else None
    if influx is not None:
        # the bookings and results written since; history takes longer (some 300 000 points/s)
        await _forward_rest(journal_path, influx, 60.0 + (history["points"] / 50_000 if history else 0.0))
        _add_forwarding(result, collector, journal_path)
    window = (history["start_s"], history["end_s"]) if history else (collect_start_s, end)
    result.summary["report"] = _report(site, site_path, journal_path, out / "report", *window, console)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2), encoding="utf-8")
    _print_summary(console, result, out)
    return result


def _history(site: Site, journal_path: Path, history_s: float, seed: int, console: Console) -> dict:
    """Simulated history over the whole hours before now, written into the journal with its
    bookings (wattelier.history), then analysed and its results stored, as `wattelier analyze`
    would; what was done, as the summary's "history"."""
    from rich.progress import Progress

    from wattelier.history import backfill_history
    from wattelier.stored_analysis import run_once

    end_s = time.time() // 3600 * 3600
    start_s = end_s - history_s
    started = time.monotonic()
    with Progress(console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task(f"history: {_days(history_s)} of simulated readings", total=history_s)
        history = backfill_history(site, start_s, end_s, journal_path, seed=seed,
                                   progress=lambda done: progress.update(task, completed=done))
    written_s = time.monotonic() - started
    console.print(f"history: {history.points} readings, {history.jobs} jobs and {history.sessions_added} "
                  f"bookings from {iso(start_s)} to {iso(end_s)} written in {written_s:.0f} s; analysing it")
    started = time.monotonic()
    run = run_once(site, start_s, end_s, journal_path=journal_path, processes=None)
    console.print(f"history analysed in {time.monotonic() - started:.0f} s: {len(run.result.jobs)} jobs, "
                  f"{len(run.result.sessions)} sessions, {run.points_written} result points stored")
    return {"start": iso(start_s), "end": iso(end_s), "start_s": start_s, "end_s": end_s,
            "points": history.points, "jobs": history.jobs, "sessions": history.sessions_added,
            "jobs_found": len(run.result.jobs), "result_points_written": run.points_written,
            "backfill_s": round(written_s, 1)}


def _report(site: Site, site_path: Path | None, journal_path: Path, out: Path, start_s: float,
            end_s: float, console: Console) -> dict:
    """The impact report of the window (the history's, or the run's) from the journal's stored
    results into `out` (wattelier.report_run); what was written, as the summary's "report"."""
    from devices.site import example_site_path
    from wattelier.report_run import ReportError, ReportRequest, default_language, make_report

    request = ReportRequest(sites=[(site, site_path or example_site_path())], start_s=start_s, end_s=end_s,
                            month=None, out_dir=out, journal_path=journal_path,
                            language=default_language(site))
    try:
        outcome = make_report(request, echo=lambda line: None)
    except ReportError as exc:
        console.print(f"report: not written: {exc}")
        return {"written": [], "notes": [str(exc)]}
    for note in outcome.notes:
        console.print(f"report: {note}")
    return {"written": [str(p) for p in outcome.written], "notes": outcome.notes}


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days != 1 else "1 day"


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _analyse(site: Site, workshop: SimulatedWorkshop, journal_path: Path, start_s: float,
             end_s: float) -> dict:
    """Store the simulated bookings, run the stored analysis over the run, and set each job and
    member beside the simulator's ground truth. Time settings are scaled by the pace, as the
    simulation's durations are."""
    from analytics.pipeline import AnalysisOptions
    from analytics.records import Session
    from storage.bookings_store import store_sessions
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
        "currency": run.result.currency,
        "emission_factor_kg_per_kwh": run.result.emission_factor.kg_co2e_per_kwh,
        "by_machine": [_totals(m.machine, m.energy_kwh, m.co2e_kg, m.cost, jobs=m.jobs,
                               processing_s=m.processing_s, is_service=m.is_service)
                       for m in run.result.machines],
        "by_member": [_totals(m.member, m.energy_kwh + m.shared_services_kwh, m.co2e_kg, m.cost,
                              jobs=m.jobs, processing_s=m.processing_s, sessions=m.sessions)
                      for m in run.result.members],
    }


def _totals(name: str, energy_kwh: float, co2e_kg: float | None, cost: float | None, **more) -> dict:
    return {"name": name, "energy_kwh": round(energy_kwh, 6),
            "co2e_kg": None if co2e_kg is None else round(co2e_kg, 6),
            "cost": None if cost is None else round(cost, 6), **more}


async def _forward_rest(journal_path: Path, influx: InfluxSettings, timeout_s: float = 60.0) -> None:
    from collector.forwarder import Forwarder
    from storage.influxdb import InfluxTarget

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
    """What a manager looks at first (energy, CO2e and cost per machine and per member over the
    run), then the check against the simulator's ground truth; each table fits 80 columns."""
    s = result.summary
    a = s.get("analysis")
    if a:
        currency = a["currency"] or ""
        for title, rows, first in (("Per machine over the run", a["by_machine"], "machine"),
                                   ("Per member over the run (their sessions)", a["by_member"], "member")):
            table = Table(title=title)
            for column in (first, "jobs", "processing", "kWh", "kgCO2e", f"cost {currency}".strip()):
                table.add_column(column, justify="left" if column == first else "right")
            for r in rows:
                table.add_row(r["name"] + (" (service)" if r.get("is_service") else ""), str(r["jobs"]),
                              _duration(r["processing_s"]), f"{r['energy_kwh']:.4f}",
                              number(r["co2e_kg"], 5), number(r["cost"], 4))
            if rows:
                table.add_section()
                table.add_row("total", str(sum(r["jobs"] for r in rows)),
                              _duration(sum(r["processing_s"] for r in rows)),
                              f"{sum(r['energy_kwh'] for r in rows):.4f}",
                              number(_sum(r["co2e_kg"] for r in rows), 5),
                              number(_sum(r["cost"] for r in rows), 4))
            console.print(table)
        console.print(f"CO2e at {a['emission_factor_kg_per_kwh']} kgCO2e/kWh; cost at the site's tariff.")

    table = Table(title="Check: each meter's counter against the simulator's truth")
    for column in ("meter", "collector kWh", "difference kWh", "allowed kWh", "ok"):
        table.add_column(column, justify="left" if column == "meter" else "right")
    for e in s["energy"]:
        table.add_row(e["meter"], f"{e['collector_energy_kwh']:.5f}",
                      f"{e['difference_kwh']:+.6f}", f"{e['allowed_error_kwh']:.6f}",
                      "yes" if e["within_allowed"] else "NO")
    console.print(table)
    if a:
        diffs = [abs(j["difference_pct"]) for j in a["jobs"] if j["difference_pct"] is not None]
        worst = f", energy within {max(diffs):.2f} %" if diffs else ""
        console.print(f"jobs: {a['jobs_found']} of {a['jobs_in_window']} found, "
                      f"{a['jobs_with_right_member']} with the right member{worst}")
    console.print(f"write attempts on machines: {s['write_attempts']}; "
                  f"drops: {s['drops'] or 'none'}")
    if "influxdb" in s:
        i = s["influxdb"]
        console.print(f"InfluxDB {i['url']} ({i['api']} API): {i['points_forwarded']} of "
                      f"{i['points_journaled']} journaled points forwarded, backlog {i['backlog']}, "
                      f"quarantined {i['quarantined']}")
    console.print(f"details (every job, member and device): {out / 'summary.json'}")
    report = s.get("report", {})
    if any(p.endswith("report.html") for p in report.get("written", [])):
        console.print(f"impact report (HTML, PDF, CSV, JSON): {out / 'report' / 'report.html'}")
    journal = out / "journal.sqlite"
    console.print("look further:", soft_wrap=True)
    console.print(f"  wattelier journal --journal {journal}", soft_wrap=True)
    console.print(f"  wattelier analyze --journal {journal} --json", soft_wrap=True)
    if "history" in s:
        h = s["history"]
        config = f" --config {s['site_file']}" if s.get("site_file") else ""
        console.print(f"  wattelier report{config} --journal {journal} --from {h['start']} --to {h['end']} "
                      f"--lang en --out {out / 'report-en'}", soft_wrap=True)
    console.print("all checks passed" if result.ok else "SOMETHING IS WRONG: see the checks above")


def _sum(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
