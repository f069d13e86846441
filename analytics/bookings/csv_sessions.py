"""Sessions from a CSV file: one booking per row.

A header row, then one session per row. Columns ``machine,member,start,end`` (any order,
names case-insensitive), optional ``booking_id``; other columns are ignored. The file is read
by analytics.bookings.csv_reader (``,`` ``;`` or tab, UTF-8 with or without BOM) and its times
by analytics.bookings.times:

- ISO 8601 with a UTC offset or Z (``2024-10-27T09:00:00+01:00``, ``2024-10-27T08:00:00.000Z``,
  as `wattelier demo` writes `sessions.csv`) or Unix seconds;
- a local time without offset (``2024-10-27 09:00``) in `tz`; refused when no `tz` is given;
- a French spreadsheet's day-first date and time (``26/10/2026 09:00``) in `tz`, else in
  `spreadsheet_tz` (the site's zone: a spreadsheet has no way to write an offset);

a local time that does not exist or occurs twice (daylight-saving changes) is refused. A time
nothing reads is refused in one line saying how to format the column before exporting.

Machine and member: with finders (`machine_for`, `member_for`, e.g.
analytics.bookings.names.member_finder(site)) the member may be written by key, full name or
e-mail, as the iCalendar reader accepts; with name collections (`machines`, `members`) the
names must be the site's keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path

from analytics.bookings.csv_reader import CsvError, Problems, iter_table, unix_decimal_comma
from analytics.bookings.names import Finder, lookup
from analytics.bookings.report import SessionsError
from analytics.bookings.times import looks_day_first, parse_time_s, to_ms
from analytics.records import Session

REQUIRED_COLUMNS = ("machine", "member", "start", "end")


def _name(text: str, column: str, finder: Finder | None, known: Collection[str] | None) -> tuple[str, str]:
    """(name, problem): the site's name of a machine or member cell; a problem when none."""
    if not text:
        return "", f"column '{column}': empty; every session needs its {column}"
    name = lookup(finder, text) if finder is not None else text
    if name is not None and (known is None or name in known):
        return name, ""
    listed = f" (known: {', '.join(sorted(known))})" if known is not None else ""
    how = " by key, full name or e-mail" if column == "member" and finder is not None else ""
    return "", f"column '{column}': {text!r} is not a {column} of the site{how}{listed}"


def read_sessions_csv(path: str | Path, tz: dt.tzinfo | None = None, *, source: str = "csv",
                      machines: Collection[str] | None = None,
                      members: Collection[str] | None = None,
                      machine_for: Finder | None = None, member_for: Finder | None = None,
                      spreadsheet_tz: dt.tzinfo | None = None) -> list[Session]:
    """Sessions of a CSV file with columns machine,member,start,end (and optional booking_id).

    tz: the time zone of times written without offset (None: such times are refused, except
    day-first spreadsheet dates when `spreadsheet_tz` is given).
    machines, members: the names the site knows; when given, other names are refused.
    machine_for, member_for: text -> the site's name (or None); when given, a cell is looked up.
    Raises SessionsError listing every problem as ``FILE:LINE: column 'C': what, what to do``.
    """
    path = Path(path)
    problems = Problems(path, "problems")
    sessions: list[Session] = []
    seen: dict[tuple[str, str, float, str], tuple[int, float]] = {}
    try:
        for row, dialect in iter_table(path, REQUIRED_COLUMNS, problems):
            line = row.line
            row_problems: list[str] = []
            machine, problem = _name(row["machine"], "machine", machine_for, machines)
            row_problems += [problem] if problem else []
            member, problem = _name(row["member"], "member", member_for, members)
            row_problems += [problem] if problem else []
            times: dict[str, float] = {}
            for column in ("start", "end"):
                text = unix_decimal_comma(row[column], dialect.decimal_comma)
                zone = tz if tz is not None or not looks_day_first(text) else spreadsheet_tz
                try:
                    times[column] = to_ms(parse_time_s(text, zone, day_first=True))
                except ValueError as exc:
                    row_problems.append(f"column '{column}': {exc}")
            if len(times) == 2 and times["end"] <= times["start"]:
                row_problems.append(f"column 'end': {row['end']!r} is not after start {row['start']!r}; "
                                    "a session ends after it starts")
            if row_problems:
                for problem in row_problems:
                    problems.add(line, problem)
                continue
            booking_id = row.get("booking_id")
            key = (machine, member, times["start"], booking_id)
            if key in seen and seen[key][1] != times["end"]:
                problems.add(line, f"same machine, member, start and booking_id as line {seen[key][0]} but "
                                   "another end; remove one of them (or give each its own booking_id)")
                continue
            seen[key] = (line, times["end"])
            sessions.append(Session(machine, member, times["start"], times["end"], source, booking_id))
    except CsvError as exc:
        raise SessionsError(exc.problems) from None
    problems.raise_if_any(SessionsError)
    return sessions
