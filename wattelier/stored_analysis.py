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
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from analytics.inputs import JournalInputs
from analytics.pipeline import AnalysisOptions, AnalysisResult
from analytics.result_points import RESULT_MEASUREMENTS, ns, result_points
from devices.site import Site
from storage.influx_config import InfluxSettings
from storage.journal import Journal
from storage.results_store import store_in_influxdb, store_in_journal
from wattelier.json_output import json_document
from wattelier.performance import (
    analyze_in_processes,
    can_fork,
    cyclic_gc_paused,
    start_forked,
)

log = logging.getLogger("wattelier.analyze")


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


def _pack_hours(site: Site, journal_path: Path) -> None:
    """Pack the complete hours not packed yet (storage.journal: the collector does it every
    few minutes; this covers journals written without it), so the read that follows is fast."""
    if not journal_path.exists():
        return  # the reader says there is no journal; do not create an empty one
    journal = Journal(journal_path, max_points=site.journal.max_points, overflow=site.journal.overflow)
    try:
        started = time.monotonic()
        packed = journal.compact()
        if packed:
            log.info("packed %d points into hours in %.1f s", packed, time.monotonic() - started)
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
        from storage.bookings import read_booked_sessions

        _pack_hours(site, journal_path)
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
        window = (site.site.name, ns(start_s), ns(end_s))
        if influx is not None:
            return store_in_influxdb(influx, RESULT_MEASUREMENTS, *window,
                                     lambda: result_points(site.site.name, result))
        return store_in_journal(journal_path, site.journal, RESULT_MEASUREMENTS, *window,
                                result_points(site.site.name, result))

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
