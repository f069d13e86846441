"""`wattelier analyze --config`: the same results from the journal and from a real InfluxDB 1.6.7,
in one process and in several (wattelier.performance)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from analytics.inputs import EDGE_MARGIN_S, JournalInputs
from wattelier.performance import WorkerError, analyze_in_processes
from analytics.pipeline import analyze
from storage.influxdb import InfluxSettings
from storage.journal import Journal
from storage.points import Point
from devices import vocabulary
from devices.site import example_site_path, load_site
from tests.analytics_sim import machine_data, sessions, weekday_morning, workshop
from tests.stores import forward_all
from wattelier.cli import app
from wattelier import stored_analysis
from storage.bookings_store import store_sessions
from analytics.result_points import RESULT_MEASUREMENTS
from wattelier.stored_analysis import run_once

HOURS = 4


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Four hours of the simulated example workshop (1 Hz meters, controller changes of the
    machines with a controller link, bookings) in a journal."""
    tmp = tmp_path_factory.mktemp("stored")
    site = load_site(example_site_path())
    start = weekday_morning(site)
    end = start + HOURS * 3600.0
    w = workshop(site, start, end, seed=5)
    journal_path = tmp / "journal.sqlite"
    journal = Journal(journal_path, max_points=10**8)
    controlled = 0
    for md in machine_data(site, w, start, end):
        meter = next(m for m, spec in site.meters.items() if spec.feeds == md.name)
        tags = {vocabulary.TAG_SITE: site.site.name, vocabulary.TAG_METER: meter, vocabulary.TAG_MACHINE: md.name}
        journal.put([Point(vocabulary.METER, tags, {"power_w": float(p), "energy_import_kwh": float(e)}, int(t * 1e9))
                     for t, p, e in zip(md.power_time_s.tolist(), md.power_w.tolist(),
                                        md.energy_import_kwh.tolist())])
        ctl = md.controller
        if ctl is not None:
            controlled += 1
            cnc_tags = {vocabulary.TAG_SITE: site.site.name, vocabulary.TAG_MACHINE: md.name}
            journal.put([Point(vocabulary.CNC, cnc_tags, {"execution": e, "mode": m, "program": p}, int(t * 1e9))
                         for t, e, m, p in zip(ctl.time_s.tolist(), ctl.execution, ctl.mode, ctl.program)])
    assert 0 < controlled < len(site.machines)  # machines with and without a controller link
    journal.commit()
    booked = sessions(w, end)
    store_sessions(journal, site.site.name, booked)
    journal.close()
    config = tmp / "site.toml"
    config.write_text(example_site_text(journal_path), encoding="utf-8")
    return site, config, journal_path, start, end, len(booked)


def example_site_text(journal_path) -> str:
    text = example_site_path().read_text(encoding="utf-8")
    return text.replace('path = "wattelier-journal.sqlite"', f'path = "{journal_path}"')


def _analyze(config, start, end, *extra) -> dict:
    result = CliRunner().invoke(app, ["analyze", "--config", str(config), "--from", str(start), "--to", str(end),
                                      "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _comparable(doc: dict) -> dict:
    return {k: doc[k] for k in ("machines", "sessions", "jobs", "members", "usage", "states")}


def test_journal_and_influxdb_in_one_and_in_two_processes_give_the_same_result(stored, influx_server):
    site, config, journal_path, start, end, booked = stored
    one = _analyze(config, start, end, "--processes", "1", "--no-rollups")
    two = _analyze(config, start, end, "--processes", "2", "--no-rollups")
    assert _comparable(two) == _comparable(one)
    # through the journal's rollups: the same records, numbers to float rounding
    for processes in ("1", "2"):
        assert_same_numbers(_comparable(_analyze(config, start, end, "--processes", processes)), _comparable(one))
    assert len(one["sessions"]) == booked >= 5 and len(one["jobs"]) >= 5
    assert sum(m["energy_kwh"] for m in one["machines"]) > 1.0

    # every point (measurements, bookings) forwarded to InfluxDB, then read back with InfluxQL
    settings = InfluxSettings(influx_server.url, api="v1", database="stored_analysis")
    forwarder = asyncio.run(forward_all(journal_path, settings))
    journal = Journal(journal_path)
    assert forwarder.stats.forwarded == journal.count() > HOURS * 3600 * len(site.machines)
    journal.close()
    influx = ["--influx-url", influx_server.url, "--influx-api", "v1", "--influx-db", "stored_analysis"]
    for processes in ("1", "2"):
        # every sample read back: the same numbers, to the last digit
        from_influx = _analyze(config, start, end, *influx, "--processes", processes, "--no-rollups")
        assert json.dumps(_comparable(from_influx), sort_keys=True) == json.dumps(_comparable(one), sort_keys=True)
        # through the rollups: the same records, numbers to float rounding (stand-in samples
        # sum the same trapezoids in another order)
        through_rollups = _analyze(config, start, end, *influx, "--processes", processes)
        assert_same_numbers(_comparable(through_rollups), _comparable(one))


def assert_same_numbers(got, expected, where: str = "", rel: float = 1e-9) -> None:
    """got == expected, with floats equal to within rel (and 1e-12 absolute)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key in expected:
            assert_same_numbers(got[key], expected[key], f"{where}.{key}", rel)
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: {len(got)} vs {len(expected)}"
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_same_numbers(a, b, f"{where}[{i}]", rel)
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(got, (int, float)) and abs(got - expected) <= max(rel * abs(expected), 1e-12), \
            f"{where}: {got!r} vs {expected!r}"
    else:
        assert got == expected, f"{where}: {got!r} vs {expected!r}"


def test_two_processes_match_the_one_process_pipeline(stored):
    site, _, journal_path, start, end, _ = stored
    reader = JournalInputs(journal_path)
    from analytics.sessions import read_booked_sessions

    booked = read_booked_sessions(journal_path, start, end)
    expected = analyze(reader.machine_data(site, start, end), booked, site, start, end).to_json()
    reader.close()
    got = analyze_in_processes(lambda: JournalInputs(journal_path), booked, site, start, end, processes=2).to_json()
    assert got == expected


def test_a_process_with_quick_machines_takes_more_of_them(stored, tmp_path):
    """Machines are taken one at a time by whichever process is free: when this process's
    reads are slow, the worker analyses more than the half a fixed deal would give it, and
    every machine is analysed once."""
    site, _, journal_path, start, end, _ = stored
    parent = os.getpid()
    log = tmp_path / "taken.txt"

    class SlowHere(JournalInputs):
        def iter_machine_data(self, site, start_s, end_s, names=None):
            if os.getpid() == parent:
                time.sleep(1.0)  # long beside a machine's analysis, even on a loaded machine
            with open(log, "a", encoding="utf-8") as out:  # one short append per machine
                out.write(f"{os.getpid()} {' '.join(names)}\n")
            return super().iter_machine_data(site, start_s, end_s, names)

    got = analyze_in_processes(lambda: SlowHere(journal_path), [], site, start, end, processes=2)
    taken = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    names = [n for _, *group in taken for n in group]
    assert sorted(names) == sorted(list(site.machines) + list(site.services) + ["site"])  # main meter
    assert [m["machine"] for m in got.to_json()["machines"]] == list(site.machines) + list(site.services)
    by_worker = sum(len(group) for pid, *group in taken if int(pid) != parent)
    assert by_worker > len(names) / 2 + 1, taken


def test_a_failing_or_vanishing_worker_is_reported(stored):
    site, _, journal_path, start, end, _ = stored
    parent = os.getpid()

    class Broken(JournalInputs):
        def __init__(self, *args, **kwargs):  # every process opens its source first
            if os.getpid() != parent:
                raise ValueError("unreadable block in machine data")
            super().__init__(*args, **kwargs)

    # raised again as itself (callers catch the same types as in one process), with a note
    # naming the process and its traceback
    with pytest.raises(ValueError, match="unreadable block in machine data") as raised:
        analyze_in_processes(lambda: Broken(journal_path), [], site, start, end, processes=2)
    assert any(note.startswith("in the process analysing ") and "__init__" in note
               for note in raised.value.__notes__)

    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("cannot travel")

    class BrokenBadly(JournalInputs):
        def __init__(self, *args, **kwargs):  # every process opens its source first
            if os.getpid() != parent:
                raise Unpicklable("a worker-only failure")
            super().__init__(*args, **kwargs)

    with pytest.raises(WorkerError, match="failed:(.|\n)*a worker-only failure"):
        analyze_in_processes(lambda: BrokenBadly(journal_path), [], site, start, end, processes=2)

    class Vanishing(JournalInputs):
        def __init__(self, *args, **kwargs):  # every process opens its source first
            if os.getpid() != parent:
                os._exit(3)
            super().__init__(*args, **kwargs)

    with pytest.raises(WorkerError, match="stopped without a result \\(exit code 3\\)"):
        analyze_in_processes(lambda: Vanishing(journal_path), [], site, start, end, processes=2)


def _stored_results(journal_path) -> list[tuple]:
    db = sqlite3.connect(journal_path)
    marks = ",".join("?" for _ in RESULT_MEASUREMENTS)
    rows = db.execute(f"SELECT s.key, p.time_ns, p.fields FROM points p JOIN series s ON s.id = p.series_id "
                      f"WHERE s.measurement IN ({marks}) ORDER BY s.key, p.time_ns", RESULT_MEASUREMENTS).fetchall()
    db.close()
    return rows


def test_results_stored_by_a_forked_process_while_rendering(stored, monkeypatch):
    """With render (the --json command), a forked process stores while this one renders: the
    same points as storing here, the rendered text only once stored, and a failing store
    raised here as itself, naming the process."""
    site, _, journal_path, start, end, _ = stored
    plain = run_once(site, start, end, journal_path=journal_path)
    in_here = _stored_results(journal_path)
    assert plain.points_written == len(in_here) > 0 and plain.rendered is None
    collecting = []  # the cycle collector is paused during the run, and running again after
    forked = run_once(site, start, end, journal_path=journal_path,
                      render=lambda r: collecting.append(gc.isenabled()) or f"{len(r.jobs)} jobs")
    assert forked.rendered == f"{len(plain.result.jobs)} jobs"
    assert collecting == [False] and gc.isenabled()
    assert (forked.points_written, forked.points_replaced) == (plain.points_written, len(in_here))
    assert _stored_results(journal_path) == in_here

    parent = os.getpid()
    rendered = []

    def locked(*args):
        assert os.getpid() != parent  # stored in the forked process
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(stored_analysis, "store_in_journal", locked)
    with pytest.raises(sqlite3.OperationalError, match="database is locked") as raised:
        run_once(site, start, end, journal_path=journal_path, render=lambda r: rendered.append(r) or "text")
    assert len(rendered) == 1  # rendered while storing, never returned
    assert gc.isenabled()
    assert any(note.startswith("in the process storing the results") for note in raised.value.__notes__)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_periodic_mode_stops_cleanly_and_keeps_its_place(stored, how):
    """Ctrl-C or `systemctl stop` during --every: a message, exit 0, no traceback, and the state
    file still says where the next run starts."""
    _, config, journal_path, _, _, _ = stored
    state = journal_path.with_name(journal_path.name + ".analysis.json")
    state.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "wattelier.cli", "analyze", "--config", str(config),
                             "--every", "10", "--processes", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        until = json.loads(state.read_text())["until"]
        proc.send_signal(how)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "analysed " in out and f"stopped; the next periodic analysis continues from {until}" in out
    assert json.loads(state.read_text())["until"] == until


def test_rollups_stand_in_for_most_samples_and_change_no_result(stored, influx_server):
    """The journal's hourly rollups, forwarded to InfluxDB, replace most samples (read raw: only
    the minutes where a state changes or the analysis cuts energy), for any window."""
    from analytics.influxql_reader import InfluxQLInputs
    from analytics.pipeline import AnalysisOptions
    from analytics.rollup_reader import RollupSettings, cut_context

    site, config, journal_path, start, end, _ = stored
    settings = InfluxSettings(influx_server.url, api="v1", database="stored_rollups")
    _analyze(config, start, end)  # packs the hours (and writes their rollups) first
    asyncio.run(forward_all(journal_path, settings))
    plain = InfluxQLInputs(influx_server.url, "stored_rollups")
    booked = plain.sessions(start, end)
    options = AnalysisOptions()
    rolled = InfluxQLInputs(influx_server.url, "stored_rollups", rollups=RollupSettings(
        cut_context(site, booked, start, end, options), options.max_gap_s, options.hysteresis))
    raw_total = read_total = 0
    for name, machine in site.machines.items():
        th = machine.thresholds
        read = rolled.rollups.read(name, start - EDGE_MARGIN_S, end + EDGE_MARGIN_S,
                                   (th.standby_w, th.idle_w, th.processing_w) if th else None, machine.rated_power_w)
        assert read is not None, name
        samples = len(plain.power_and_counter(name, start, end)[0])
        assert read.histogram.total == samples  # calibration counts every sample
        raw_total += samples
        read_total += read.raw_samples
    print("raw samples read", read_total, "of", raw_total)
    assert read_total < 0.2 * raw_total, (read_total, raw_total)
    # controller changes: one request per machine with a controller link, none for the others
    before = plain.requests
    controlled = {name for name in site.machines if plain.controller(name, start, end) is not None}
    assert controlled == {name for name in site.machines if site.controller_of(name)}
    assert plain.requests - before == 1 + len(controlled)  # and one SHOW TAG VALUES
    # a window cut anywhere (inside minutes, sessions cut, a partial hour at each end)
    influx = ["--influx-url", influx_server.url, "--influx-api", "v1", "--influx-db", "stored_rollups"]
    a, b = start + 1234.5, end - 777.25
    assert_same_numbers(_comparable(_analyze(config, a, b, *influx)),
                        _comparable(_analyze(config, a, b, *influx, "--no-rollups")))


def test_journal_rollups_stand_in_only_for_hours_as_they_were_packed(stored, tmp_path):
    """From the journal, rollups replace most samples, but never for an hour whose points
    changed since it was packed: a late reading (a row in its packed hour until the next
    packing) and readings deleted to make room (the hour's rollup is frozen)."""
    from analytics.pipeline import AnalysisOptions
    from analytics.rollup_reader import RollupSettings, cut_context
    from analytics.sessions import read_booked_sessions

    site, config, journal_path, start, end, _ = stored
    _analyze(config, start, end)  # packs the hours (and writes their rollups) first
    copy = tmp_path / "journal.sqlite"
    with sqlite3.connect(journal_path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        # a copy no forwarder writes from: its new rows are packed without waiting to be sent
        dst.execute("DELETE FROM forward_cursor")
        dst.execute("DELETE FROM forward_target")
    booked = read_booked_sessions(copy, start, end)
    options = AnalysisOptions()
    settings = RollupSettings(cut_context(site, booked, start, end, options), options.max_gap_s, options.hysteresis)

    def raw_samples_read() -> tuple[int, int]:
        plain, rolled = JournalInputs(copy), JournalInputs(copy, rollups=settings)
        read_total = all_total = 0
        for name, machine in site.machines.items():
            th = machine.thresholds
            read = rolled.rollups.read(name, start - EDGE_MARGIN_S, end + EDGE_MARGIN_S,
                                       (th.standby_w, th.idle_w, th.processing_w) if th else None,
                                       machine.rated_power_w)
            assert read is not None, name
            samples = len(plain.power_and_counter(name, start, end)[0])
            assert read.histogram.total == samples  # calibration counts every sample
            read_total, all_total = read_total + read.raw_samples, all_total + samples
        plain.close()
        rolled.close()
        return read_total, all_total

    def same_as_every_sample() -> None:
        rolled = analyze_in_processes(lambda: JournalInputs(copy, rollups=settings), booked, site, start, end,
                                      processes=1).to_json()
        every = analyze_in_processes(lambda: JournalInputs(copy), booked, site, start, end, processes=1).to_json()
        assert_same_numbers(_comparable(rolled), _comparable(every))

    read, total = raw_samples_read()
    print("raw samples read", read, "of", total)
    assert read < 0.2 * total, (read, total)
    same_as_every_sample()
    # a late reading of 5 kW in the second hour of the last machine, and, to make room for it,
    # the 600 oldest points deleted (the first machine's first ten minutes)
    name = list(site.machines)[-1]
    meter = next(m for m, spec in site.meters.items() if spec.feeds == name)
    tags = {vocabulary.TAG_SITE: site.site.name, vocabulary.TAG_METER: meter, vocabulary.TAG_MACHINE: name}
    journal = Journal(copy)
    count = journal.count()
    journal.close()
    journal = Journal(copy, max_points=count + 1 - 600)
    journal.put([Point(vocabulary.METER, tags, {"power_w": 5000.0}, int((start + 5400.5) * 1e9))])
    journal.commit()
    counters = journal.counters()  # sent points go first (this journal may have been forwarded)
    assert (counters.get("dropped:journal_full_oldest_deleted", 0)
            + counters.get("journal_full_forwarded_deleted", 0)) == 600
    same_as_every_sample()  # the late reading's hour: not whole as packed, read raw
    assert journal.compact() > 0  # both hours packed again: the frozen one keeps its old rollup
    journal.close()
    same_as_every_sample()


def test_rollups_without_minutes_are_read_raw(stored, influx_server):
    """An hour whose rollup lost its minutes (written by another program, or cut short) is
    read from the raw samples: the same result as reading every sample."""
    from storage.influxdb import InfluxTarget
    from storage.points import to_line

    site, config, journal_path, start, end, _ = stored
    settings = InfluxSettings(influx_server.url, api="v1", database="stored_unread")
    _analyze(config, start, end)  # packs the hours (and writes their rollups) first
    asyncio.run(forward_all(journal_path, settings))
    hours = influx_server.query(f'SELECT "samples" FROM "{vocabulary.ROLLUP}" GROUP BY *', "stored_unread")
    assert len(hours) == len(site.machines) + len(site.services)
    target = InfluxTarget(settings)
    blanked = 0
    for series in hours:
        lines = [to_line(Point(vocabulary.ROLLUP, series["tags"], {"minutes": ""}, t))
                 for t, _ in series["values"][1:3]]
        target.write_lines(lines)
        blanked += len(lines)
    target.close()
    assert blanked >= 2 * len(site.machines)
    influx = ["--influx-url", influx_server.url, "--influx-api", "v1", "--influx-db", "stored_unread"]
    assert_same_numbers(_comparable(_analyze(config, start, end, *influx)),
                        _comparable(_analyze(config, start, end, *influx, "--no-rollups")))


def test_rerun_on_influxdb_replaces_the_window_results(stored, influx_server):
    """Results of an earlier run in the window (here: made-up points of every result
    measurement) are deleted in one request before the new ones are written; an error in any
    statement of a request is raised."""
    from storage.errors import InfluxRejected
    from storage.influxdb import InfluxTarget
    from storage.points import to_line

    site, config, journal_path, start, end, _ = stored
    settings = InfluxSettings(influx_server.url, api="v1", database="stored_rerun")
    asyncio.run(forward_all(journal_path, settings))
    target = InfluxTarget(settings)
    stale = [Point(m, {"site": site.site.name, "machine": "stale"}, {"end_s": start + 60.0}, int((start + 30) * 1e9))
             for m in RESULT_MEASUREMENTS]
    target.write_lines([to_line(p) for p in stale])
    influx = ["--influx-url", influx_server.url, "--influx-api", "v1", "--influx-db", "stored_rerun"]
    doc = _analyze(config, start, end, *influx)
    for m in RESULT_MEASUREMENTS:
        machines = {row[1] for series in influx_server.query(f'SHOW TAG VALUES FROM "{m}" WITH KEY = "machine"',
                                                             "stored_rerun") for row in series["values"]}
        assert "stale" not in machines and machines <= set(site.machines) | set(site.services), m
    stored_states = influx_server.query('SELECT COUNT("end_s") FROM "machine_state"', "stored_rerun")
    assert stored_states[0]["values"][0][1] == len(doc["states"])
    with pytest.raises(InfluxRejected, match="database not found"):
        target.query_v1('SHOW MEASUREMENTS LIMIT 1; SELECT * FROM "no_such_database".."m"', "stored_rerun")
    target.close()


def test_csv_answers_read_as_json_answers(influx_server):
    """query_csv gives the series `query` gives (values as text), reports a statement's
    error, and InfluxDB's CSV leaving out a missing database is why callers check rows."""
    from analytics.influxql_reader import InfluxQLInputs
    from storage.errors import InfluxError
    from storage.influxql import parse_csv_answer
    from storage.influxdb import InfluxTarget

    settings = InfluxSettings(influx_server.url, api="v1", database="csv_answers")
    target = InfluxTarget(settings)
    target.ensure_database()
    target.write_lines(['m,machine=a,meter=x text="ab,c\\"d",power_w=1.5 1000000000',
                        'm,machine=a,meter=x power_w=0.1 2000000000',
                        'm,machine=b,meter=y text="e",power_w=-2e-05 3000000000'])
    target.close()
    source = InfluxQLInputs(influx_server.url, "csv_answers")
    statement = 'SELECT "text", "power_w" FROM "m" GROUP BY "machine", "meter"'
    as_json = source.query(statement)
    as_csv = source.query_csv(statement)
    assert [s["tags"] for s in as_csv] == [s["tags"] for s in as_json] == [
        {"machine": "a", "meter": "x"}, {"machine": "b", "meter": "y"}]
    for a, b in zip(as_csv, as_json):
        assert a["columns"] == b["columns"] == ["time", "text", "power_w"]
        assert [[r[0], r[1], float(r[2])] for r in a["values"]] == b["values"]
    assert as_csv[0]["values"][0][1] == 'ab,c"d' and as_csv[0]["values"][1][1] is None
    with pytest.raises(InfluxError, match="error parsing query"):
        source.query_csv("SELECT nonsense FROM")
    # InfluxDB 1.6 answers nothing at all, not an error, for a database that is not there
    assert InfluxQLInputs(influx_server.url, "no_such_database").query_csv(statement) == []
    with pytest.raises(InfluxError, match="database not found"):
        InfluxQLInputs(influx_server.url, "no_such_database").query(statement)
    with pytest.raises(InfluxError, match="overloaded"):
        parse_csv_answer('error\n"overloaded"\n', "test")
