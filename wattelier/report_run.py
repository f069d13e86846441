"""`wattelier report`: read stored results, build the report model, write its formats.

The steps, each a library function of its own: the store's reader (storage.stored_results),
the model (reports.build), the formats (reports.render_json, render_csv, render_html,
render_pdf). This module only chooses the store, analyses what has not been analysed when
asked to (wattelier.stored_analysis), and writes the files in order, saying what it wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storage.influx_config import InfluxSettings
from devices.site import Site

FORMATS = ("json", "csv", "html", "pdf")
"""Every format a report is written in, in the order they are written (the PDF is printed
from the HTML)."""

FRENCH_ZONES = frozenset({
    "Europe/Paris", "America/Guadeloupe", "America/Martinique", "America/Cayenne",
    "Indian/Reunion", "Indian/Mayotte", "America/Miquelon", "Pacific/Noumea", "Pacific/Tahiti",
    "America/St_Barthelemy", "America/Marigot", "Pacific/Wallis",
})
"""Time zones of France and its overseas territories: a site there gets its report in French."""


class ReportError(Exception):
    """What stops a report, in one line: what is wrong and what to do."""


def default_language(site: Site) -> str:
    """fr for a site in France (by its time zone), en elsewhere."""
    return "fr" if site.site.timezone in FRENCH_ZONES else "en"


def last_month(site: Site, now_s: float) -> str:
    """The last complete site-local month before now, as YYYY-MM."""
    import datetime as dt

    today = dt.datetime.fromtimestamp(now_s, site.tz).date()
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


@dataclass
class ReportRequest:
    """sites: each site with its file's path (hashed into the manifest); [start_s, end_s) in
    Unix seconds, month "YYYY-MM" when the window is one site-local month."""

    sites: list[tuple[Site, Path]]
    start_s: float
    end_s: float
    month: str | None
    out_dir: Path
    journal_path: Path | None = None
    influx: InfluxSettings | None = None
    formats: tuple[str, ...] = FORMATS
    language: str = "fr"
    statements: bool = False
    analyze: bool = False


@dataclass
class ReportOutcome:
    report: object  # reports.model.Report
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each: what was not made, and why


def _store(request: ReportRequest):
    """(reader, the store's name for the manifest)."""
    from storage.stored_results import influxdb_reader, journal_reader
    from wattelier.stored_analysis import influxql_source

    if request.influx is not None:
        source = influxql_source(request.influx)
        return influxdb_reader(source), f"InfluxDB {request.influx.url} ({source.database})"
    if len(request.sites) > 1:
        raise ReportError("several sites are reported from one central InfluxDB that their "
                          "collectors forward to: give --influx-url (or [influxdb] in the site files)")
    path = request.journal_path or Path(request.sites[0][0].journal.path)
    if not path.exists():
        raise ReportError(f"{path}: no journal here; give --journal FILE (or --influx-url URL) "
                          "where `wattelier analyze` stored its results")
    return journal_reader(path), f"journal {path.name}"


def _analyse(request: ReportRequest, site: Site, echo: Callable[[str], None]) -> None:
    """Analyse the whole window for one site and store its results (wattelier analyze)."""
    from wattelier.stored_analysis import run_once

    echo(f"analysing {site.site.name} over the report's window first (--analyze)")
    started = time.monotonic()
    journal_path = request.journal_path or Path(site.journal.path)
    run = run_once(site, request.start_s, request.end_s, journal_path=journal_path,
                   influx=request.influx, processes=None)
    echo(f"analysed {site.site.name} in {time.monotonic() - started:.0f} s: {len(run.result.jobs)} "
         f"jobs, {len(run.result.sessions)} sessions, {run.points_written} result points stored")


def analyse_command(site_path: Path, request: ReportRequest) -> str:
    """The `wattelier analyze` command that stores the window's results for one site."""
    from analytics.pipeline import iso_utc

    store = ""
    if request.influx is not None:
        store = f" --influx-url {request.influx.url}"
    elif request.journal_path is not None:
        store = f" --journal {request.journal_path}"
    return (f"wattelier analyze --config {site_path}{store} --from {iso_utc(request.start_s)} "
            f"--to {iso_utc(request.end_s)}")


def make_report(request: ReportRequest, echo: Callable[[str], None] = print) -> ReportOutcome:
    """Build the report of the request's window and write its formats into out_dir.

    A site without stored results for some days of the window is analysed first when
    request.analyze, else reported as not analysed (never as zeros), with the command to run;
    ReportError when no site has results at all. A missing PDF renderer is a note, the other
    formats are still written."""
    from reports.build import build_report
    from wattelier import __version__

    read, store = _store(request)

    def build():
        return build_report([(s, p) for s, p in request.sites], read, request.start_s, request.end_s,
                            language=request.language, month=request.month,
                            wattelier_version=__version__, store=store)

    started = time.monotonic()
    report = build()
    unanalysed = [(site, path, part) for (site, path), part in zip(request.sites, report.sites)
                  if not part.analysed]
    if unanalysed and request.analyze:
        for site, _, _ in unanalysed:
            _analyse(request, site, echo)
        report = build()
        unanalysed = [(site, path, part) for (site, path), part in zip(request.sites, report.sites)
                      if not part.analysed]
    outcome = ReportOutcome(report)
    for site, path, part in unanalysed:
        days = part.missing_dates
        span = days[0] if len(days) == 1 else f"{days[0]} .. {days[-1]}"
        outcome.notes.append(f"{site.site.name}: no stored results for {len(days)} day(s) ({span}); "
                             f"run `{analyse_command(path, request)}` (or add --analyze)")
    if len(unanalysed) == len(request.sites):
        raise ReportError("; ".join(outcome.notes) + "; nothing written")
    echo(f"read and built in {time.monotonic() - started:.1f} s from the {store}")
    _write(request, report, outcome, echo)
    return outcome


def _write(request: ReportRequest, report, outcome: ReportOutcome, echo: Callable[[str], None]) -> None:
    from reports.render_csv import write_csvs
    from reports.render_html import write_html, write_statements
    from reports.render_json import write_json
    from reports.render_pdf import ReportRenderError, write_pdf

    out = request.out_dir
    out.mkdir(parents=True, exist_ok=True)
    formats = request.formats
    if "json" in formats:
        outcome.written.append(write_json(report, out / "report.json"))
    if "csv" in formats:
        outcome.written.extend(write_csvs(report, out))
    html_path = out / "report.html"
    if "html" in formats or "pdf" in formats:
        write_html(report, html_path, statements=False)
        if "html" in formats:
            outcome.written.append(html_path)
    if request.statements:
        outcome.written.extend(write_statements(report, out / "statements"))
    if "pdf" in formats:
        started = time.monotonic()
        try:
            write_pdf(html_path, out / "report.pdf")
            outcome.written.append(out / "report.pdf")
            echo(f"PDF printed in {time.monotonic() - started:.1f} s")
        except ReportRenderError as exc:
            outcome.notes.append(str(exc))
        finally:
            if "html" not in formats:
                html_path.unlink(missing_ok=True)
