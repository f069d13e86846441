"""`wattelier analyze`: energy, time, CO2e and cost per machine, job, session and member.

Offline: ``--power FILE.csv`` (``time,machine,power_w[,energy_import_kwh]``) with optional
``--sessions FILE.csv`` and ``--config SITE.toml``. Stored: ``--config SITE.toml`` without
``--power`` reads the journal or InfluxDB named by the site file. The command only parses and
calls library functions (analytics.csv_input, analytics.pipeline).
"""

from __future__ import annotations

from pathlib import Path

import typer

from wattelier.commands.common import exit_influxdb_unreadable, site_or_exit
from wattelier.json_output import json_document

POWER_HELP = "Power readings, CSV: time,machine,power_w[,energy_import_kwh] (offline mode)."
SESSIONS_HELP = "Sessions, CSV: machine,member,start,end (as `wattelier simulate --out` writes)."
CONFIG_HELP = ("Site file (TOML): time zone, opening hours, thresholds, tariffs, emission "
               "factors. Without --power: analyse the data stored for this site. Default: the "
               "example site shipped with wattelier.")


def _time_or_exit(text: str | None, option: str, tz) -> float | None:
    """Unix seconds of --from/--to: ISO 8601 (without offset: in the site's time zone, as
    `sessions add` reads it) or Unix seconds."""
    from analytics.bookings.times import parse_time_s

    if text is None:
        return None
    try:
        return parse_time_s(text, tz)
    except ValueError as exc:
        typer.echo(f"{option}: {exc}", err=True)
        raise typer.Exit(2)


def _fail(problems: list[str], what: str) -> None:
    """Print the problems of an input file (one line when there is one) and exit 2."""
    notice = f"refusing to analyse: fix the {what} (no data is skipped)"
    if len(problems) == 1:
        typer.echo(f"{problems[0]}; {notice}", err=True)
    else:
        for problem in problems:
            typer.echo(problem, err=True)
        typer.echo(notice, err=True)
    raise typer.Exit(2)


def _read_sessions(path: Path, site):
    """Sessions of a CSV file with the checks of `wattelier sessions import` (analytics.sessions):
    with a site, unknown machines and members are refused and times without offset are in its
    zone; double bookings of one machine are listed as warnings (their overlap is shared)."""
    from analytics.attribution import double_bookings
    from analytics.pipeline import iso_utc
    from analytics.sessions import SessionsError, read_sessions_csv

    try:
        if site is None:
            sessions = read_sessions_csv(path)
        else:
            sessions = read_sessions_csv(path, site.tz, machines=list(site.machines) + list(site.services),
                                         members=list(site.members))
    except SessionsError as exc:
        _fail([f"{p} (--config SITE.toml: its time zone)" if "no UTC offset" in p else p
               for p in exc.problems], "sessions file")
    for i, j in double_bookings([s.machine for s in sessions], [s.start_s for s in sessions],
                                [s.end_s for s in sessions]):
        a, b = sessions[i], sessions[j]
        typer.echo(f"warning: {path}: {a.machine} is booked twice at once, by {a.member} and "
                   f"{b.member} (from {iso_utc(max(a.start_s, b.start_s))}): the overlap is shared "
                   "equally between them", err=True)
    return sessions


def _stop_on_signals():
    """Ctrl-C (SIGINT) or `systemctl stop` (SIGTERM) during --every: the run in progress
    finishes and stores its results, then the loop stops (exit 0). A second signal stops at
    once (a run cut short stores nothing, one transaction)."""
    import signal
    import threading

    stop = threading.Event()

    def handler(signum, frame):  # noqa: ARG001
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def _summary(doc: dict) -> None:
    from wattelier.analysis_summary import summary_lines

    for line in summary_lines(doc):
        typer.echo(line)
    for warning in doc["warnings"]:
        typer.echo(f"warning: {warning}", err=True)


def analyze(
    power: Path | None = typer.Option(None, "--power", help=POWER_HELP),
    sessions: Path | None = typer.Option(None, "--sessions", help=SESSIONS_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    emission_factor: float | None = typer.Option(
        None, "--emission-factor", min=0.0,
        help="Emission factor [kg CO2e/kWh], overrides the site's (location-based by default)."),
    hourly_factors: Path | None = typer.Option(
        None, "--hourly-factors", help="Hourly emission factors, CSV: time,kg_co2e_per_kwh, or RTE's consumption "
        "intensity download (date_heure_utc;intensite_emissions_conso in g/kWh)."),
    start: str | None = typer.Option(None, "--from", help="Window start: ISO 8601 (without offset: "
                                     "in the site's time zone) or Unix seconds (default: first "
                                     "reading; stored mode: 24 h before --to)."),
    end: str | None = typer.Option(None, "--to", help="Window end: ISO 8601 (without offset: in "
                                   "the site's time zone) or Unix seconds (default: last reading; "
                                   "stored mode: now)."),
    merge_gap: float = typer.Option(60.0, "--merge-gap", min=0.0,
                                    help="Pauses shorter than this join processing into one job [s]."),
    allocate_services: bool = typer.Option(
        False, "--allocate-services", help="Split shared services' energy over machines by processing time."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document to stdout."),
    journal: Path | None = typer.Option(None, "--journal", help="Stored mode: the journal to read and "
                                        "write (default: the site file's journal.path)."),
    influx_url: str | None = typer.Option(None, "--influx-url", help="Stored mode: read and write "
                                          "InfluxDB (InfluxQL) instead of the journal."),
    influx_api: str | None = typer.Option(None, "--influx-api", help="v1, v2 or auto."),
    influx_db: str | None = typer.Option(None, "--influx-db", help="v1 database."),
    every: float | None = typer.Option(None, "--every", min=10.0, help="Stored mode: analyse again "
                                       "every this many seconds, from where the last run stopped."),
    processes: int | None = typer.Option(None, "--processes", min=1, help="Stored mode: analyse the "
                                         "machines in this many processes (default: one per processor)."),
    rollups: bool = typer.Option(True, "--rollups/--no-rollups", help="Stored mode: read power "
                                 "through the hourly rollups where they give the same result "
                                 "(--no-rollups: every sample)."),
) -> None:
    """Energy, time, CO2e and cost per machine, job, session and member.

    Offline (--power FILE.csv): one JSON document or a summary, nothing stored. Stored
    (without --power, for --config SITE.toml or the example site): reads the journal, or InfluxDB when the site file or
    --influx-url names one, and writes the machine_state, job, session and usage measurements
    back (re-running a window replaces its results)."""
    site = site_or_exit(config) if config is not None or power is None else None
    tz = site.tz if site is not None else None
    start_s = _time_or_exit(start, "--from", tz)
    end_s = _time_or_exit(end, "--to", tz)
    if power is None:  # stored mode, for the site file given or the shipped example
        if start_s is not None and end_s is not None and not end_s > start_s:
            typer.echo("--to must be after --from", err=True)
            raise typer.Exit(2)
        from analytics.pipeline import AnalysisOptions
        from wattelier.commands.common import influx_or_exit
        from wattelier.stored_analysis import run_stored_analysis

        influx = influx_or_exit(site, influx_url, influx_api, influx_db, None, None)
        options = AnalysisOptions(merge_gap_s=merge_gap, allocate_shared_services=allocate_services,
                                  emission_factor_kg_per_kwh=emission_factor)
        stop = _stop_on_signals() if every is not None else None
        from storage.errors import InfluxError

        try:
            run_stored_analysis(site, start_s, end_s, json_out, journal_path=journal, influx=influx,
                                options=options, every_s=every, echo=typer.echo, processes=processes,
                                stop=stop,
                                rollups=rollups)
        except FileNotFoundError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2)
        except InfluxError as exc:
            exit_influxdb_unreadable(exc)
        except ValueError as exc:  # the analysis refuses its inputs (e.g. no factor for the year)
            typer.echo(f"cannot analyse: {exc}", err=True)
            raise typer.Exit(2)
        return

    from analytics.csv_input import CsvError, read_hourly_factors_csv, read_power_csv
    from analytics.pipeline import AnalysisOptions
    from analytics.inputs import MAIN_METER, meter_accuracy
    from analytics.pipeline import analyze as run_analysis
    from analytics.records import MachineData

    try:
        series = read_power_csv(power)
    except CsvError as exc:
        _fail(exc.problems, "power file")
    session_list = _read_sessions(sessions, site) if sessions is not None else []
    hourly = None
    if hourly_factors is not None:
        left_out: list[int] = []
        try:
            hourly = read_hourly_factors_csv(hourly_factors, left_out)
        except CsvError as exc:
            _fail(exc.problems, "hourly factors file")
        if left_out:
            typer.echo(f"{hourly_factors}: {len(left_out)} row(s) without an intensity (hours not "
                       f"published yet, from line {left_out[0]}) left out", err=True)
    times = [a for s in series.values() for a in (s.power_time_s, s.counter_time_s) if len(a)]
    if not times:
        typer.echo(f"{power}: no readings (no power_w nor energy_import_kwh value)", err=True)
        raise typer.Exit(2)
    first = min(float(a[0]) for a in times)
    last = max(float(a[-1]) for a in times)
    start_s = first if start_s is None else start_s
    end_s = last if end_s is None else end_s
    if not end_s > start_s:
        typer.echo(f"the window is empty: {start_s} .. {end_s} (give --from and --to)", err=True)
        raise typer.Exit(2)
    machines = []
    for name, s in series.items():
        spec = site.machines.get(name) if site is not None else None
        service = site.services.get(name) if site is not None else None
        rated = spec.rated_power_w if spec is not None else (service.rated_power_w if service else None)
        share, accuracy = meter_accuracy(site.meters_of(name)) if site is not None else (None, "unknown")
        machines.append(MachineData(
            name, s.power_time_s, s.power_w, counter_time_s=s.counter_time_s,
            energy_import_kwh=s.energy_import_kwh, rated_power_w=rated,
            is_service=service is not None, relative_accuracy=share, accuracy=accuracy,
            is_main=site is not None and name == MAIN_METER and spec is None and service is None))
    options = AnalysisOptions(merge_gap_s=merge_gap, allocate_shared_services=allocate_services,
                              emission_factor_kg_per_kwh=emission_factor, hourly_emission_factors=hourly)
    try:
        result = run_analysis(machines, session_list, site, start_s, end_s, options)
    except ValueError as exc:
        typer.echo(f"cannot analyse: {exc}", err=True)
        raise typer.Exit(2)
    doc = result.to_json()
    if json_out:
        typer.echo(json_document(doc))
    else:
        _summary(doc)
