"""`wattelier collect`: run the collector of a site into its journal until stopped."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from collector.runtime import Collector, journal_for
from wattelier.commands.common import CONFIG_HELP, site_or_exit


async def _run(collector: Collector) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await collector.run(stop)
    collector.journal.close()


def collect(
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    journal: Path = typer.Option(None, "--journal", help="Journal file (default: the site file's journal.path)."),
) -> None:
    """Read every controller and meter of the site into the journal; SIGTERM or Ctrl-C stops."""
    site = site_or_exit(config)
    collector = Collector(site, journal_for(site, str(journal) if journal else None))
    asyncio.run(_run(collector))
