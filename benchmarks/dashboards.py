"""Benchmark of the dashboards' queries (issue 17): each panel query's time over 30 days of the
example site's data in InfluxDB 1.6.7 (target: every one under 1 s), beside two baselines
measured in the same run over the same range:

- `SELECT count("energy_kwh") FROM "usage"`: a trivial query, what any request costs;
- `SELECT mean("power_w") FROM "meter"`: one pass over the 1 Hz samples, what a panel that read
  raw power over 30 days would cost (the dashboards read the rollups and results instead).

The data: 30 days of the example site backfilled (1 Hz meters, controllers, bookings),
analysed and stored, with the collector's self-metrics every minute, forwarded to InfluxDB
(tests/test_dashboards_influx.fill_influx); about 10 minutes the first time, kept in --workdir
for the next runs. Each figure is the median of --repeat runs of the query as Grafana would
send it (dashboards.interpolate), the variables at All.

Run: python benchmarks/dashboards.py [--days 30] [--repeat 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 1.0


def _query(url: str, database: str, query: str) -> tuple[float, int]:
    """(seconds, values) of one query; raises on a statement's error."""
    data = urllib.parse.urlencode({"q": query, "db": database, "epoch": "ms"}).encode()
    started = time.perf_counter()
    with urllib.request.urlopen(url + "/query", data=data, timeout=600) as resp:
        body = json.loads(resp.read())
    elapsed = time.perf_counter() - started
    values = 0
    for result in body["results"]:
        if "error" in result:
            raise RuntimeError(f"{result['error']}: {query}")
        values += sum(len(s["values"]) for s in result.get("series", []))
    return elapsed, values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of data, and the range queried")
    parser.add_argument("--repeat", type=int, default=5, help="runs per query (the median is shown)")
    parser.add_argument("--workdir", help="keep the journal and InfluxDB data here and reuse them")
    args = parser.parse_args(argv)

    from dashboards.catalog import all_dashboards
    from dashboards.interpolate import GrafanaRange, expand, expand_dashboard, variable_queries
    from devices.site import example_site_path, load_site
    from tests.servers import InfluxServer
    from tests.test_dashboards_influx import END_S, fill_influx

    site = load_site(example_site_path())
    start_s = END_S - args.days * 86400.0
    with tempfile.TemporaryDirectory(prefix="wattelier-bench-dashboards-") as scratch:
        work = Path(args.workdir) if args.workdir else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        marker = work / "built.json"
        fresh = not (marker.exists() and json.loads(marker.read_text()) == {"days": args.days})
        with InfluxServer(work / "influx") as server:
            if fresh:
                journal = work / "data"
                journal.mkdir(exist_ok=True)
                took = fill_influx(server.url, "bench", site, start_s, END_S, journal)
                marker.write_text(json.dumps({"days": args.days}))
                print(f"{args.days} days of the example site written, analysed and forwarded: "
                      + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()), flush=True)
            values: dict[str, list[str]] = {}
            for name, query in variable_queries():
                data = urllib.parse.urlencode({"q": expand(query, values), "db": "bench"}).encode()
                with urllib.request.urlopen(server.url + "/query", data=data) as resp:
                    series = json.loads(resp.read())["results"][0].get("series", [])
                values[name] = sorted({row[1] for s in series for row in s["values"]})
            grafana_range = GrafanaRange(start_s, END_S)
            window = f"time >= {int(start_s * 1000)}ms and time <= {int(END_S * 1000)}ms"
            baselines = {
                "baseline: count of usage points": f'SELECT count("energy_kwh") FROM "usage" WHERE {window}',
                "baseline: mean of every 1 Hz power sample": f'SELECT mean("power_w") FROM "meter" WHERE {window}',
            }

            def timed(query: str) -> tuple[float, int]:
                runs = [_query(server.url, "bench", query) for _ in range(args.repeat)]
                return statistics.median(t for t, _ in runs), runs[0][1]

            rows = [(title, *timed(query)) for title, query in baselines.items()]
            for dashboard in all_dashboards(site):
                for panel, query in expand_dashboard(dashboard, grafana_range, values):
                    rows.append((f"{dashboard['title'].split(' · ')[0]} / {panel}", *timed(query)))
    floor = rows[0][1]
    width = max(len(r[0]) for r in rows)
    print(f"{'query over ' + str(args.days) + ' days (median of ' + str(args.repeat) + ')':<{width}}  "
          f"{'time':>9}  {'x trivial':>9}  {'rows':>6}")
    for title, seconds, count in rows:
        print(f"{title:<{width}}  {seconds * 1000:7.1f} ms  {seconds / floor:9.1f}  {count:6d}")
    panels = rows[2:]
    slowest = max(panels, key=lambda r: r[1])
    verdict = "all under" if slowest[1] < TARGET_S else "NOT all under"
    print(f"{len(panels)} panel queries, slowest {slowest[1] * 1000:.0f} ms ({slowest[0]}): {verdict} "
          f"the {TARGET_S:g} s target")


if __name__ == "__main__":
    main()
