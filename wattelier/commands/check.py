"""`wattelier check SITE.toml`: validate a site file (and its secrets file)."""

from __future__ import annotations

from pathlib import Path

import typer

from devices.secrets import secrets_problem
from devices.site import SiteError, load_site, site_warnings


def check(site_file: Path = typer.Argument(..., help="The site file to validate.")) -> None:
    """Validate a site file and its secrets file; print every problem with its key path and
    exit 2 if any. Implausible values are printed as warnings and still pass."""
    try:
        site = load_site(site_file)
    except SiteError as exc:
        problems = exc.problems
    else:
        problems = [p for p in (secrets_problem(site),) if p is not None]
    if problems:
        for problem in problems:
            typer.echo(problem, err=True)
        typer.echo(f"{len(problems)} problem(s) in {site_file}", err=True)
        raise typer.Exit(2)
    warnings = site_warnings(site, str(site_file))
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(
        f"{site_file}: OK — site {site.site.name!r}: {len(site.machines)} machines, "
        f"{len(site.meters)} meters, {len(site.controllers)} controllers, {len(site.members)} members"
        + (f" ({len(warnings)} warning(s))" if warnings else ""))
