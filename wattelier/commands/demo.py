"""`wattelier demo`: simulated workshop + collector on loopback, live table, summary.json."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from wattelier.commands.common import CONFIG_HELP, site_or_exit
from wattelier.demo import run_demo


def demo(
    seconds: float = typer.Option(60.0, "--seconds", min=5, help="How long to run [s]."),
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the journal and summary.json."),
    seed: int = typer.Option(1, "--seed", help="Seed of the simulated workshop."),
    pace: float = typer.Option(60.0, "--pace", min=1, help="Jobs and pauses run this many times faster."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """Run a simulated workshop and the collector, then compare collected energy with the truth."""
    site = site_or_exit(config)
    result = asyncio.run(run_demo(site, seconds, out, seed=seed, pace=pace))
    if not result.ok:
        raise typer.Exit(1)
