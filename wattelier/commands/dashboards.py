"""`wattelier dashboards`: build the Grafana dashboards, alert rules and provisioning files of a
site (dashboards.build), and push the dashboards to a Grafana (dashboards.push). Each command
only parses its options and calls those functions."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from wattelier.commands.common import CONFIG_HELP, site_or_exit

TOKEN_VARIABLE = "WATTELIER_GRAFANA_TOKEN"
TOKEN_SECRET_KEY = "grafana_token"

app = typer.Typer(help="Grafana dashboards, alert rules and provisioning files, as code.",
                  no_args_is_help=True, add_completion=False)


@app.command("build")
def build_command(
    out: Path = typer.Option(..., "--out", help="Folder to write provisioning/ into."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    influx_version: str = typer.Option(None, "--influx-version", help="InfluxDB the data source reads: "
                                       "1, 2 (v1 API, DBRP-mapped database, token header) or 3 (token as "
                                       "password). Default: 2 when the site's [influxdb] api is v2, else 1."),
    receiver: str = typer.Option("grafana-default-email", "--receiver",
                                 help="Grafana contact point the alert rules notify."),
) -> None:
    """Write the dashboards' JSON, the alert rules and Grafana's provisioning files (data
    source, dashboard provider) under OUT/provisioning, ready for /etc/grafana/provisioning."""
    from dashboards.build import DashboardLintError, build

    site = site_or_exit(config)
    try:
        written = build(out, site, influx_version=influx_version, receiver=receiver)
    except (DashboardLintError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    except OSError as exc:
        typer.echo(f"cannot write into {out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    for path in written:
        typer.echo(str(path))


def _token(config: Path | None) -> str:
    """The Grafana token: WATTELIER_GRAFANA_TOKEN, else `grafana_token` of the site's secrets file."""
    if os.environ.get(TOKEN_VARIABLE):
        return os.environ[TOKEN_VARIABLE]
    from devices.secrets import SecretsError, read_secret

    try:
        token = read_secret(site_or_exit(config), None, TOKEN_SECRET_KEY)
    except SecretsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    if not token:
        typer.echo(f"no Grafana token: set {TOKEN_VARIABLE} (a Grafana service account token with the "
                   f"Editor role) or `{TOKEN_SECRET_KEY}` in the site's secrets file", err=True)
        raise typer.Exit(2)
    return token


@app.command("push")
def push_command(
    grafana_url: str = typer.Option(..., "--grafana-url", help="Grafana's address, e.g. https://grafana.example.org."),
    out: Path = typer.Option(None, "--out", help="A folder `dashboards build` wrote (default: build them now)."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    folder: str = typer.Option("wattelier", "--folder", help="Grafana folder uid to put them in ('' for General)."),
) -> None:
    """Upload the dashboards through Grafana's HTTP API (POST /api/dashboards/db, TLS verified);
    one line per dashboard refused."""
    from dashboards.build import DashboardLintError, build, built_dashboards
    from dashboards.push import GrafanaUnreachable, push

    token = _token(config)
    try:
        if out is not None:
            dashboards = built_dashboards(out)
            if not dashboards:
                typer.echo(f"no dashboards in {out}: run `wattelier dashboards build --out {out}` first", err=True)
                raise typer.Exit(2)
        else:
            with tempfile.TemporaryDirectory(prefix="wattelier-dashboards-") as scratch:
                build(Path(scratch), site_or_exit(config))
                dashboards = built_dashboards(Path(scratch))
        report = push(grafana_url, token, dashboards, folder_uid=folder or None)
    except GrafanaUnreachable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    except DashboardLintError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    for title in report.pushed:
        typer.echo(f"pushed: {title}")
    for line in report.refused:
        typer.echo(line, err=True)
    if not report.ok:
        raise typer.Exit(1)
