"""`wattelier simulate`: serve the simulated workshop over real OPC UA and Modbus TCP."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from wattelier.commands.common import CONFIG_HELP, site_or_exit

if TYPE_CHECKING:
    from devices.sim.workshop import SimulatedWorkshop


async def _serve(workshop: "SimulatedWorkshop", seconds: float | None, out: Path | None) -> None:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await workshop.start()
    typer.echo(f"simulated workshop running (seed {workshop.seed}, pace {workshop.pace}); "
               f"{len(workshop.sim_meters)} meters, {len(workshop.cnc_servers)} OPC UA servers")
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
    await workshop.stop()
    end = time.time()
    if out:
        out.mkdir(parents=True, exist_ok=True)
        workshop.write_sessions_csv(out / "sessions.csv", end)
        workshop.write_truth_json(out / "ground_truth.json", end)
        typer.echo(f"sessions and ground truth written to {out}")
    typer.echo(f"write attempts from clients: {workshop.write_attempts()}")


def _backfill(site, days: float, journal_path: Path, seed: int, out: Path | None,
              power_holes: tuple = ()) -> None:
    """Simulated history into the journal: readings, and the bookings they were made under (so
    that an analysis of the journal attributes the jobs to members); with `out`, the bookings
    also as out/sessions.csv."""
    from rich.progress import Progress

    from devices.sim.workshop import write_sessions_csv
    from wattelier.history import backfill_history

    end = time.time() // 3600 * 3600
    start = end - days * 86400
    with Progress() as progress:
        task = progress.add_task(f"backfilling {days:g} days", total=end - start)
        history = backfill_history(site, start, end, journal_path, seed=seed, power_holes=power_holes,
                                   progress=lambda done: progress.update(task, completed=done))
    typer.echo(f"{history.points} points for {history.jobs} jobs and {history.sessions_added} sessions "
               f"(bookings) written to {journal_path}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_sessions_csv(out / "sessions.csv", history.sessions)
        typer.echo(f"sessions written to {out / 'sessions.csv'}")


def _power_holes_or_exit(texts: list[str], site) -> tuple:
    """The --drop-power holes, or exit 2 with a one-line message naming the bad one."""
    from devices.sim.holes import PowerHoleError, check_power_holes, parse_power_hole

    try:
        return check_power_holes([parse_power_hole(text) for text in texts], site)
    except PowerHoleError as exc:
        typer.echo(f"--drop-power: {exc}", err=True)
        raise typer.Exit(2)


def simulate(
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    seed: int = typer.Option(1, "--seed", help="Seed: the same seed gives the same workshop."),
    pace: float = typer.Option(1.0, "--pace", min=1, help="Jobs and pauses run this many times faster."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this long (default: until Ctrl-C)."),
    out: Path = typer.Option(None, "--out", help="Write sessions.csv (and, when serving, "
                             "ground_truth.json) into this folder at the end."),
    backfill: float = typer.Option(None, "--backfill", min=0.01,
                                   help="Instead of serving, write this many days of history into --journal."),
    journal: Path = typer.Option(Path("wattelier-journal.sqlite"), "--journal", help="Journal file for --backfill."),
    pki: Path = typer.Option(None, "--pki", help="Keep the simulated servers' OPC UA certificates here, "
                             "so a collector trusts them across runs (default: a temporary folder)."),
    drop_power: list[str] = typer.Option([], "--drop-power", metavar="METER@OFFSET_S+DURATION_S",
                                         help="Lose a meter's readings from OFFSET_S to OFFSET_S + "
                                         "DURATION_S seconds after the start (its server stops "
                                         "answering; with --backfill its rows are left out) while "
                                         "the machine and the meter's counter run on. Repeatable."),
) -> None:
    """Serve the site's meters (Modbus TCP) and controllers (OPC UA) from one physical model.

    With --backfill DAYS, write that much simulated history (ending now, opening hours honoured)
    straight into a journal instead, with no protocols.

    With --drop-power router-1@600+300, the meter router-1 gives no reading from 600 s to 900 s
    after the start, as behind a dead gateway or a cut RS-485 line, and its first reading after
    the hole shows the counter advanced by the energy used during it (a power hole).
    """
    site = site_or_exit(config)
    holes = _power_holes_or_exit(drop_power, site)
    if backfill:
        _backfill(site, backfill, journal, seed, out, holes)
        return
    from devices.sim.workshop import SimulatedWorkshop  # asyncua and pymodbus: load on use

    import asyncio

    from devices.sim.workshop import SimulatorError

    try:
        asyncio.run(_serve(SimulatedWorkshop(site, seed=seed, pace=pace, pki_dir=pki, power_holes=holes),
                           seconds, out))
    except SimulatorError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
