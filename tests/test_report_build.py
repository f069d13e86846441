"""The report model from stored results (reports.build, storage.stored_results) and its CSV
and JSON writers (issue 16).

One real analysis of two simulated site-local days (10 s samples of every meter, the main
meter included, the bookings the simulation made), stored into the journal and, from the same
samples forwarded there, into a real InfluxDB 1.6.7; the report is then made from the stored
results alone."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt

import numpy as np
import orjson
import pytest

from analytics.influxql_reader import InfluxQLInputs
from analytics.inputs import counter_resolution_kwh
from storage.journal_reader import JournalReader
from storage.stored_results import (REPORT_MEASUREMENTS, influxdb_reader, journal_reader,
                                      read_influxdb, read_journal)
from storage.influxdb import InfluxSettings, InfluxTarget
from storage.journal import Journal
from storage.points import Point, to_line
from devices import vocabulary
from devices.site import example_site_path, load_site
from reports.build import build_report
from reports.render_csv import write_csvs
from reports.render_json import write_json
from tests.analytics_sim import sessions, workshop
from tests.stores import forward_all
from storage.bookings_store import store_sessions
from analytics.result_points import result_points
from wattelier.stored_analysis import run_once

DAYS = 2
STEP_S = 10.0


def _clock():
    """A fixed clock for queried_at and generated_at."""
    return lambda: 1_800_000_000.0


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, influx_server):
    """Two site-local days analysed and stored into the journal and into InfluxDB."""
    tmp = tmp_path_factory.mktemp("report")
    site = load_site(example_site_path())
    day0 = dt.datetime(2026, 3, 10, tzinfo=site.tz).timestamp()
    end = dt.datetime(2026, 3, 10 + DAYS, tzinfo=site.tz).timestamp()
    w = workshop(site, day0 - 600.0, end + 600.0, seed=7)
    times = np.arange(day0 - 600.0, end + 600.0, STEP_S)
    journal_path = tmp / "journal.sqlite"
    journal = Journal(journal_path, max_points=10**8)
    for meter, spec in site.meters.items():
        values = w.meter_values_series(meter, times)
        tags = {vocabulary.TAG_SITE: site.site.name, vocabulary.TAG_METER: meter,
                vocabulary.TAG_MACHINE: spec.feeds}
        journal.put([Point(vocabulary.METER, tags, {"power_w": float(p), "energy_import_kwh": float(e)},
                           int(t * 1e9))
                     for t, p, e in zip(times.tolist(), values["power_w"].tolist(),
                                        values["energy_import_kwh"].tolist())])
    journal.commit()
    store_sessions(journal, site.site.name, sessions(w, end))
    journal.close()
    database = "report_build"
    settings = InfluxSettings(influx_server.url, api="v1", database=database)
    asyncio.run(forward_all(journal_path, settings))  # the samples and bookings, before any result
    run = run_once(site, day0, end, journal_path=journal_path, rollups=False)
    run_once(site, day0, end, journal_path=journal_path, influx=settings, rollups=False)
    source = InfluxQLInputs(influx_server.url, database)
    return site, journal_path, source, day0, end, run.result, settings


def _report(site, read, start, end, store="journal", **kwargs):
    return build_report([(site, example_site_path())], read, start, end, language="fr", month=None,
                        wattelier_version="test", store=store, now=_clock(), **kwargs)


def test_stored_rows_are_the_same_from_the_journal_and_influxdb(analysed):
    site, journal_path, source, day0, end, result, _ = analysed
    from_journal = read_journal(journal_path, site.site.name, day0, end)
    before = source.requests
    from_influx = read_influxdb(source, site.site.name, day0, end)
    assert source.requests == before + 1  # one request for every measurement
    assert set(from_journal) == set(REPORT_MEASUREMENTS)
    assert from_influx == from_journal
    assert len(from_journal[vocabulary.USAGE]) == DAYS * (len(site.machines) + len(site.services))
    assert len(from_journal[vocabulary.BALANCE]) == DAYS
    assert len(from_journal[vocabulary.JOB]) == len(result.jobs) > 10
    usage = from_journal[vocabulary.USAGE][0]
    assert isinstance(usage["energy_kwh"], float) and isinstance(usage["is_service"], bool)
    assert {"threshold_idle_w", "thresholds_source", "accuracy", "sessions_energy_kwh",
            "sessions_jobs_energy_kwh", "standby_outside_opening_kwh"} <= set(usage)
    # another site's name reads nothing
    assert not any(read_journal(journal_path, "elsewhere", day0, end).values())


def test_machine_figures_add_up_and_equal_the_analysis(analysed):
    site, journal_path, _, day0, end, result, _ = analysed
    report = _report(site, journal_reader(journal_path), day0, end)
    (one,) = report.sites
    assert one.analysed and one.missing_dates == []
    analysis = {m.machine: m for m in result.machines}
    assert [m.machine for m in one.machines] == list(analysis)
    for m in one.machines:
        assert m.energy_kwh == pytest.approx(m.jobs_kwh + m.sessions_other_kwh + m.unattributed_kwh,
                                             abs=1e-9)
        assert m.energy_kwh == pytest.approx(analysis[m.machine].energy_kwh, abs=1e-6)
        assert m.unattributed_kwh == pytest.approx(analysis[m.machine].unattributed_energy_kwh, abs=1e-6)
        assert m.standby_outside_opening_kwh == pytest.approx(
            analysis[m.machine].standby_outside_opening_kwh, abs=1e-9)
        assert m.processing_h * 3600 == pytest.approx(analysis[m.machine].processing_s, abs=1e-6)
        assert m.is_service == analysis[m.machine].is_service
        assert m.thresholds_w == pytest.approx(list(analysis[m.machine].thresholds_w))
        assert m.jobs == analysis[m.machine].jobs
        assert m.standby_saving_per_year_kwh == pytest.approx(m.standby_outside_opening_kwh * 365.25 / DAYS)
    totals = one.totals
    for key in ("energy_kwh", "energy_uncertainty_kwh", "co2e_kg", "co2e_uncertainty_kg", "cost",
                "processing_h"):
        assert getattr(totals, key) == pytest.approx(sum(getattr(m, key) for m in one.machines), rel=1e-12)
    assert totals.coverage_power + totals.coverage_counter + totals.coverage_missing == pytest.approx(1.0)
    assert totals.jobs == len(result.jobs) and totals.sessions == len(result.sessions)
    assert sum(m.energy_kwh for m in one.members) == pytest.approx(sum(s.energy_kwh for s in one.sessions))
    assert len(one.days) == DAYS * len(one.machines)
    # the balance: each day and the period, as the analysis found them
    assert [b.period for b in one.balance][-1] == "period" and len(one.balance) == DAYS + 1
    window = next(b for b in result.balance if b.period == "window")
    assert one.balance[-1].main_kwh == pytest.approx(window.main_kwh, rel=1e-9)
    assert one.balance[-1].metered_kwh == pytest.approx(window.metered_kwh, rel=1e-9)
    assert [f.name for f in one.method.emission_factors] == [result.emission_factor.name]
    factor = one.method.emission_factors[0]
    assert factor.value_kg_per_kwh == result.emission_factor.kg_co2e_per_kwh
    assert factor.source == result.emission_factor.source and factor.zone == result.emission_factor.zone
    assert one.previous is None and one.change is None  # the days before were never analysed


def test_a_partly_analysed_period_is_not_reported(analysed):
    site, journal_path, _, day0, end, _, _ = analysed
    read = journal_reader(journal_path)
    longer = dt.datetime(2026, 3, 10 + DAYS + 1, tzinfo=site.tz).timestamp()
    (one,) = _report(site, read, day0, longer).sites
    assert not one.analysed and one.missing_dates == ["2026-03-12"]
    assert one.totals is None and one.machines == [] and one.jobs == []
    # starting the day before: that day is missing too
    (one,) = _report(site, read, day0 - 86400.0, end).sites
    assert one.missing_dates == ["2026-03-09"]
    # the second day against the first: a previous period, and the change
    (second,) = _report(site, read, day0 + 86400.0, end).sites
    (first,) = _report(site, read, day0, day0 + 86400.0).sites
    assert second.analysed and second.previous == first.totals
    assert second.change.energy == pytest.approx(second.totals.energy_kwh / first.totals.energy_kwh - 1)


def _without_times(report) -> dict:
    doc = report.to_json()
    for key in ("queried_at", "generated_at", "store"):
        doc["manifest"].pop(key)
    return doc


def test_the_same_report_from_the_journal_and_from_influxdb(analysed):
    site, journal_path, source, day0, end, _, _ = analysed
    from_journal = _report(site, journal_reader(journal_path), day0, end)
    from_influx = _report(site, influxdb_reader(source), day0, end, store="influxdb")
    assert orjson.dumps(_without_times(from_influx), option=orjson.OPT_SORT_KEYS) == \
        orjson.dumps(_without_times(from_journal), option=orjson.OPT_SORT_KEYS)
    assert from_journal.manifest.site_files[0].file == example_site_path().name
    assert len(from_journal.manifest.results_sha256) == 64


def test_two_sites_in_one_influxdb_make_a_network_report(analysed):
    """A second workshop forwarding to the same InfluxDB: the `site` tag keeps them apart."""
    site, _, source, day0, end, result, settings = analysed
    other = site.model_copy(update={"site": site.site.model_copy(update={"name": "atelier-b"})})
    target = InfluxTarget(settings)
    try:
        target.write_lines([to_line(p) for p in result_points("atelier-b", result)])
    finally:
        target.close()
    report = build_report([(site, example_site_path()), (other, example_site_path())],
                          influxdb_reader(source), day0, end, language="en", month=None,
                          wattelier_version="test", store="influxdb", now=_clock())
    a, b = report.sites
    assert (a.site, b.site) == (site.site.name, "atelier-b") and a.analysed and b.analysed
    assert b.totals.energy_kwh == pytest.approx(a.totals.energy_kwh, rel=1e-12)
    assert report.network.energy_kwh == pytest.approx(a.totals.energy_kwh + b.totals.energy_kwh)
    assert report.network.jobs == a.totals.jobs + b.totals.jobs
    assert report.network.co2e_kg == pytest.approx(a.totals.co2e_kg + b.totals.co2e_kg)


def test_csv_numbers_are_the_json_numbers(analysed, tmp_path):
    site, journal_path, _, day0, end, _, _ = analysed
    report = _report(site, journal_reader(journal_path), day0, end)
    json_path = tmp_path / "report.json"
    write_json(report, json_path)
    first = json_path.read_bytes()
    write_json(report, json_path)
    assert json_path.read_bytes() == first  # deterministic bytes
    doc = orjson.loads(first)
    paths = write_csvs(report, tmp_path / "csv")
    assert [p.name for p in paths] == ["machines.csv", "members.csv", "sessions.csv", "jobs.csv", "days.csv"]
    site_doc = doc["sites"][0]
    for path, key in zip(paths, ("machines", "members", "sessions", "jobs", "days")):
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == len(site_doc[key]) > 0, key
        for row, expected in zip(rows, site_doc[key]):
            assert row["site"] == site.site.name
            for column, text in row.items():
                value = expected.get(column)
                if isinstance(value, float) and text:
                    assert float(text) == value, (key, column)
                elif isinstance(value, bool):
                    assert text == ("true" if value else "false")
    machine = next(r for r in csv.DictReader((tmp_path / "csv" / "machines.csv").open(encoding="utf-8")))
    assert "energy_kwh" in machine and "," not in machine["energy_kwh"]


def test_a_day_analysed_in_pieces_reports_as_the_whole_day(analysed, tmp_path):
    """The periodic analysis stores a day in pieces, one per run: each piece is its own point
    (inside its window), none overwrites another, and the day's report equals the report of
    the day analysed at once."""
    import shutil

    site, journal_path, _, day0, _, _, _ = analysed
    day1 = day0 + 86400.0
    whole = _report(site, journal_reader(journal_path), day0, day1).sites[0]
    copy = tmp_path / "journal.sqlite"
    shutil.copy(journal_path, copy)
    noon = day0 + 12 * 3600.0
    for a, b in ((day0, noon), (noon, day1)):
        run_once(site, a, b, journal_path=copy, rollups=False)
    rows = read_journal(copy, site.site.name, day0, day1)
    machines = len(site.machines) + len(site.services)
    assert len(rows[vocabulary.USAGE]) == 2 * machines  # two pieces of the day per machine
    pieced = _report(site, journal_reader(copy), day0, day1).sites[0]
    assert pieced.analysed and pieced.missing_dates == []
    assert len(pieced.days) == machines  # one row per date and machine
    reader = JournalReader(copy)

    def step_kwh(feeds: str) -> float:  # the meter's counter resolution at its day's reading
        ((name, meter),) = site.meters_of(feeds).items()
        (series,) = reader.series(vocabulary.METER, meter=name)
        _, counter_kwh = reader.field(series.series_id, "energy_import_kwh", int(day1 * 1e9) - 10**10)
        return counter_resolution_kwh(meter.model, float(counter_kwh[-1]))

    # each piece is reconciled to the counter within its resolution r (at the cut, too)
    for w, p in zip(whole.machines, pieced.machines):
        assert p.machine == w.machine
        assert p.energy_kwh == pytest.approx(w.energy_kwh, abs=2 * step_kwh(w.machine) + 1e-9)
        assert p.processing_h == pytest.approx(w.processing_h, abs=1e-6)
    assert pieced.balance[-1].main_kwh == pytest.approx(whole.balance[-1].main_kwh,
                                                        abs=2 * step_kwh("site") + 1e-9)
    # a piece lost between two others is a missing day, not a smaller one
    run_once(site, noon, noon + 3600.0, journal_path=copy, rollups=False)
    Journal(copy).replace_window([vocabulary.USAGE], site.site.name, int(noon * 1e9),
                                 int((noon + 3600.0) * 1e9), [])
    assert _report(site, journal_reader(copy), day0, day1).sites[0].missing_dates == ["2026-03-10"]
