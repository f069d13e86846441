"""`wattelier report`: the monthly impact report of one site or a network of sites, from stored
analysis results, as HTML, PDF, CSV and JSON. The command only parses and calls
wattelier.report_run.make_report."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from wattelier.commands.common import (INFLUX_API_HELP, INFLUX_BUCKET_HELP, INFLUX_DB_HELP,
                                       INFLUX_ORG_HELP, INFLUX_URL_HELP, exit_influxdb_unreadable,
                                       influx_or_exit, site_or_exit)


def _formats_or_exit(text: str) -> tuple[str, ...]:
    from wattelier.report_run import FORMATS

    asked = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in asked if f not in FORMATS]
    if unknown or not asked:
        typer.echo(f"--format {text}: give one or more of {','.join(FORMATS)}, separated by commas",
                   err=True)
        raise typer.Exit(2)
    return tuple(f for f in FORMATS if f in asked)


def _window_or_exit(site, month: str | None, start: str | None, end: str | None):
    """(start_s, end_s, month): --month, or --from and --to, or the last complete month."""
    from analytics.bookings.times import parse_time_s
    from reports.build import month_window
    from wattelier.report_run import last_month

    if month is not None and (start is not None or end is not None):
        typer.echo("give --month, or --from and --to, not both", err=True)
        raise typer.Exit(2)
    if start is not None or end is not None:
        if start is None or end is None:
            typer.echo("give both --from and --to (or --month YYYY-MM)", err=True)
            raise typer.Exit(2)
        try:
            start_s, end_s = parse_time_s(start, site.tz), parse_time_s(end, site.tz)
        except ValueError as exc:
            typer.echo(f"--from/--to: {exc}", err=True)
            raise typer.Exit(2)
        if not end_s > start_s:
            typer.echo("--to must be after --from", err=True)
            raise typer.Exit(2)
        return start_s, end_s, None
    month = month or last_month(site, time.time())
    try:
        start_s, end_s = month_window(site.tz, month)
    except ValueError:
        typer.echo(f"--month {month}: give a month as YYYY-MM, e.g. 2026-10", err=True)
        raise typer.Exit(2)
    return start_s, end_s, month


def report(
    config: list[Path] = typer.Option(None, "--config", metavar="SITE.toml", help="Site file (TOML); give it once per "
                                      "site for a network report from one central InfluxDB. "
                                      "Default: the example site."),
    month: str = typer.Option(None, "--month", metavar="YYYY-MM", help="The site-local month to "
                              "report (default: the last complete month)."),
    start: str = typer.Option(None, "--from", help="Window start instead of --month: ISO 8601 "
                              "(without offset: in the site's time zone) or Unix seconds."),
    end: str = typer.Option(None, "--to", help="Window end (with --from)."),
    out: Path = typer.Option(Path("report"), "--out", help="Folder the report files are written into."),
    formats: str = typer.Option("json,csv,html,pdf", "--format", help="Formats, comma-separated: "
                                "json, csv, html, pdf (a missing PDF renderer is said in one line; "
                                "the others are still written)."),
    lang: str = typer.Option(None, "--lang", help="fr or en (default: fr for a site in France, "
                             "else en)."),
    statements: bool = typer.Option(False, "--statements", help="Also write one statement per "
                                    "member (their sessions and jobs with energy, CO2e and cost) "
                                    "into OUT/statements/."),
    analyze: bool = typer.Option(False, "--analyze", help="Analyse first what the window lacks "
                                 "(as `wattelier analyze` would), instead of saying so."),
    journal: Path = typer.Option(None, "--journal", help="Read the results from this journal "
                                 "(default: the site file's journal.path)."),
    influx_url: str = typer.Option(None, "--influx-url", help=INFLUX_URL_HELP + " Read the results "
                                   "from InfluxDB (InfluxQL) instead of the journal."),
    influx_api: str = typer.Option(None, "--influx-api", help=INFLUX_API_HELP),
    influx_db: str = typer.Option(None, "--influx-db", help=INFLUX_DB_HELP),
    influx_bucket: str = typer.Option(None, "--influx-bucket", help=INFLUX_BUCKET_HELP),
    influx_org: str = typer.Option(None, "--influx-org", help=INFLUX_ORG_HELP),
) -> None:
    """Write the impact report of a month (or --from/--to) from stored analysis results:
    report.html (self-contained), report.pdf, report.json and machines, members, sessions, jobs
    and days as CSV."""
    from storage.journal_schema import JournalError
    from devices.site import example_site_path
    from wattelier.report_run import ReportError, ReportRequest, default_language, make_report

    paths = list(config or [example_site_path()])
    sites = [(site_or_exit(path), path) for path in paths]
    names = [s.site.name for s, _ in sites]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        typer.echo(f"--config: the site {twice[0]!r} is given twice; give each site's file once", err=True)
        raise typer.Exit(2)
    first = sites[0][0]
    if lang is not None and lang not in ("fr", "en"):
        typer.echo(f"--lang {lang}: give fr or en", err=True)
        raise typer.Exit(2)
    chosen = _formats_or_exit(formats)
    start_s, end_s, month = _window_or_exit(first, month, start, end)
    influx = influx_or_exit(first, influx_url, influx_api, influx_db, influx_bucket, influx_org)
    if journal is not None and influx_url is not None:
        typer.echo("give --journal or --influx-url, not both", err=True)
        raise typer.Exit(2)
    if journal is not None:
        influx = None
    if out.exists() and not out.is_dir():
        typer.echo(f"--out {out}: is a file, not a folder; give a folder (it is made if missing)", err=True)
        raise typer.Exit(2)
    request = ReportRequest(sites=sites, start_s=start_s, end_s=end_s, month=month, out_dir=out,
                            journal_path=journal, influx=influx, formats=chosen,
                            language=lang or default_language(first), statements=statements,
                            analyze=analyze)
    from storage.errors import InfluxError

    try:
        outcome = make_report(request, echo=typer.echo)
    except ReportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    except InfluxError as exc:
        exit_influxdb_unreadable(exc)
    except JournalError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    except ValueError as exc:  # --analyze: the analysis refuses its inputs (e.g. no factor for the year)
        typer.echo(f"cannot analyse: {exc}", err=True)
        raise typer.Exit(2)
    except OSError as exc:
        typer.echo(f"--out {out}: cannot write ({exc.strerror}); give a folder you can write to", err=True)
        raise typer.Exit(2)
    for note in outcome.notes:
        typer.echo(f"warning: {note}", err=True)
    for path in outcome.written:
        typer.echo(f"wrote {path}")
    html = out / "report.html"
    typer.echo(f"report: {html if html in outcome.written else outcome.written[0]}")
