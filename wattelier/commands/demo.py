"""`wattelier demo`: simulated workshop + collector on loopback, live table, summary.json."""

from __future__ import annotations

from pathlib import Path

import typer

from wattelier.commands.common import (CONFIG_HELP, INFLUX_API_HELP, INFLUX_BUCKET_HELP,
                                       INFLUX_DB_HELP, INFLUX_ORG_HELP, INFLUX_URL_HELP,
                                       influx_or_exit, site_or_exit)


def _history_s(text: str | None) -> float:
    """Seconds of `--history`: a number followed by d (days) or h (hours), e.g. 30d; exit 2
    with a one-line message otherwise."""
    if text is None:
        return 0.0
    units = {"d": 86400.0, "h": 3600.0}
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or not 0 < value * units[unit] <= 400 * 86400:
        typer.echo(f"--history {text}: give a duration in days or hours up to 400 days, e.g. 30d or 12h",
                   err=True)
        raise typer.Exit(2)
    return value * units[unit]


def demo(
    seconds: float = typer.Option(60.0, "--seconds", min=5, help="How long to run, in seconds."),
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the journal and summary.json."),
    seed: int = typer.Option(1, "--seed", help="Seed of the simulated workshop."),
    pace: float = typer.Option(60.0, "--pace", min=1, help="Jobs and pauses run this many times faster."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    influx_url: str = typer.Option(None, "--influx-url", help=INFLUX_URL_HELP),
    influx_api: str = typer.Option(None, "--influx-api", help=INFLUX_API_HELP),
    influx_db: str = typer.Option(None, "--influx-db", help=INFLUX_DB_HELP),
    influx_bucket: str = typer.Option(None, "--influx-bucket", help=INFLUX_BUCKET_HELP),
    influx_org: str = typer.Option(None, "--influx-org", help=INFLUX_ORG_HELP),
    history: str = typer.Option(None, "--history", metavar="DURATION",
                                help="First write this much simulated history (e.g. 30d, 12h; "
                                "ending on the hour before the run) into the journal, with its "
                                "bookings, and analyse it."),
) -> None:
    """Run a simulated workshop and the collector, then compare collected energy with the truth."""
    if out.exists() and not out.is_dir():
        typer.echo(f"--out {out}: is a file, not a folder; give a folder (it is made if missing), "
                   "e.g. --out demo-out", err=True)
        raise typer.Exit(2)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        typer.echo(f"--out {out}: cannot make the folder ({exc.strerror}); give a folder you can "
                   "write to", err=True)
        raise typer.Exit(2)
    history_s = _history_s(history)
    site = site_or_exit(config)
    influx = influx_or_exit(site, influx_url, influx_api, influx_db, influx_bucket, influx_org)
    import asyncio

    from wattelier.demo import run_demo  # simulators and collector: load on use

    result = asyncio.run(run_demo(site, seconds, out, seed=seed, pace=pace, influx=influx,
                                  history_s=history_s, site_path=config))
    if not result.ok:
        raise typer.Exit(1)
