"""The `wattelier` command: a thin typer app; each command parses and calls a library function."""

from __future__ import annotations

import logging
import os
import sys

import typer

from wattelier import __version__
from wattelier.commands import analyze as analyze_cmd
from wattelier.commands import certs as certs_cmd
from wattelier.commands import check as check_cmd
from wattelier.commands import dashboards as dashboards_cmd
from wattelier.commands import collect as collect_cmd
from wattelier.commands import demo as demo_cmd
from wattelier.commands import journal as journal_cmd
from wattelier.commands import report as report_cmd
from wattelier.commands import sessions as sessions_cmd
from wattelier.commands import simulate as simulate_cmd
from wattelier.performance import freeze_heap_at_exit

app = typer.Typer(
    name="wattelier",
    help="Energy, time and CO2 per job and per member on the shared machines of a workshop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: units and sections in square brackets ("[s]", "[influxdb]")
    # are shown as written, not read as rich markup.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wattelier {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    if os.environ.get("JOURNAL_STREAM"):
        # Under systemd: compact lines on stdout, the journal adds time and unit.
        log_format, stream = "%(levelname)s %(name)s: %(message)s", sys.stdout
    else:
        log_format, stream = "%(asctime)s %(levelname)s %(name)s: %(message)s", sys.stderr
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=log_format,
                        stream=stream)
    for noisy in ("asyncua", "pymodbus", "urllib3", "influxdb_client"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not verbose else logging.INFO)


freeze_heap_at_exit()


app.command("check", short_help="Validate a site file and its secrets file.")(check_cmd.check)
app.command("simulate", short_help="Serve a simulated workshop (OPC UA, Modbus TCP).")(simulate_cmd.simulate)
app.command("collect", short_help="Read controllers and meters into the journal.")(collect_cmd.collect)
app.command("demo", short_help="Simulated workshop + collector + analysis, checked.")(demo_cmd.demo)
app.command("journal", short_help="What the journal holds: backlog, quarantine, drops.")(journal_cmd.journal)
app.command("certs", short_help="Make the collector's OPC UA certificate and key.")(certs_cmd.certs)
app.add_typer(sessions_cmd.app, name="sessions", short_help="Members' sessions: add, import, list.")
app.command("analyze", short_help="Energy, CO2e and cost per machine, job and member.")(analyze_cmd.analyze)
app.command("report", short_help="Monthly impact report: HTML, PDF, CSV, JSON.")(report_cmd.report)
app.add_typer(dashboards_cmd.app, name="dashboards",
              short_help="Grafana dashboards, alert rules and provisioning: build, push.")


def run() -> None:
    """The `wattelier` entry point: the app, with a last guard against a traceback.

    Expected failures (bad input, a server down, a port in use) are reported by each command in
    one line with exit code 2; a journal refused (damaged, newer, locked, unwritable) is
    reported here for every command that opens one. Anything else is a bug of ours: it is reported in one line too,
    naming the error, with how to get the details (`--verbose` prints the traceback) and where
    to report it; exit code 70 (EX_SOFTWARE, sysexits.h)."""
    from storage.journal_schema import JournalError

    try:
        app()  # usage errors, Ctrl-C and typer.Exit end in SystemExit with their exit code
    except JournalError as exc:  # any command that opens a journal: its path and what to do
        typer.echo(str(exc), err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001: the last guard, see the docstring
        if "--verbose" in sys.argv or "-v" in sys.argv:
            raise
        detail = str(exc).splitlines()[0] if str(exc) else ""
        typer.echo(f"wattelier: unexpected error {type(exc).__name__}"
                   f"{': ' + detail if detail else ''} (a bug: run again with --verbose for the "
                   "details and report them)", err=True)
        sys.exit(70)


if __name__ == "__main__":
    run()
