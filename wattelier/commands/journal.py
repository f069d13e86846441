"""`wattelier journal`: what the journal holds, what is still to send, what was refused or dropped."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer

from storage.forward_store import journal_status, quarantined_lines
from storage.journal_schema import JournalError
from wattelier.commands.common import CONFIG_HELP, site_or_exit


def _iso(time_ns: int | None) -> str:
    if time_ns is None:
        return "-"
    return dt.datetime.fromtimestamp(time_ns / 1e9, dt.timezone.utc).isoformat(timespec="seconds")


def journal(
    path: Path = typer.Option(None, "--journal", help="Journal file (default: the site file's journal.path)."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP + " Its [influxdb] url is shown "
                                "as a target even before it accepted a write."),
    show: int = typer.Option(10, "--show", min=0, help="Quarantined lines to print."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
) -> None:
    """Show the journal: points, forwarding backlog, oldest unsent point and last error per
    target, the quarantine, and points dropped by reason."""
    configured: list[str] = []
    if path is None or config is not None:
        site = site_or_exit(config)
        if site.influxdb is not None:
            configured.append(site.influxdb.url)
        if path is None:
            path = Path(site.journal.path)
            if not path.is_absolute():
                path = Path.cwd() / path
    try:
        status = journal_status(path, configured)
        lines = quarantined_lines(path, show)
    except (FileNotFoundError, JournalError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps({
            "journal": str(path), "points": status.points,
            "oldest_point": _iso(status.oldest_point_ns), "newest_point": _iso(status.newest_point_ns),
            "targets": {t: {"backlog": n, "oldest_unsent": _iso(status.oldest_unsent_ns.get(t)),
                            "quarantined": status.quarantine.get(t, 0),
                            "accepted_a_write": t not in status.never_accepted,
                            "last_error": status.last_error.get(t, (None, None))[0],
                            "last_error_at": _iso(status.last_error.get(t, (None, None))[1])}
                        for t, n in status.backlog.items()},
            "drops": status.drops,
            "quarantine": [{"target": t, "point_id": q.point_id, "line": q.line, "error": q.error,
                            "when": _iso(q.quarantined_ns)} for t, q in lines],
        }, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"journal {escape(str(path))}: {status.points} points, from {_iso(status.oldest_point_ns)} "
                  f"to {_iso(status.newest_point_ns)}")
    for target in sorted(status.never_accepted):
        error = status.last_error.get(target)
        console.print(escape(f"{target} has not accepted a write yet: backlog {status.backlog[target]} points, "
                             f"oldest unsent {_iso(status.oldest_unsent_ns.get(target))}"
                             + (f", last error: {error[0]}" if error else "")))
    if status.backlog:
        table = Table(title="forwarding")
        for column in ("target", "backlog (points)", "oldest unsent", "quarantined", "last error"):
            table.add_column(column, overflow="fold")
        for target, n in status.backlog.items():
            error = status.last_error.get(target)
            table.add_row(escape(target), str(n), _iso(status.oldest_unsent_ns.get(target)),
                          str(status.quarantine.get(target, 0)),
                          escape(f"{_iso(error[1])} {error[0]}") if error else "-")
        console.print(table)
    else:
        console.print("forwarding: no InfluxDB target is configured or has been used with this journal")
    if status.drops:
        table = Table(title="points dropped, by reason")
        table.add_column("reason")
        table.add_column("points", justify="right")
        for reason, n in sorted(status.drops.items()):
            table.add_row(reason, str(n))
        console.print(table)
    else:
        console.print("dropped: none")
    if lines:
        table = Table(title=f"quarantine (latest {len(lines)})")
        for column in ("when", "point id", "error", "line"):
            table.add_column(column, overflow="fold")
        for target, q in lines:
            table.add_row(_iso(q.quarantined_ns), str(q.point_id), escape(q.error), escape(q.line))
        console.print(table)
