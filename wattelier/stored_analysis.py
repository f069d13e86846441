"""`wattelier analyze --config site.toml`: analyse stored data and store the results.

Reads the analysis inputs from the journal, or from InfluxDB with InfluxQL when the site file
(or the command line) names one; runs analytics.pipeline.analyze over [start, end); writes the
results back as the `machine_state`, `job`, `session` and `usage` measurements. The window's
earlier results are replaced in the same step (journal: one transaction; InfluxDB: delete then
write), so re-running over the same window leaves the same points, never duplicates.

The periodic mode (`--every`) analyses from where the previous run stopped (kept in a small
state file) up to `settle_s` before now, so late points are in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analytics.inputs import JournalInputs
from analytics.pipeline import AnalysisOptions, AnalysisResult
from analytics.results import BalanceRecord, Figures, UsageRecord
from collector.influx_config import InfluxSettings
from collector.journal import Journal
from collector.points import Point
from devices import vocabulary
from devices.site import Site
from wattelier.json_output import json_document
from wattelier.performance import (
    analyze_in_processes,
    can_fork,
    cyclic_gc_paused,
    start_forked,
)

log = logging.getLogger("wattelier.analyze")

RESULT_MEASUREMENTS = [vocabulary.MACHINE_STATE, vocabulary.JOB, vocabulary.SESSION, vocabulary.USAGE,
                       vocabulary.BALANCE]


def _ns(t_s: float) -> int:
    return int(round(t_s * 1e9))


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as stored: no None, no NaN (line protocol has neither); floats stay floats."""
    out = {}
    for key, value in fields.items():
        if value is None:
            continue
        if type(value) is float and value - value != 0.0:  # NaN and infinities
            continue
        out[key] = value
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _stored_fields(kind: type, leave_out: tuple[str, ...] = ()) -> tuple[tuple[str, bool], ...]:
    """(name, is a number) of a record type's fields as stored, listed once per type: a week's
    results hold some 2 500 records with figures. Numbers (int or float) are stored as floats
    (physical quantities are always floats: docs/design.md, "One vocabulary with units in the
    names")."""
    return tuple((f.name, f.type.startswith(("float", "int"))) for f in dataclasses.fields(kind)
                 if f.name not in leave_out)


_FIGURE_FIELDS = _stored_fields(Figures)
_USAGE_FIELDS = _stored_fields(UsageRecord, ("machine", "day_start_s", "period", "day"))
_BALANCE_FIELDS = _stored_fields(BalanceRecord, ("period",))


def _figures(record: Any, listed: tuple[tuple[str, bool], ...] = _FIGURE_FIELDS) -> dict[str, Any]:
    """A record's `listed` fields as stored: numbers as floats, names as text, None and NaN
    left out (as _clean does)."""
    values = vars(record)
    out: dict[str, Any] = {}
    for name, is_number in listed:
        value = values[name]
        if value is None:
            continue
        if is_number:
            value = float(value)
            if value - value != 0.0:  # NaN and infinities
                continue
        out[name] = value
    return out


def result_points(site_name: str, result: AnalysisResult) -> list[Point]:
    """The analysis results as points of the storage schema (docs/design.md, "Storage schema").

    Every point lies inside the analysed window [start, end): a re-run of the window replaces
    exactly its own results, and the results of adjacent windows (the periodic mode's runs, a
    day analysed in pieces) never fall on one series and instant, where the later would
    overwrite the earlier. A job or session cut by the window's start is stored as its part
    inside the window: at the window's start, its end_s and duration_s those of the part
    (its figures already are), window_cut saying which edge cut it.

    machine_state: one point per state interval at its start (tags site, machine, state).
    job: one point per job at its start (tags site, machine, member when attributed).
    session: one point per session at its start (tags site, machine, member); jobs: how many
    jobs it holds (a count, stored as a float as every number).
    usage: one point per machine and site-local day at the start of the day's part inside the
    window (the day's start for a whole day; tags site, machine, period=day).
    balance: one point per site-local day, likewise (tags site, period=day): the main meter
    against the metered machines and services (the window's own row is not stored: a report
    sums the days it covers).
    """
    first, last = result.start_s, result.end_s
    points: list[Point] = []
    for s in result.state_intervals:
        points.append(Point(vocabulary.MACHINE_STATE, {"site": site_name, "machine": s.machine, "state": s.state},
                            _clean({"end_s": float(s.end_s), "duration_s": float(s.end_s - s.start_s),
                                    "energy_kwh": _float(s.energy_kwh)}), _ns(s.start_s)))
    for j in result.jobs:
        tags = {"site": site_name, "machine": j.machine}
        if j.member:
            tags["member"] = j.member
        a, b = max(j.start_s, first), min(j.end_s, last)
        points.append(Point(vocabulary.JOB, tags, _clean({
            "end_s": float(b), "duration_s": float(b - a),
            "energy_power_kwh": _float(j.energy_power_kwh),
            "energy_reconciled_kwh": _float(j.energy_reconciled_kwh),
            "program": j.program or None, "attributed": j.member is not None,
            "outcome": j.outcome, "window_cut": j.window_cut,
        }) | _figures(j), _ns(a)))
    for s in result.sessions:
        a, b = max(s.start_s, first), min(s.end_s, last)
        points.append(Point(vocabulary.SESSION, {"site": site_name, "machine": s.machine, "member": s.member},
                            _clean({"end_s": float(b), "duration_s": float(b - a),
                                    "processing_s": _float(s.processing_s), "jobs": float(s.jobs),
                                    "window_cut": s.window_cut})
                            | _figures(s), _ns(a)))
    for u in result.usage:
        points.append(Point(vocabulary.USAGE, {"site": site_name, "machine": u.machine, "period": "day"},
                            _figures(u, _USAGE_FIELDS), _ns(u.start_s)))
    for b in result.balance:
        if b.period == "window":
            continue
        points.append(Point(vocabulary.BALANCE, {"site": site_name, "period": "day"},
                            _figures(b, _BALANCE_FIELDS) | {"date": b.period}, _ns(b.start_s)))
    return points


@dataclasses.dataclass
class StoredRun:
    result: AnalysisResult
    points_written: int
    points_replaced: int
    source: str
    rendered: str | None = None  # render(result), when run_once was given render


def influxql_database(influx: InfluxSettings) -> str:
    """The database InfluxQL reads for a write target: the v1 database, or the v2 bucket
    through its DBRP mapping."""
    return influx.database if influx.api != "v2" else influx.bucket


def influxql_source(influx: InfluxSettings, rollups=None):
    """An InfluxQL reader (analytics.influxql_reader.InfluxQLInputs) for a write target's
    settings: basic authentication with a username, else the token."""
    from analytics.influxql_reader import InfluxQLInputs

    return InfluxQLInputs(influx.url, influxql_database(influx), username=influx.username,
                          password=influx.token if influx.username else None,
                          token=None if influx.username else influx.token, rollups=rollups)


def _pack_blocks(site: Site, journal_path: Path) -> None:
    """Pack the complete hours not packed yet into column blocks (the collector does it every
    few minutes; this covers journals written without it), so the read that follows is fast."""
    if not journal_path.exists():
        return  # the reader says there is no journal; do not create an empty one
    journal = Journal(journal_path, max_points=site.journal.max_points, overflow=site.journal.overflow)
    try:
        started = time.monotonic()
        packed = journal.compact()
        if packed:
            log.info("packed %d points into column blocks in %.1f s", packed, time.monotonic() - started)
    finally:
        journal.close()


def run_once(site: Site, start_s: float, end_s: float, *, journal_path: Path,
             influx: InfluxSettings | None = None, options: AnalysisOptions | None = None,
             processes: int | None = 1, rollups: bool = True,
             render: Callable[[AnalysisResult], str] | None = None) -> StoredRun:
    """Analyse [start_s, end_s) from the journal (or InfluxDB) and store the results there.

    processes: machines analysed in this many processes (wattelier.performance; None: one per
    processor available). The command line uses None; the default 1 never forks.
    rollups: read power through the hourly rollups (written by the journal when it packs an
    hour, forwarded to InfluxDB) where they give the same result (analytics.rollup_reader);
    False reads every sample.
    render: called with the result while a forked process (a thread where fork is not
    available) stores it; its text comes back in StoredRun.rendered, once the results are
    stored.
    """
    with cyclic_gc_paused():
        return _run_once(site, start_s, end_s, journal_path, influx, options, processes, rollups, render)


def _run_once(site: Site, start_s: float, end_s: float, journal_path: Path, influx: InfluxSettings | None,
              options: AnalysisOptions | None, processes: int | None, rollups: bool,
              render: Callable[[AnalysisResult], str] | None) -> StoredRun:
    settings = None  # RollupSettings, once the sessions are known (they cut energy)
    if influx is not None:
        from analytics.influxql_reader import InfluxQLInputs

        def open_source() -> InfluxQLInputs:
            return influxql_source(influx, rollups=settings)

        sessions = open_source().sessions(start_s, end_s)
        source = f"InfluxDB {influx.url} ({influxql_database(influx)})"
    else:
        from analytics.sessions import read_booked_sessions

        _pack_blocks(site, journal_path)
        sessions = read_booked_sessions(journal_path, start_s, end_s)
        source = f"journal {journal_path}"

        def open_source() -> JournalInputs:
            return JournalInputs(journal_path, rollups=settings)

    if rollups:
        from analytics.rollup_reader import RollupSettings, cut_context

        o = options or AnalysisOptions()
        settings = RollupSettings(cut_context(site, sessions, start_s, end_s, o), o.max_gap_s, o.hysteresis)
    # each process reads one machine at a time, as the analysis asks for it
    result = analyze_in_processes(open_source, sessions, site, start_s, end_s, options, processes)

    def store() -> tuple[int, int]:
        if influx is not None:
            return _store_in_influxdb(influx, site.site.name, start_s, end_s, result)
        return _store_in_journal(site, journal_path, start_s, end_s, result_points(site.site.name, result))

    if render is None:
        written, replaced = store()
        return StoredRun(result, written, replaced, source)
    # Storing (building the points and lines, then InfluxDB or SQLite) goes on in a forked
    # process while this one renders; the rendered text is returned only once the results are
    # stored. Without fork, a thread does it (the two then share one interpreter lock).
    if can_fork():
        storing = start_forked(store, "storing the results")
        try:
            rendered = render(result)
        except BaseException:
            storing.close()
            raise
        written, replaced = storing.result()  # raises what storing raised
        return StoredRun(result, written, replaced, source, rendered)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wattelier-store") as pool:
        stored_in_thread = pool.submit(store)
        rendered = render(result)
        written, replaced = stored_in_thread.result()
    return StoredRun(result, written, replaced, source, rendered)


def _store_in_influxdb(influx: InfluxSettings, site_name: str, start_s: float, end_s: float,
                       result: AnalysisResult) -> tuple[int, int]:
    """(written, replaced): the window's earlier results deleted (not counted), then the new
    points written. InfluxDB takes about as long to delete as this process takes to build the
    points and their lines (a week of 20 machines: some 45 ms each), so the DELETE request waits
    in a thread meanwhile; nothing is written before it has succeeded."""
    from collector.influx_adapter import InfluxTarget
    from collector.points import to_line

    target = InfluxTarget(influx)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wattelier-delete") as pool:
            deleted = pool.submit(target.delete_window, RESULT_MEASUREMENTS, site_name, _ns(start_s), _ns(end_s))
            try:
                points = result_points(site_name, result)
                lines = [to_line(p) for p in points]
            finally:
                deleted.result()  # raises what the DELETE raised
        for i in range(0, len(lines), 5000):
            target.write_lines(lines[i:i + 5000])
    finally:
        target.close()
    return len(points), 0


def _store_in_journal(site: Site, journal_path: Path, start_s: float, end_s: float,
                      points: list[Point]) -> tuple[int, int]:
    """(written, replaced), in one transaction (analytics results of the window replaced)."""
    journal = Journal(journal_path, max_points=site.journal.max_points, overflow=site.journal.overflow)
    try:
        replaced, written = journal.replace_window(RESULT_MEASUREMENTS, site.site.name, _ns(start_s),
                                                   _ns(end_s), points)
    finally:
        journal.close()
    return written, replaced


def _state_path(journal_path: Path) -> Path:
    return journal_path.with_name(journal_path.name + ".analysis.json")


def _iso(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_stored_analysis(site: Site, start_s: float | None, end_s: float | None, json_out: bool, *,
                        journal_path: Path | None = None, influx: InfluxSettings | None = None,
                        options: AnalysisOptions | None = None, every_s: float | None = None,
                        settle_s: float = 120.0, echo=print, processes: int | None = 1,
                        rollups: bool = True, stop: threading.Event | None = None) -> AnalysisResult | None:
    """The stored mode of `wattelier analyze`: once over [start, end) (default: the last 24 h),
    or periodically (every_s) from where the last run stopped; processes and rollups as for
    run_once. Periodically, `stop` ends the loop between runs (the command sets it on Ctrl-C
    or SIGTERM); a KeyboardInterrupt ends it at once, the run in progress storing nothing."""
    journal_path = Path(journal_path or site.journal.path)
    if every_s is None:
        end = end_s if end_s is not None else time.time()
        start = start_s if start_s is not None else end - 86400.0
        render = (lambda result: json_document(result.to_json())) if json_out else None
        run = run_once(site, start, end, journal_path=journal_path, influx=influx, options=options,
                       processes=processes, rollups=rollups, render=render)
        if json_out:
            echo(run.rendered)
        else:
            _report(run, start, end, echo)
        return run.result
    state_path = _state_path(journal_path)
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            try:
                state = json.loads(state_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                state = {}
            start = state.get("until_s") or start_s or (time.time() - every_s - settle_s)
            end = time.time() - settle_s
            if end > start:
                run = run_once(site, start, end, journal_path=journal_path, influx=influx, options=options,
                               processes=processes, rollups=rollups)
                _report(run, start, end, echo)
                _write_state(state_path, end)
            stop.wait(every_s)
    except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: stop now
        pass  # a run cut short stored nothing (one transaction) and left the state as it was
    try:
        until = json.loads(state_path.read_text(encoding="utf-8")).get("until", "its start")
    except (OSError, ValueError):
        until = "its start"
    echo(f"stopped; the next periodic analysis continues from {until}")
    return None


def _write_state(state_path: Path, until_s: float) -> None:
    """Where the periodic analysis stopped, replaced in one step (never half written)."""
    partial = state_path.with_name(state_path.name + ".partial")
    partial.write_text(json.dumps({"until_s": until_s, "until": _iso(until_s)}), encoding="utf-8")
    os.replace(partial, state_path)


def _report(run: StoredRun, start_s: float, end_s: float, echo) -> None:
    from wattelier.analysis_summary import summary_lines

    doc = run.result.to_json()
    echo(f"analysed {_iso(start_s)} to {_iso(end_s)} from the {run.source}: "
         f"{len(doc.get('jobs', []))} jobs, {len(doc.get('sessions', []))} sessions, "
         f"{len(doc.get('members', []))} members; {run.points_written} result points written"
         + (f" ({run.points_replaced} earlier ones replaced)" if run.points_replaced else ""))
    for line in summary_lines(doc):
        echo(line)
