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
