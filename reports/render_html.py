"""The report and the member statements as self-contained HTML (inline CSS and SVG, no script).

Templates are Jinja2 files of this package (``reports/templates``), autoescaped, with
StrictUndefined so that a name missing from the context fails instead of printing nothing.
Every figure is formatted by reports.i18n; every name (site, machine, member, program) reaches
the page as escaped text; the charts are the one piece of markup put in as is, and matplotlib
escapes the names in them. A Content-Security-Policy meta tag forbids scripts and any load from
outside the file, in case anything slipped through.

Deterministic: the same model gives the same bytes (no clock is read: the generation time is
the manifest's).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from reports import charts
from reports.i18n import Formatter
from reports.model import Change, Report, SiteReport, Totals

_ENVIRONMENT: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    """The templates' environment, made once."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = jinja2.Environment(
            loader=jinja2.PackageLoader("reports", "templates"),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    return _ENVIRONMENT


def safe_name(key: str) -> str:
    """A file-name part made from any member key: ASCII letters, digits, "-", "_" and "." only;
    when that changed the key (or left nothing), 8 hex digits of its SHA-256 are added so that
    two keys never share a file ("Zoé/1" -> "zoe-1-3f2a9c1d")."""
    ascii_text = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-.")[:48].lower()
    if slug == key and slug:
        return slug
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}" if slug else digest


def statement_file_name(key: str) -> str:
    """The statement's file name of a member key: ``statement-<safe name>.html``."""
    return f"statement-{safe_name(key)}.html"


def _site_formatter(report: Report, site: SiteReport) -> Formatter:
    return Formatter(report.language, site.currency, site.timezone)


def _command(report: Report, site: SiteReport) -> str:
    """The command that analyses a site's period (its site file's name from the manifest)."""
    file = next((f.file for f in report.manifest.site_files if f.site == site.site), f"{site.site}.toml")
    first = site.missing_dates[0] if site.missing_dates else report.period.start[:10]
    last = site.missing_dates[-1] if site.missing_dates else report.period.end[:10]
    return f"wattelier analyze --config {file} --from {first} --to {last}"


def _statement_entries(report: Report, site_index: int, site: SiteReport, fmt: Formatter) -> list[dict[str, Any]]:
    """One entry per member of an analysed site: their figures, sessions and jobs."""
    names = {m.machine: m.label or m.machine for m in site.machines}
    entries = []
    for member in site.members:
        entries.append(
            dict(
                member=member,
                key=member.member,
                display=member.name or member.member,
                site=site.site,
                safe=safe_name(member.member),
                anchor=f"s{site_index}",
                f=fmt,
                machine_names=names,
                sessions=[s for s in site.sessions if s.member == member.member],
                jobs=[j for j in site.jobs if j.member == member.member],
            )
        )
    return entries


def _network_rows() -> list[tuple[str, Callable[[Formatter, Totals, Change | None], str]]]:
    """The rows of the side-by-side table: label key and how a column's cell is written."""
    return [
        ("energy", lambda f, t, c: f.kwh(t.energy_kwh, t.energy_uncertainty_kwh)),
        ("co2e_location", lambda f, t, c: f.kg(t.co2e_kg, t.co2e_uncertainty_kg)),
        ("co2e_market", lambda f, t, c: f.kg(t.co2e_market_kg, t.co2e_market_uncertainty_kg)),
        ("cost", lambda f, t, c: f.money(t.cost, t.cost_uncertainty)),
        ("processing_h", lambda f, t, c: f.hours(t.processing_h)),
        ("jobs", lambda f, t, c: f.count(t.jobs)),
        ("sessions", lambda f, t, c: f.count(t.sessions)),
        ("members", lambda f, t, c: f.count(t.members)),
        ("coverage_missing", lambda f, t, c: f.percent(t.coverage_missing)),
        ("change", lambda f, t, c: f.change(c.energy if c else None)),
    ]


def _context(report: Report, statements: bool) -> dict[str, Any]:
    base = Formatter(report.language)
    sites = []
    entries: list[dict[str, Any]] = []
    for index, site in enumerate(report.sites):
        fmt = _site_formatter(report, site)
        analysed = site.analysed and site.totals is not None
        period_balance = next((b for b in site.balance if b.period == "period"), None)
        sites.append(
            dict(
                site=site,
                f=fmt,
                anchor=f"site-{index}",
                charts={k: Markup(v) for k, v in charts.site_charts(site, fmt, index).items()} if analysed else {},
                balance=period_balance,
                command=_command(report, site),
            )
        )
        if statements and analysed:
            entries.extend(_statement_entries(report, index, site, fmt))
    currencies = {s.currency for s in report.sites if s.analysed}
    network_f = Formatter(report.language, currencies.pop() if len(currencies) == 1 else None)
    previous = report.previous_period
    return dict(
        language=report.language,
        report=report,
        manifest=report.manifest,
        f=base,
        network_f=network_f,
        network_rows=_network_rows(),
        sites=sites,
        site_names=", ".join(s.site for s in report.sites),
        period_name=base.month(report.period),
        previous_name=base.month(previous) if previous else "",
        statements=entries,
    )


def render_html(report: Report, *, statements: bool = False) -> str:
    """The report as one HTML page; with ``statements``, every member's statement follows as a
    section of its own."""
    return environment().get_template("report.html.j2").render(_context(report, statements))


def write_html(report: Report, path: Path, *, statements: bool = False) -> Path:
    """Write ``render_html(report)`` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_html(report, statements=statements), encoding="utf-8")
    return path


def render_statement(report: Report, member_key: str) -> str:
    """One member's statement over every analysed site they used, as one HTML page."""
    base = Formatter(report.language)
    entries = []
    display = member_key
    for index, site in enumerate(report.sites):
        if not (site.analysed and site.totals is not None):
            continue
        for entry in _statement_entries(report, index, site, _site_formatter(report, site)):
            if entry["key"] == member_key:
                entries.append(entry)
                display = entry["display"]
    return environment().get_template("statement.html.j2").render(
        language=report.language,
        manifest=report.manifest,
        f=base,
        key=member_key,
        display=display,
        period_name=base.month(report.period),
        entries=entries,
    )


def write_statements(report: Report, out_dir: Path) -> list[Path]:
    """Write one ``statement-<safe name>.html`` per member key into ``out_dir`` (made if needed);
    a member of several sites gets one file with a section per site. Returns the paths, sorted."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({m.member for s in report.sites if s.analysed for m in s.members})
    paths = []
    for key in keys:
        path = out_dir / statement_file_name(key)
        path.write_text(render_statement(report, key), encoding="utf-8")
        paths.append(path)
    return sorted(paths)
