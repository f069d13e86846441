"""`wattelier sessions`: add, import, fetch from Fab-manager, and list the sessions
(a member holding a machine for a time window) stored in the journal.

Parsing is in analytics/sessions.py, storage in storage/bookings_store.py. Bad input exits 2
with every problem listed; a Fab-manager that cannot be read exits 1.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from analytics.bookings.times import parse_time_s
from analytics.records import Session
from storage.journal import Journal
from devices.secrets import SecretsError, read_secret
from devices.site import Site
from wattelier.commands.common import CONFIG_HELP, site_or_exit
from storage.bookings_store import cancel_sessions, load_sessions, store_sessions
from wattelier.fabmanager_state import load_fabmanager_state, save_fabmanager_state

if TYPE_CHECKING:  # the readers (CSV, iCalendar, Fab-manager) load when a command reads bookings
    from analytics.sessions import FabmanagerState, ImportReport

app = typer.Typer(
    help="Sessions: who held which machine when (bookings from CSV, iCalendar or Fab-manager, "
         "or entered by hand), stored in the journal.",
    no_args_is_help=True,
)

JOURNAL_HELP = "Journal file (default: the site file's journal.path)."
TIME_HELP = ("ISO 8601 (2024-10-27T14:00, 2024-10-27T14:00+01:00, ...Z) or Unix seconds; "
             "without offset, in the site's time zone.")
ICAL_SUFFIXES = (".ics", ".ical", ".ifb", ".icalendar")


def _fail(problems: list[str], code: int = 2, then: str = "") -> typer.Exit:
    """Each problem on its line of stderr, then `then` (what happened): on the problem's
    line when there is one problem, so that one mistake is one line."""
    lines = list(problems)
    if then and len(lines) == 1:
        lines = [f"{lines[0]}; {then}"]
    elif then:
        lines.append(then)
    for line in lines:
        typer.echo(line, err=True)
    return typer.Exit(code)


def _journal_path(site: Site, journal: Path | None) -> Path:
    path = journal or Path(site.journal.path)
    return path if path.is_absolute() else Path.cwd() / path


def _open_journal(site: Site, journal: Path | None) -> Journal:
    from collector.runtime import journal_for

    return journal_for(site, str(_journal_path(site, journal)))


def _time_or_exit(option: str, text: str, site: Site) -> float:
    try:
        return parse_time_s(text, site.tz)
    except ValueError as exc:
        raise _fail([f"{option}: {exc}"])


def _store(site: Site, journal: Path | None, sessions: list[Session], report: ImportReport | None,
           what: str, state: FabmanagerState | None = None) -> None:
    """Store the sessions and withdraw the cancelled bookings; then, and only then, keep
    `state` (where this Fab-manager read stopped)."""
    store = _open_journal(site, journal)
    try:
        added, already = store_sessions(store, site.site.name, sessions)
        withdrawn = cancel_sessions(store, site.site.name, report.canceled) if report else 0
        if state is not None:
            save_fabmanager_state(store, state)
    finally:
        store.close()
    for warning in report.warnings if report else []:
        typer.echo(f"warning: {warning}", err=True)
    message = f"{what}: {len(sessions)} session(s): {added} added, {already} already stored"
    if report and report.canceled:
        message += f"; {len(report.canceled)} cancelled booking(s), {withdrawn} withdrawn from the journal"
    typer.echo(f"{message} ({store.path})")


@app.command("add")
def add(
    machine: str = typer.Option(..., "--machine", help="Machine name (as in the site file)."),
    member: str = typer.Option(..., "--member", help="Member name (as in the site file)."),
    start: str = typer.Option(..., "--start", help=TIME_HELP),
    end: str = typer.Option(..., "--end", help=TIME_HELP),
    booking_id: str = typer.Option("", "--booking-id", help="An identifier of your own (optional)."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    journal: Path = typer.Option(None, "--journal", help=JOURNAL_HELP),
) -> None:
    """Add one session by hand. The same session again is not stored twice; the same
    machine, member and start with another end replaces it."""
    site = site_or_exit(config)
    problems = []
    if machine not in site.machines:
        problems.append(f"--machine: {machine!r} is not a machine of site {site.site.name!r}; "
                        f"machines: {', '.join(sorted(site.machines))}")
    if member not in site.members:
        problems.append(f"--member: {member!r} is not a member of site {site.site.name!r}; "
                        f"members: {', '.join(sorted(site.members))}")
    times = {}
    for option, text in (("--start", start), ("--end", end)):
        try:
            times[option] = parse_time_s(text, site.tz)
        except ValueError as exc:
            problems.append(f"{option}: {exc}")
    if len(times) == 2 and round(times["--end"] * 1000) <= round(times["--start"] * 1000):
        problems.append(f"--end: {end!r} is not after --start {start!r}")
    if problems:
        raise _fail(problems)
    session = Session(machine, member, times["--start"], times["--end"], "manual", booking_id)
    _store(site, journal, [session], None, "added by hand")


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="A CSV file (machine,member,start,end[,booking_id]; ',' or "
                                          "';') or an iCalendar file (.ics)."),
    tz: str = typer.Option(None, "--tz", help="Time zone of CSV times written without offset "
                                              "(e.g. Europe/Paris); without it ISO local times are "
                                              "refused and day-first dates (26/10/2026 09:00) are in "
                                              "the site's zone. iCalendar floating times use it, "
                                              "else the site's."),
    start: str = typer.Option(None, "--from", help="Only sessions ending after this time; recurring "
                                                   "iCalendar events are expanded from it. " + TIME_HELP),
    end: str = typer.Option(None, "--to", help="Only sessions starting before this time; recurring "
                                               "iCalendar events are expanded up to it. " + TIME_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    journal: Path = typer.Option(None, "--journal", help=JOURNAL_HELP),
) -> None:
    """Import sessions from a CSV or iCalendar file into the journal (nothing is stored when
    the file has a problem)."""
    import zoneinfo

    site = site_or_exit(config)
    start_s = _time_or_exit("--from", start, site) if start else None
    end_s = _time_or_exit("--to", end, site) if end else None
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise _fail(["--to must be after --from"])
    zone = None
    if tz:
        try:
            zone = zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise _fail([f"--tz: unknown time zone {tz[:80]!r} (use an IANA name such as Europe/Paris)"])
    from analytics.sessions import (ImportReport, SessionsError, machine_finder, member_finder,
                                    read_sessions_csv, read_sessions_ical)

    suffix = file.suffix.lower()
    report = ImportReport()
    try:
        if suffix == ".csv":
            sessions = read_sessions_csv(file, zone, machines=set(site.machines), members=set(site.members),
                                         machine_for=machine_finder(site), member_for=member_finder(site),
                                         spreadsheet_tz=site.tz)
            sessions = [s for s in sessions if (start_s is None or s.end_s > start_s)
                        and (end_s is None or s.start_s < end_s)]
        elif suffix in ICAL_SUFFIXES:
            sessions = read_sessions_ical(file, machine_finder(site), zone or site.tz,
                                          member_for=member_finder(site), report=report,
                                          start_s=start_s, end_s=end_s)
        else:
            raise _fail([f"{file}: unknown kind of file {suffix or '(no suffix)'!r}: name it .csv "
                         "(machine,member,start,end) or .ics (iCalendar)"])
    except SessionsError as exc:
        problems = [f"{p} (--tz ZONE)" if "no UTC offset" in p else p for p in exc.problems]
        raise _fail(problems, then=f"nothing imported from {file}; fix the file and import it again")
    _store(site, journal, sessions, report, f"{file}")


@app.command("fabmanager")
def fabmanager(
    since: str = typer.Option(None, "--since", help="Only bookings ending after this time. " + TIME_HELP),
    until: str = typer.Option(None, "--until", help="Only bookings starting before this time. " + TIME_HELP),
    full: bool = typer.Option(False, "--full", help="Read every reservation again, not only those "
                                                    "that can have changed since the last read."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    journal: Path = typer.Option(None, "--journal", help=JOURNAL_HELP),
) -> None:
    """Import the machine bookings of the site's Fab-manager (Open API): the reservations
    that can have changed since the last read (all of them the first time, or with --full);
    the token comes from WATTELIER_FABMANAGER_TOKEN (or the variable named by token_env in
    the fabmanager section) or the secrets file (fabmanager_token)."""
    site = site_or_exit(config)
    settings = site.fabmanager
    if settings is None:
        raise _fail(["the site file has no [fabmanager] section; add one with url = "
                     "\"https://your-fab-manager\" and fabmanager_id = N to the machines booked there"])
    since_s = _time_or_exit("--since", since, site) if since else None
    until_s = _time_or_exit("--until", until, site) if until else None
    if since_s is not None and until_s is not None and until_s <= since_s:
        raise _fail(["--until must be after --since"])
    problems = []
    for section, attr in (("machines", "fabmanager_id"), ("members", "fabmanager_user_id")):
        ids = Counter(getattr(e, attr) for e in getattr(site, section).values() if getattr(e, attr) is not None)
        for value, n in ids.items():
            if n > 1:
                names = [k for k, e in getattr(site, section).items() if getattr(e, attr) == value]
                problems.append(f"{section}: {attr} = {value} is given to {', '.join(names)}; each "
                                "Fab-manager id belongs to one entry")
    machines = {m.fabmanager_id: name for name, m in site.machines.items() if m.fabmanager_id is not None}
    members = {m.fabmanager_user_id: name for name, m in site.members.items()
               if m.fabmanager_user_id is not None}
    if not machines:
        problems.append("no machine of the site has a fabmanager_id; add fabmanager_id = N (the "
                        "machine's id in Fab-manager) to [machines.NAME]")
    try:
        token = read_secret(site, settings.token_env, "fabmanager_token")
    except SecretsError as exc:
        problems.append(str(exc))
        token = None
    else:
        if not token:
            problems.append(f"no Fab-manager token: set the environment variable {settings.token_env} "
                            "or fabmanager_token in the site's secrets_file")
    if problems:
        raise _fail(problems)
    from analytics.sessions import FabmanagerReport, SessionsError, fetch_fabmanager_incremental

    state, state_warning = load_fabmanager_state(_journal_path(site, journal))
    report = FabmanagerReport()
    if state_warning:
        report.warnings.append(state_warning)
    try:
        sessions, new_state = fetch_fabmanager_incremental(settings.url, token, machines, members, state,
                                                           since_s, until_s, full=full,
                                                           timeout_s=settings.timeout_s, report=report)
    except SessionsError as exc:
        raise _fail(exc.problems, code=1, then="nothing imported")
    how = (f"full read ({report.full_reason})" if report.full_reason else
           f"reservations created since {_local(report.after_s, site)}" if report.after_s is not None
           else "full read")
    typer.echo(f"Fab-manager {settings.url}: {how}: {report.pages} page(s), {report.reservations} "
               f"reservation(s) read ({report.other_types} not of machines, {report.outside_window} "
               "outside the requested window)")
    # a read with a window stores only part of what it read: the next read must not start after it
    windowed = since_s is not None or until_s is not None
    _store(site, journal, sessions, report, "Fab-manager", None if windowed else new_state)


def _local(t_s: float, site: Site, same_day_as: float | None = None) -> str:
    """'2024-10-26 09:00' in the site's zone; only '11:30' when on the day of same_day_as; the
    UTC offset added when the local time alone is ambiguous or the offset changed since."""
    when = dt.datetime.fromtimestamp(t_s, site.tz)
    text = when.strftime("%Y-%m-%d %H:%M")
    offset = when.utcoffset()
    show_offset = when.replace(fold=1 - when.fold).utcoffset() != offset
    if same_day_as is not None:
        start = dt.datetime.fromtimestamp(same_day_as, site.tz)
        show_offset = show_offset or start.utcoffset() != offset
        if start.date() == when.date():
            text = when.strftime("%H:%M")
    zone = when.strftime("%z")
    return text + (zone[:3] if zone.endswith("00") else f"{zone[:3]}:{zone[3:]}") if show_offset else text


def _iso_utc(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@app.command("list")
def list_sessions(
    start: str = typer.Option(None, "--from", help="Sessions ending after this time. " + TIME_HELP),
    end: str = typer.Option(None, "--to", help="Sessions starting before this time. " + TIME_HELP),
    machine: str = typer.Option(None, "--machine", help="Only this machine."),
    member: str = typer.Option(None, "--member", help="Only this member."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (times in UTC)."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    journal: Path = typer.Option(None, "--journal", help=JOURNAL_HELP),
) -> None:
    """List the sessions stored in the journal (the latest version of each booking)."""
    site = site_or_exit(config)
    start_s = _time_or_exit("--from", start, site) if start else None
    end_s = _time_or_exit("--to", end, site) if end else None
    path = _journal_path(site, journal)
    try:
        sessions = load_sessions(path, start_s, end_s)
    except FileNotFoundError as exc:
        raise _fail([str(exc)])
    sessions = [s for s in sessions if (machine is None or s.machine == machine)
                and (member is None or s.member == member)]
    if as_json:
        typer.echo(json.dumps([{
            "machine": s.machine, "member": s.member, "start": _iso_utc(s.start_s), "end": _iso_utc(s.end_s),
            "start_s": s.start_s, "end_s": s.end_s, "duration_s": round(s.end_s - s.start_s, 3),
            "source": s.source, "booking_id": s.booking_id} for s in sessions], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not sessions:
        console.print(f"no session in {path} for this selection")
        return
    table = Table(title=f"sessions ({len(sessions)}), times in {site.site.timezone}")
    for column in ("machine", "member", "start", "end", "hours", "source", "booking"):
        fixed = column in ("machine", "start", "end", "hours")
        table.add_column(column, justify="right" if column == "hours" else "left", no_wrap=fixed,
                         overflow="ellipsis" if fixed else "fold")
    for s in sessions:
        table.add_row(s.machine, s.member, _local(s.start_s, site), _local(s.end_s, site, s.start_s),
                      f"{(s.end_s - s.start_s) / 3600:.2f}", s.source, s.booking_id)
    console.print(table)
