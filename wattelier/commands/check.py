"""`wattelier check SITE.toml`: validate a site file."""

from __future__ import annotations

from pathlib import Path

import typer

from devices.site import SiteError, load_site


def check(site_file: Path = typer.Argument(..., help="The site file to validate.")) -> None:
    """Validate a site file; print every problem with its key path and exit 1 if any."""
    try:
        site = load_site(site_file)
    except SiteError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        typer.echo(f"{len(exc.problems)} problem(s) in {site_file}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{site_file}: OK — site {site.site.name!r}: {len(site.machines)} machines, "
        f"{len(site.meters)} meters, {len(site.controllers)} controllers, {len(site.members)} members")
