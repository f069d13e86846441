"""Benchmark of `wattelier report` (issue 16, acceptance 6): a month's report from the stored
results, beside the floor of reading the same results with plain queries, from one run.

Figures (each the median of --repeat runs, except where said; the network report's of
--network-repeat runs, default 1, so that a reused workdir runs in about a minute):

1. One site, a month (the example site, devices/data/sites/example.toml, site-local month
   --month, 30 days by default), from the journal and from InfluxDB 1.6.7:
   ``wattelier.report_run.make_report`` writing json, csv and html (read, build and write;
   it also reads the previous month, which holds nothing here), and separately the PDF
   (``reports.render_pdf.write_pdf`` on that HTML: Chromium's start-up dominates it).
   Floor, InfluxDB: one plain InfluxQL request per measurement (usage, job, session,
   balance) and window, ``SELECT * FROM "<m>" WHERE "site" = '<site>' AND time >= <start>
   AND time < <end> GROUP BY *``, the answer parsed with json.loads. Floor, journal: one
   plain SQL query per measurement and window over the same rows (series joined to points,
   the site tag and the window in the WHERE clause, tags and fields parsed with json.loads).
   The windows are the month and the previous month: the rows the report reads.
   Targets: the store's part (read + build, median of --repeat runs) within 3x of the floor,
   printed with read + build + json + csv of one run beside it; the whole report (json, csv,
   html) under 3 s.
2. A network, 20 sites x 10 machines x the month, from one InfluxDB: ``make_report`` with
   every site (json, csv, html), beside the same plain requests for all 20 sites.
   Targets: read + build within 3x of the floor, the whole report under 20 s. The network's
   PDF is timed once.

The data (built once, kept in --workdir with marker files; about 8 minutes the first time
on 2 cores, a few seconds when reused):

- ``wattelier.history.backfill_history`` writes the example site's simulated month (1 Hz
  meters, controllers, bookings; whole site-local days, Europe/Paris midnight to midnight,
  seed 1) into a journal (about 20 million readings); the journal's max_points is raised to
  10**9 so nothing is dropped;
- ``wattelier.stored_analysis.run_once(site, start, end, journal_path=..., processes=None)``
  analyses the month and stores its results in the journal (what the journal report reads);
- InfluxDB receives only results, as a report reads only results: the same analysis
  result's points (``result_points(site name, result)`` -> ``storage.points.to_line`` ->
  ``InfluxTarget.write_lines``, 5 000 lines per request) once under the example site's own
  name, and once for each of the 20 network sites ``site-01`` .. ``site-20``, re-tagged: the
  site tag renamed, and the points of router-1, laser-1 and printers-1 written a second time
  as router-2, laser-2 and printers-2, so each network site has 10 machines and services
  (the example's 6 machines and 1 service, plus 3). Each network site's Site object is the
  example site's, copied with ``model_copy`` (its name, and the 3 extra machines, copies of
  their originals); the manifest hashes the example site file for each.
  If the journal was kept but InfluxDB was not, the month is analysed again (run_once over
  the journal replaces its own results) to get the points.

Each report is also taken apart once: the store's reader alone, build_report on rows
already read, and each format (the HTML's matplotlib charts on their own too).

Run: python benchmarks/report.py [--month 2026-11] [--repeat 3] [--network-repeat 1]
[--workdir DIR] [--profile]
(DIR keeps the journal, about 9 GB, and the InfluxDB data for the next run; --profile prints
the functions taking most of the network report's time, under cProfile.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.stored_results import REPORT_MEASUREMENTS  # noqa: E402
from benchmarks.analytics import median_time_s  # noqa: E402  (one timing rule for every benchmark)
from storage.influxdb import InfluxSettings, InfluxTarget  # noqa: E402
from storage.points import Point, to_line  # noqa: E402
from devices.site import Site, example_site_path, load_site  # noqa: E402

DATABASE = "bench"
NETWORK_SITES = 20
TWINS = {"router-2": "router-1", "laser-2": "laser-1", "printers-2": "printers-1"}
"""Extra machine of each network site -> the example site's machine whose results it repeats."""
TARGET_ONE_S, TARGET_NETWORK_S, TARGET_RATIO = 3.0, 20.0, 3.0
JOURNAL_FORMATS = ("json", "csv", "html")




# -- the data ----------------------------------------------------------------------------------

def network_site(site: Site, name: str) -> Site:
    """The example site under another name, with the TWINS machines added."""
    machines = dict(site.machines)
    for twin, original in TWINS.items():
        machines[twin] = site.machines[original]
    return site.model_copy(update={"site": site.site.model_copy(update={"name": name}),
                                   "machines": machines})


def retagged(points: list[Point], site_name: str) -> list[Point]:
    """The points under another site name, those of each TWINS original repeated as the twin."""
    twin_of = {original: twin for twin, original in TWINS.items()}
    out = []
    for p in points:
        tags = dict(p.tags, site=site_name)
        out.append(Point(p.measurement, tags, p.fields, p.time_ns))
        twin = twin_of.get(p.tags.get("machine", ""))
        if twin is not None:
            out.append(Point(p.measurement, dict(tags, machine=twin), p.fields, p.time_ns))
    return out


def write_points(url: str, points: list[Point]) -> None:
    """Write points to the benchmark database, 5 000 lines per request."""
    target = InfluxTarget(InfluxSettings(url, api="v1", database=DATABASE))
    try:
        target.ensure_database()
        lines = [to_line(p) for p in points]
        for i in range(0, len(lines), 5000):
            target.write_lines(lines[i:i + 5000])
    finally:
        target.close()


def build_journal(site: Site, start_s: float, end_s: float, journal_path: Path):
    """Backfill the month into a new journal and analyse it; the AnalysisResult."""
    from wattelier.history import backfill_history

    for stale in journal_path.parent.glob(journal_path.name + "*"):
        stale.unlink()
    started = time.perf_counter()
    last = [started]

    def progress(done_s: float) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"    backfilled {done_s / 86400:.0f} of {(end_s - start_s) / 86400:.0f} days", flush=True)

    history = backfill_history(site, start_s, end_s, journal_path, seed=1, progress=progress)
    print(f"  backfilled {history.points:,} readings and {history.sessions_added} bookings in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return analyse(site, start_s, end_s, journal_path)


def analyse(site: Site, start_s: float, end_s: float, journal_path: Path):
    """run_once over the journal (its results stored there); the AnalysisResult."""
    from wattelier.stored_analysis import run_once

    started = time.perf_counter()
    run = run_once(site, start_s, end_s, journal_path=journal_path, processes=None)
    print(f"  analysed in {time.perf_counter() - started:.0f} s: {run.points_written:,} result points "
          f"stored in the journal", flush=True)
    return run.result


def fill_influx(url: str, site: Site, result) -> int:
    """Write the example site's results, and the 20 network sites' re-tagged copies; the
    number of points written."""
    from analytics.result_points import result_points

    started = time.perf_counter()
    points = result_points(site.site.name, result)
    write_points(url, points)
    written = len(points)
    for name in network_names():
        network = retagged(points, name)
        write_points(url, network)
        written += len(network)
    print(f"  wrote {written:,} result points to InfluxDB 1.6.7 in {time.perf_counter() - started:.0f} s",
          flush=True)
    return written


def network_names() -> list[str]:
    return [f"site-{k:02d}" for k in range(1, NETWORK_SITES + 1)]


# -- the floors --------------------------------------------------------------------------------

Windows = list[tuple[float, float]]
"""[start_s, end_s) windows a report reads: the period and the previous one."""


def influx_floor(url: str, sites: list[str], windows: Windows) -> int:
    """One plain InfluxQL request per measurement, site and window, parsed with json.loads;
    the rows."""
    rows = 0
    for site in sites:
        for (start_s, end_s), measurement in ((w, m) for w in windows for m in REPORT_MEASUREMENTS):
            q = (f"SELECT * FROM \"{measurement}\" WHERE \"site\" = '{site}' AND time >= "
                 f"{int(round(start_s * 1e9))} AND time < {int(round(end_s * 1e9))} GROUP BY *")
            data = urllib.parse.urlencode({"q": q, "db": DATABASE, "epoch": "ns"}).encode()
            with urllib.request.urlopen(url + "/query", data=data, timeout=120) as resp:
                body = json.loads(resp.read())
            result = body["results"][0]
            if "error" in result:
                raise RuntimeError(f"{result['error']}: {q}")
            rows += sum(len(s["values"]) for s in result.get("series", []))
    return rows


def journal_floor(journal_path: Path, site: str, windows: Windows) -> int:
    """One plain SQL query per measurement and window over the same rows, tags and fields
    parsed with json.loads; the rows."""
    db = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    rows = 0
    try:
        for (start_s, end_s), measurement in ((w, m) for w in windows for m in REPORT_MEASUREMENTS):
            cursor = db.execute(
                "SELECT p.time_ns, s.tags, p.fields FROM series s JOIN points p ON p.series_id = s.id "
                "WHERE s.measurement = ? AND json_extract(s.tags, '$.site') = ? "
                "AND p.time_ns >= ? AND p.time_ns < ?",
                (measurement, site, int(round(start_s * 1e9)), int(round(end_s * 1e9))))
            parsed = [(t, json.loads(tags), json.loads(fields)) for t, tags, fields in cursor]
            rows += len(parsed)
    finally:
        db.close()
    return rows


# -- the reports -------------------------------------------------------------------------------

def report_request(sites: list[tuple[Site, Path]], start_s: float, end_s: float, month: str,
                   out_dir: Path, *, journal_path: Path | None = None, influx_url: str | None = None):
    """A ReportRequest for the json, csv and html formats (the PDF is timed on its own)."""
    from wattelier.report_run import ReportRequest

    influx = None if influx_url is None else InfluxSettings(influx_url, api="v1", database=DATABASE)
    return ReportRequest(sites=sites, start_s=start_s, end_s=end_s, month=month, out_dir=out_dir,
                         journal_path=journal_path, influx=influx, formats=JOURNAL_FORMATS, language="fr")


def make(request) -> Any:
    """make_report, its messages left out; the Report."""
    from wattelier.report_run import make_report

    return make_report(request, echo=lambda _line: None).report


def timed_reports(request, repeat: int) -> tuple[float, Any]:
    """(median time of `repeat` make_report runs [s], the first run's Report)."""
    times, first = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        report = make(request)
        times.append(time.perf_counter() - started)
        if first is None:
            first = report
    return statistics.median(times), first


def check_analysed(report, machines: int) -> dict[str, int]:
    """Every site analysed, with `machines` machines and services; the counts of the report."""
    bad = [s.site for s in report.sites if not s.analysed]
    if bad:
        raise SystemExit(f"not analysed over the whole month: {', '.join(bad)}")
    wrong = [s.site for s in report.sites if len(s.machines) != machines]
    if wrong:
        raise SystemExit(f"not {machines} machines: {', '.join(wrong)}")
    return {"sites": len(report.sites), "machines": sum(len(s.machines) for s in report.sites),
            "jobs": sum(len(s.jobs) for s in report.sites),
            "sessions": sum(len(s.sessions) for s in report.sites),
            "usage_rows": sum(len(s.days) for s in report.sites),
            "members": sum(len(s.members) for s in report.sites)}


def time_pdf(out_dir: Path, repeat: int) -> float:
    """Median time of printing out_dir/report.html to a PDF with Chromium [s]."""
    from reports.render_pdf import write_pdf

    return median_time_s(lambda: write_pdf(out_dir / "report.html", out_dir / "report.pdf"), repeat)


def ratio_verdict(seconds: float, floor_s: float) -> str:
    ratio = seconds / floor_s
    return f"{ratio:5.1f}x the floor (target <= {TARGET_RATIO:g}x)  {'OK' if ratio <= TARGET_RATIO else 'MISSED'}"


def time_verdict(seconds: float, target_s: float) -> str:
    return f"(target < {target_s:g} s)  {'OK' if seconds < target_s else 'MISSED'}"


def store_part_s(sites: list[tuple[Site, Path]], read, start_s: float, end_s: float, month: str,
                 repeat: int) -> float:
    """Median time of reading the stored results (the period and the previous one) and
    building the report model from them, as make_report does before writing [s]."""
    from reports.build import build_report

    return median_time_s(lambda: build_report(sites, read, start_s, end_s, language="fr", month=month,
                                              wattelier_version="bench", store="bench"), repeat)


def store_line(label: str, seconds: float, floor_s: float, data_path_s: float) -> str:
    """read + build against the floor, and read + build + json + csv (one run) beside it."""
    return (f"  {label + ':':<9} read+build {seconds:6.3f} s   floor {floor_s:6.3f} s (both windows)   "
            f"{ratio_verdict(seconds, floor_s)};  read+build+json+csv {data_path_s:6.3f} s "
            f"({data_path_s / floor_s:.1f}x)")


def phases(sites: list[tuple[Site, Path]], read, start_s: float, end_s: float, month: str,
           out_dir: Path) -> dict[str, float]:
    """Where make_report's time goes, each step once [s]: the store's reader (the period and
    the previous one, as build_report reads them), build_report on rows already read, then
    each format; the HTML's matplotlib charts also on their own (they are part of the HTML)."""
    from reports import charts
    from reports.build import build_report, previous_period
    from reports.i18n import Formatter
    from reports.render_csv import write_csvs
    from reports.render_html import write_html
    from reports.render_json import write_json

    out: dict[str, float] = {}
    rows: dict[tuple[str, float, float], Any] = {}
    prev_start, prev_end, _ = previous_period(sites[0][0].tz, start_s, end_s, month)
    started = time.perf_counter()
    for site, _ in sites:
        for a, b in ((start_s, end_s), (prev_start, prev_end)):
            rows[(site.site.name, a, b)] = read(site.site.name, a, b)
    out["read"] = time.perf_counter() - started
    started = time.perf_counter()
    report = build_report(sites, lambda name, a, b: rows[(name, a, b)], start_s, end_s, language="fr",
                          month=month, wattelier_version="bench", store="bench")
    out["build"] = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    for step, write in (("json", lambda: write_json(report, out_dir / "report.json")),
                        ("csv", lambda: write_csvs(report, out_dir)),
                        ("html", lambda: write_html(report, out_dir / "report.html"))):
        started = time.perf_counter()
        write()
        out[step] = time.perf_counter() - started
    started = time.perf_counter()
    for index, site in enumerate(report.sites):
        charts.site_charts(site, Formatter(report.language, site.currency, site.timezone), index)
    out["html_charts"] = time.perf_counter() - started
    return out


def data_path_s(steps: dict[str, float]) -> float:
    """read + build + json + csv of one phases() run: the report's data path, charts aside [s]."""
    return sum(steps[k] for k in ("read", "build", "json", "csv"))


def phase_line(steps: dict[str, float]) -> str:
    return "    of which (one run each): " + ", ".join(
        f"{name.replace('_', ' ')} {seconds:.3f} s" for name, seconds in steps.items()) + \
        " (the charts are part of the html)"


def profile_network(request, top: int = 18) -> None:
    """The network report under cProfile: the functions with most time of their own."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    make(request)
    profiler.disable()
    print("  profile of the network report (json, csv, html), by own time:")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2026-11", help="site-local month YYYY-MM (default 2026-11, "
                        "30 days, no change of clock time)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (the median is shown)")
    parser.add_argument("--network-repeat", type=int, default=1, help="runs of the network report "
                        "(about 15 s each; default 1)")
    parser.add_argument("--workdir", help="keep the journal and InfluxDB data here and reuse them "
                        "(default: a temporary folder)")
    parser.add_argument("--profile", action="store_true", help="profile the network report")
    args = parser.parse_args(argv)

    from storage.stored_results import influxdb_reader, journal_reader
    from reports.build import month_window, previous_period
    from tests.servers import InfluxServer
    from analytics.influxql_reader import InfluxQLInputs

    example = load_site(example_site_path())
    # the whole month is journaled before it is analysed: room for all of it
    site = example.model_copy(update={"journal": example.journal.model_copy(update={"max_points": 10**9})})
    start_s, end_s = month_window(site.tz, args.month)
    days = round((end_s - start_s) / 86400)
    repeat = args.repeat
    with tempfile.TemporaryDirectory(prefix="wattelier-bench-report-") as scratch:
        work = Path(args.workdir) if args.workdir else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        journal_path = work / "journal.sqlite"
        journal_marker, influx_marker = work / "journal.json", work / "influx.json"
        wanted = {"month": args.month, "seed": 1}
        started = time.perf_counter()
        result = None
        if not (journal_marker.exists() and json.loads(journal_marker.read_text()) == wanted):
            influx_marker.unlink(missing_ok=True)
            print(f"building {args.month} ({days} days) of the example site in {work}", flush=True)
            result = build_journal(site, start_s, end_s, journal_path)
            journal_marker.write_text(json.dumps(wanted))
        wanted_influx = dict(wanted, sites=NETWORK_SITES, twins=TWINS)
        fresh_influx = not (influx_marker.exists() and json.loads(influx_marker.read_text()) == wanted_influx)
        if fresh_influx:
            shutil.rmtree(work / "influx", ignore_errors=True)
        with InfluxServer(work / "influx") as server:
            if fresh_influx:
                if result is None:
                    result = analyse(site, start_s, end_s, journal_path)
                fill_influx(server.url, site, result)
                influx_marker.write_text(json.dumps(wanted_influx))
            print(f"data {'built' if result is not None else 'reused from ' + str(work)} in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            del result
            one = [(site, example_site_path())]
            name = site.site.name
            out = work / "out"
            figures: dict[str, Any] = {"month": args.month, "days": days, "repeat": repeat}
            prev_start, prev_end, _ = previous_period(site.tz, start_s, end_s, args.month)
            windows = [(start_s, end_s), (prev_start, prev_end)]  # what build_report reads

            # 1. one site, from the journal and from InfluxDB
            for store, request, floor in (
                    ("journal", report_request(one, start_s, end_s, args.month, out / "journal",
                                               journal_path=journal_path),
                     lambda: journal_floor(journal_path, name, windows)),
                    ("influxdb", report_request(one, start_s, end_s, args.month, out / "influxdb",
                                                influx_url=server.url),
                     lambda: influx_floor(server.url, [name], windows))):
                report_s, report = timed_reports(request, repeat)
                counts = check_analysed(report, len(site.machines) + len(site.services))
                rows = floor()
                floor_s = median_time_s(floor, repeat)
                if store == "journal":
                    print(f"one site, {args.month}: {counts['machines']} machines and services, "
                          f"{counts['jobs']:,} jobs, {counts['sessions']:,} sessions, "
                          f"{counts['usage_rows']} usage rows, {counts['members']} members; "
                          f"{rows:,} stored rows read; medians of {repeat}")
                    figures["one_site"] = counts | {"stored_rows": rows}
                read = (journal_reader(journal_path) if store == "journal"
                        else influxdb_reader(InfluxQLInputs(server.url, DATABASE)))
                part_s = store_part_s(one, read, start_s, end_s, args.month, repeat)
                steps = phases(one, read, start_s, end_s, args.month, out / f"{store}-phases")
                print(store_line(store, part_s, floor_s, data_path_s(steps)) + f"   (plain "
                      f"{'SQL' if store == 'journal' else 'InfluxQL'})", flush=True)
                print(f"  {'':<9} whole report, make_report (json, csv, html) {report_s:6.2f} s   "
                      f"{time_verdict(report_s, TARGET_ONE_S)}", flush=True)
                print(phase_line(steps), flush=True)
                figures[f"one_{store}_read_build_s"] = round(part_s, 4)
                figures[f"one_{store}_phases_s"] = {k: round(v, 3) for k, v in steps.items()}
                figures[f"one_{store}_report_s"] = round(report_s, 3)
                figures[f"one_{store}_floor_s"] = round(floor_s, 4)
            pdf_s = time_pdf(out / "influxdb", repeat)
            html_kb = (out / "influxdb" / "report.html").stat().st_size / 1024
            print(f"  PDF of the one-site report (Chromium, from its {html_kb:,.0f} kB HTML): {pdf_s:6.2f} s")
            figures["one_pdf_s"] = round(pdf_s, 3)

            # 2. the network: 20 sites x 10 machines from one InfluxDB
            names = network_names()
            sites = [(network_site(site, n), example_site_path()) for n in names]
            request = report_request(sites, start_s, end_s, args.month, out / "network", influx_url=server.url)
            report_s, report = timed_reports(request, args.network_repeat)
            counts = check_analysed(report, len(site.machines) + len(site.services) + len(TWINS))
            rows = influx_floor(server.url, names, windows)
            print(f"network, {args.month}: {counts['sites']} sites, {counts['machines']} machines and "
                  f"services, {counts['jobs']:,} jobs, {counts['sessions']:,} sessions, "
                  f"{counts['usage_rows']:,} usage rows; {rows:,} stored rows read; report: median of "
                  f"{args.network_repeat}, floor: median of {repeat}")
            floor_s = median_time_s(lambda: influx_floor(server.url, names, windows), repeat)
            read = influxdb_reader(InfluxQLInputs(server.url, DATABASE))
            part_s = store_part_s(sites, read, start_s, end_s, args.month, repeat)
            steps = phases(sites, read, start_s, end_s, args.month, out / "network-phases")
            print(store_line("influxdb", part_s, floor_s, data_path_s(steps)) + f"   (plain InfluxQL, "
                  f"{NETWORK_SITES * len(REPORT_MEASUREMENTS) * len(windows)} requests)", flush=True)
            print(f"  {'':<9} whole report, make_report (json, csv, html) {report_s:6.2f} s   "
                  f"{time_verdict(report_s, TARGET_NETWORK_S)}", flush=True)
            print(phase_line(steps), flush=True)
            figures["network_read_build_s"] = round(part_s, 4)
            figures["network_phases_s"] = {k: round(v, 3) for k, v in steps.items()}
            pdf_s = time_pdf(out / "network", 1)
            html_kb = (out / "network" / "report.html").stat().st_size / 1024
            print(f"  PDF of the network report (Chromium, from its {html_kb:,.0f} kB HTML, one run): "
                  f"{pdf_s:6.2f} s")
            figures["network"] = counts | {"stored_rows": rows}
            figures.update(network_repeat=args.network_repeat, network_report_s=round(report_s, 3), network_floor_s=round(floor_s, 4),
                           network_pdf_s=round(pdf_s, 3))
            if args.profile:
                profile_network(request)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
