"""`wattelier journal`: what the journal holds, what is still to send, what was refused or dropped."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer

from collector.forward_store import journal_status, quarantined_lines
from wattelier.commands.common import CONFIG_HELP, site_or_exit


def _iso(time_ns: int | None) -> str:
    if time_ns is None:
        return "-"
    return dt.datetime.fromtimestamp(time_ns / 1e9, dt.timezone.utc).isoformat(timespec="seconds")


def journal(
    path: Path = typer.Option(None, "--journal", help="Journal file (default: the site file's journal.path)."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    show: int = typer.Option(10, "--show", min=0, help="Quarantined lines to print."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
) -> None:
    """Show the journal: points, forwarding backlog and oldest unsent point per target,
    the quarantine, and points dropped by reason."""
    if path is None:
        site = site_or_exit(config)
        path = Path(site.journal.path)
        if not path.is_absolute():
            path = Path.cwd() / path
    try:
        status = journal_status(path)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    lines = quarantined_lines(path, show)
    if as_json:
        typer.echo(json.dumps({
            "journal": str(path), "points": status.points,
            "oldest_point": _iso(status.oldest_point_ns), "newest_point": _iso(status.newest_point_ns),
            "targets": {t: {"backlog": n, "oldest_unsent": _iso(status.oldest_unsent_ns.get(t)),
                            "quarantined": status.quarantine.get(t, 0)} for t, n in status.backlog.items()},
            "drops": status.drops,
            "quarantine": [{"target": t, "point_id": q.point_id, "line": q.line, "error": q.error,
                            "when": _iso(q.quarantined_ns)} for t, q in lines],
        }, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"journal {path}: {status.points} points, from {_iso(status.oldest_point_ns)} "
                  f"to {_iso(status.newest_point_ns)}")
    if status.backlog:
        table = Table(title="forwarding")
        for column in ("target", "backlog (points)", "oldest unsent", "quarantined"):
            table.add_column(column)
        for target, n in status.backlog.items():
            table.add_row(target, str(n), _iso(status.oldest_unsent_ns.get(target)),
                          str(status.quarantine.get(target, 0)))
        console.print(table)
    else:
        console.print("forwarding: no InfluxDB target has been used with this journal")
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
            table.add_row(_iso(q.quarantined_ns), str(q.point_id), q.error, q.line)
        console.print(table)
