"""`wattelier collect`: run the collector of a site into its journal until stopped."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from collector.errors import ConfigError
from devices.secrets import SecretsError, secrets_problem
from devices.site import example_site_path, site_warnings, url_credentials_problem
from wattelier.commands.common import (CONFIG_HELP, INFLUX_API_HELP, INFLUX_BUCKET_HELP,
                                       INFLUX_DB_HELP, INFLUX_ORG_HELP, INFLUX_URL_HELP,
                                       influx_or_exit, site_or_exit)

if TYPE_CHECKING:
    from collector.runtime import Collector

log = logging.getLogger("wattelier.collect")


async def _run(collector: "Collector") -> None:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await collector.run(stop)
    collector.journal.close()


def collect(
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    influx_url: str = typer.Option(None, "--influx-url", help=INFLUX_URL_HELP),
    influx_api: str = typer.Option(None, "--influx-api", help=INFLUX_API_HELP),
    influx_db: str = typer.Option(None, "--influx-db", help=INFLUX_DB_HELP),
    influx_bucket: str = typer.Option(None, "--influx-bucket", help=INFLUX_BUCKET_HELP),
    influx_org: str = typer.Option(None, "--influx-org", help=INFLUX_ORG_HELP),
    journal: Path = typer.Option(None, "--journal", help="Journal file (default: the site file's journal.path)."),
) -> None:
    """Read every controller and meter of the site into the journal; SIGTERM or Ctrl-C stops."""
    site = site_or_exit(config)
    refusal = secrets_problem(site)
    if refusal is None and influx_url is not None:
        credentials = url_credentials_problem(influx_url)
        refusal = f"--influx-url: {credentials}" if credentials else None
    if refusal is not None:
        typer.echo(f"refusing to start: {refusal}", err=True)
        raise typer.Exit(2)
    for warning in site_warnings(site, str(config or example_site_path())):
        log.warning("%s", warning)
    influx = influx_or_exit(site, influx_url, influx_api, influx_db, influx_bucket, influx_org)
    try:
        from collector.runtime import Collector, journal_for  # asyncua and pymodbus: load on use

        collector = Collector(site, journal_for(site, str(journal) if journal else None, collector=True),
                              influx=influx)
    except (ConfigError, SecretsError) as exc:
        typer.echo(f"refusing to start: {exc}", err=True)
        raise typer.Exit(2)
    import asyncio

    asyncio.run(_run(collector))
