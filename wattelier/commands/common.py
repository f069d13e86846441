"""Helpers shared by commands: loading the site file with clear errors."""

from __future__ import annotations

from pathlib import Path

import typer

from devices.site import Site, SiteError, example_site_path, load_site

CONFIG_HELP = "Site file (TOML). Default: the example site shipped with wattelier."


def site_or_exit(config: Path | None) -> Site:
    """Load the site file (or the shipped example) or exit 2 listing every problem."""
    try:
        return load_site(config or example_site_path())
    except SiteError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        typer.echo("refusing to start: fix the site file (`wattelier check` lists the problems)", err=True)
        raise typer.Exit(2)


INFLUX_URL_HELP = "InfluxDB URL (overrides the site file's [influxdb] url), e.g. http://127.0.0.1:8086."
INFLUX_API_HELP = "Write API: v1 (/write, InfluxDB 1.x), v2 (/api/v2/write) or auto (from /ping)."
INFLUX_DB_HELP = "v1 database (created when missing)."
INFLUX_BUCKET_HELP = "v2 bucket."
INFLUX_ORG_HELP = "v2 organisation."


def influx_or_exit(site: Site, url: str | None, api: str | None, database: str | None,
                   bucket: str | None, org: str | None):
    """The InfluxDB target from the site file and command-line overrides (None: journal only);
    exit 2 with a clear message when it cannot be used."""
    from collector.errors import ConfigError
    from storage.influx_config import influx_settings_for
    from devices.secrets import SecretsError

    try:
        return influx_settings_for(site, url=url, api=api, database=database, bucket=bucket, org=org)
    except (ConfigError, SecretsError) as exc:
        typer.echo(f"InfluxDB settings: {exc}", err=True)
        raise typer.Exit(2)


def exit_influxdb_unreadable(exc: Exception) -> None:
    """Exit 2 with one line for an InfluxDB that cannot be read (storage.errors
    .InfluxError): what it said, and what to check."""
    typer.echo(f"cannot read InfluxDB: {exc}; start it, or check --influx-url and the site "
               "file's [influxdb] section", err=True)
    raise typer.Exit(2)
