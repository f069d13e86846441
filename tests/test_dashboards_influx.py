"""Acceptance 1 of issue 17: every query of every panel, variable and alert rule runs against a
real InfluxDB 1.6.7 holding a simulated week of the example site (backfilled, analysed, its
results stored, forwarded as the collector would), substituted as Grafana would, over a 6-hour,
a 7-day and a 30-day range ending at the data's end: each returns data and no error.

The week is built once for the module (about 60-90 s: backfill, analysis, forwarding).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards.catalog import all_dashboards
from dashboards.alerts import alert_rules
from dashboards.interpolate import GrafanaRange, expand, expand_alert_queries, expand_dashboard, variable_queries
from devices.site import Site, example_site_path, load_site

# A Wednesday 15:00 in Paris: today, this week and the last 6 hours all hold data.
END_S = dt.datetime(2026, 11, 18, 15, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
WEEK_S = 7 * 86400.0
# The day's figures (usage, balance) are stamped at local midnight, so a 6-hour range shows them
# only when it holds a midnight: a second 6-hour range ends at 03:00 (Grafana shows "No data"
# for a day's figure over 09:00-15:00, and it is right to).
NIGHT_END_S = dt.datetime(2026, 11, 18, 3, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
RANGES = {"6h": (END_S - 6 * 3600.0, END_S), "6h across midnight": (NIGHT_END_S - 6 * 3600.0, NIGHT_END_S),
          "7d": (END_S - 7 * 86400.0, END_S), "30d": (END_S - 30 * 86400.0, END_S)}
COLLECTOR_EVERY_S = 60.0


def collector_points(site_name: str, start_s: float, end_s: float, every_s: float = COLLECTOR_EVERY_S,
                     devices: tuple[str, ...] = ("meter:router-1", "meter:laser-1", "controller:mill-1-cnc")
                     ) -> list:
    """Self-metrics as the collector writes them (collector.runtime.metrics_snapshot's fields,
    integer counts, and device_states' point per device), one point every `every_s`: a steady
    edge box with one outage of InfluxDB (backlog grows then drains), the first device down for
    an hour, and points dropped by overflow."""
    from storage.points import Point
    from devices import vocabulary

    points = []
    forwarded = journaled = read = 0
    backlog = 0
    n = int((end_s - start_s) // every_s)
    for i in range(n):
        t = start_s + i * every_s
        read += 60
        journaled += 60
        outage = 2 * 86400 <= t - start_s < 2 * 86400 + 3600
        backlog = backlog + 60 if outage else max(0, backlog - 600)
        forwarded = journaled - backlog
        down = 1 if 4 * 86400 <= t - start_s < 4 * 86400 + 3600 else 0
        dropped = 0 if t - start_s < 5 * 86400 else 120
        points.append(Point(vocabulary.COLLECTOR, {"site": site_name}, {
            "points_read": read, "points_journaled": journaled, "points_forwarded": forwarded,
            "points_quarantined": 2 if t - start_s > 3 * 86400 else 0,
            "points_dropped": dropped, "dropped_overflow": dropped, "backlog": backlog,
            "oldest_unsent_age_s": float(t - start_s - 2 * 86400) if outage else 0.0,
            "influx_up": 0 if outage else 1, "devices_up": len(devices) - down, "devices_down": down,
            "reconnects": i // 1440 + down, "uptime_s": float(i * every_s),
        }, int(t * 1e9)))
        points += [Point(vocabulary.COLLECTOR, {"site": site_name, "device": device},
                         {"up": 0 if down and k == 0 else 1, "failures": i % 60 if down and k == 0 else 0},
                         int(t * 1e9)) for k, device in enumerate(devices)]
    return points


def fill_influx(influx_url: str, database: str, site: Site, start_s: float, end_s: float,
                workdir: Path) -> dict[str, float]:
    """Backfill [start_s, end_s) of `site` into a journal, analyse it and store the results,
    add the collector's self-metrics, and forward everything to InfluxDB 1.x (v1 API). Returns
    the seconds each step took."""
    from collector.forwarder import Forwarder
    from storage.influxdb import InfluxSettings, InfluxTarget
    from storage.journal import Journal
    from wattelier.history import backfill_history
    from wattelier.stored_analysis import run_once

    journal_path = workdir / "journal.sqlite"
    # the whole history is journaled before it is forwarded: room for all of it (a month of the
    # example site is more than the default 10 million points)
    site = site.model_copy(update={"journal": site.journal.model_copy(update={"max_points": 10**9})})
    took = {}
    started = time.monotonic()
    backfill_history(site, start_s, end_s, journal_path, seed=1)
    took["backfill_s"] = time.monotonic() - started
    started = time.monotonic()
    run_once(site, start_s, end_s, journal_path=journal_path, processes=None)
    took["analysis_s"] = time.monotonic() - started
    journal = Journal(journal_path, max_points=site.journal.max_points, overflow=site.journal.overflow)
    try:
        journal.put(collector_points(site.site.name, start_s, end_s))
        journal.commit()
    finally:
        journal.close()
    started = time.monotonic()
    forwarder = Forwarder(journal_path, InfluxTarget(InfluxSettings(influx_url, api="v1", database=database)))
    stop = asyncio.Event()
    stop.set()  # send what is there, then stop
    asyncio.run(forwarder.run(stop, drain_timeout_s=1800))
    took["forward_s"] = time.monotonic() - started
    return took


@pytest.fixture(scope="module")
def filled(influx_server, tmp_path_factory):
    """(server, database, site): a real InfluxDB 1.6.7 holding the example site's week."""
    site = load_site(example_site_path())
    database = "dashboards_week"
    fill_influx(influx_server.url, database, site, END_S - WEEK_S, END_S, tmp_path_factory.mktemp("week"))
    return influx_server, database, site


def _run(server, database: str, query: str) -> list[dict]:
    """Series of every statement of `query` (raises on a statement's error)."""
    import json
    import urllib.parse
    import urllib.request

    data = urllib.parse.urlencode({"q": query, "db": database, "epoch": "ms"}).encode()
    with urllib.request.urlopen(server.url + "/query", data=data, timeout=60) as resp:
        body = json.loads(resp.read())
    series = []
    for result in body["results"]:
        assert "error" not in result, f"{result['error']}\n{query}"
        series += result.get("series", [])
    return series


def _values(series: list[dict]) -> int:
    """Non-null values (besides time) in a query's answer."""
    return sum(1 for s in series for row in s["values"] for v in row[1:] if v is not None)


def _variables(server, database: str, site: Site) -> dict[str, list[str]]:
    """Each template variable's values, read as Grafana reads them (its own query, run with
    the variables before it substituted)."""
    values: dict[str, list[str]] = {}
    for name, query in variable_queries():
        series = _run(server, database, expand(query, values))
        values[name] = sorted({row[1] for s in series for row in s["values"]})
        assert values[name], f"variable {name} has no value: {expand(query, values)}"
    return values


def test_variables_list_the_site_its_machines_and_members(filled):
    server, database, site = filled
    values = _variables(server, database, site)
    assert values["site"] == [site.site.name]
    assert set(values["machine"]) == set(site.machines) | set(site.services)
    assert set(values["member"]) <= set(site.members) and len(values["member"]) >= 3


def _answers(server, database: str, site: Site, values, span: str) -> dict[tuple[str, str], int]:
    """(dashboard, panel) -> values answered by its queries over RANGES[span] (each query
    checked for errors and timed)."""
    from_s, to_s = RANGES[span]
    answered: dict[tuple[str, str], int] = {}
    for dashboard in all_dashboards(site):
        for panel_title, query in expand_dashboard(dashboard, GrafanaRange(from_s, to_s), values):
            started = time.monotonic()
            series = _run(server, database, query)
            assert time.monotonic() - started < 5, f"{panel_title} over {span}: too slow\n{query}"
            key = (dashboard["title"], panel_title)
            answered[key] = answered.get(key, 0) + _values(series)
    return answered


def test_every_panel_query_answers_with_data_over_7_and_30_days(filled):
    server, database, site = filled
    values = _variables(server, database, site)
    for span in ("7d", "30d"):
        answered = _answers(server, database, site, values, span)
        assert len(answered) >= 35
        assert [key for key, n in answered.items() if n == 0] == [], span


def test_every_panel_query_answers_with_data_over_6_hours(filled):
    """Each panel answers over one of the two 6-hour ranges; a panel empty over the afternoon's
    is one of the day's figures, and one empty over the night's reads today's results (today
    began 3 hours ago, before anyone came in)."""
    server, database, site = filled
    values = _variables(server, database, site)
    afternoon = _answers(server, database, site, values, "6h")
    night = _answers(server, database, site, values, "6h across midnight")
    assert [key for key in afternoon if afternoon[key] == 0 and night[key] == 0] == []
    day_figures = {(d["title"], p["title"]) for d in all_dashboards(site) for p in d["panels"]
                   if not p.get("timeFrom") and any('FROM "usage"' in t["query"] or 'FROM "balance"' in t["query"]
                                                    for t in p["targets"])}
    assert {key for key, n in afternoon.items() if n == 0} <= day_figures
    assert len([key for key, n in afternoon.items() if n > 0]) >= 25


def test_alert_rule_queries_answer(filled):
    server, database, site = filled
    provisioning = alert_rules(site)
    ran = 0
    for title, query in expand_alert_queries(provisioning, END_S):
        _run(server, database, query)  # no error; an alert query may rightly find nothing now
        ran += 1
    assert ran >= 3
    start_s = END_S - WEEK_S

    def value(rule: str, at_s: float) -> float | None:
        """The rule's query reduced as the rule does (last or mean of what it answers)."""
        query = next(q for t, q in expand_alert_queries(provisioning, at_s) if rule in t)
        rows = [row[1] for s in _run(server, database, query) for row in s["values"] if row[1] is not None]
        return rows[-1] if rows else None

    # collector_points: InfluxDB unreachable for an hour from day 2, a device down from day 4
    assert value("backlog grows", start_s + 2 * 86400 + 1800) > 0
    assert value("backlog grows", start_s + 3 * 86400) == 0
    def by_device(at_s: float) -> dict[str, float]:
        """The device rule's reduced value per device (one alert instance each, labelled)."""
        query = next(q for t, q in expand_alert_queries(provisioning, at_s) if "meter or controller down" in t)
        return {s["tags"]["device"]: [row[1] for row in s["values"] if row[1] is not None][-1]
                for s in _run(server, database, query)}

    # fires (below 1) for the device down, and only for it, naming it
    assert by_device(start_s + 4 * 86400 + 1800) == {"meter:router-1": 0, "meter:laser-1": 1,
                                                      "controller:mill-1-cnc": 1}
    assert set(by_device(start_s + 3 * 86400).values()) == {1}
    rule = next(r for g in provisioning["groups"] for r in g["rules"] if "meter or controller down" in r["title"])
    assert "{{ $labels.device }}" in rule["annotations"]["summary"]
    assert value("stopped reporting", END_S) >= 1  # it reports
    assert value("stopped reporting", END_S + 3600) is None  # silent: no data, which alerts
    # in the afternoon some machines are on (above their idle threshold): the rule sees them
    from dashboards.alerts import idle_threshold_w

    on = [value(f"{m} left on", END_S) > idle_threshold_w(site, m) for m in site.machines]
    assert any(on)
