"""Sessions from bookings: CSV files, iCalendar files and the Fab-manager Open API.

A session is a member holding a machine for a time window (DESIGN.md, "Jobs, sessions and
members"; `analytics.records.Session`). This module only parses: it reads the given file or
asks the given HTTP server and returns `Session` records, or raises `SessionsError` whose
`problems` each say where (file and line, or page and reservation), what is wrong and what to
do. Nothing is skipped silently: a row or event that cannot be used is an error; what is left
out on purpose (a cancelled booking, a Fab-manager machine the site does not know) is counted
in an `ImportReport` (and logged when the caller passes none).

Times are float seconds since the Unix epoch (UTC), kept to the millisecond, between
1970-01-01 and 2262-04-11 (the journal stores them as 64-bit nanoseconds; Unix seconds written
as such must lie between 2000 and 2100, to catch milliseconds). A time outside is refused
with its file and line, as is a DURATION that would end outside.

CSV (`read_sessions_csv`)
    A header row, then one session per row. Columns `machine,member,start,end` (any order,
    names case-insensitive), optional `booking_id`; other columns are ignored. Comma or
    semicolon separated (French spreadsheets write semicolons), UTF-8 with or without BOM.
    Times: ISO 8601 with a UTC offset or Z (``2024-10-27T09:00:00+01:00``,
    ``2024-10-27T08:00:00.000Z``, as `wattelier demo` writes `sessions.csv`) or Unix seconds.
    A time without offset is refused unless the time zone it is in is given (`tz`); then a
    local time that does not exist or occurs twice (daylight-saving changes) is refused too.

iCalendar (`read_sessions_ical`, RFC 5545)
    Our own small parser of the subset bookings use (no dependency: the subset is small, and
    it keeps line numbers for the error messages). Lines are unfolded (3.1, also inside a
    UTF-8 character), text values unescaped (3.3.11), parameter values may be quoted (3.2).
    Each VEVENT is a session:

    - DTSTART and DTEND (or DURATION, 3.3.6; day and week durations in local time) as UTC
      (``...Z``), local time with ``TZID=`` an IANA zone (e.g. Europe/Paris, resolved with
      zoneinfo), floating local time (in the time zone given as `tz`, the site's), or DATE
      (whole days in that zone). A local time that occurs twice is its first occurrence and
      one in a daylight-saving gap uses the offset before the gap, as 3.3.5 says.
    - machine: the first of LOCATION, each CATEGORIES value, and the part of SUMMARY after
      " @ " (SUMMARY "member @ machine") that `machine_for` recognises.
    - member: the first of ATTENDEE (its CN, then its address), ORGANIZER (CN, address) and
      the part of SUMMARY before " @ " that `member_for` recognises.
    - booking_id: UID (plus ``/RECURRENCE-ID`` for an overridden occurrence).
    - STATUS:CANCELLED (or METHOD:CANCEL) events are cancellations (`ImportReport.canceled`).
    - Recurring events (RRULE, RDATE) are refused: export each occurrence as its own event.
    VTIMEZONE definitions are not read: TZID must be an IANA name (a prefix such as
    ``/mozilla.org/.../Europe/Paris`` is accepted).

Fab-manager (`fetch_fabmanager_reservations`)
    `GET {url}/open_api/v1/reservations?reservable_type=Machine&page=N&per_page=M` with the
    header ``Authorization: Token token=...``, every page (the Open API paginates with
    api-pagination: a `Link` header with rel="next" while there is a next page; without the
    header, a short or empty page ends the list). Documented format (Fab-manager,
    app/doc/open_api/v1/reservations_doc.rb and app/views/open_api/v1/reservations): each
    reservation has `id`, `user_id`, `reservable_type`, `reservable_id`, `reservable {id,
    name}`, `user {id, full_name}` and `reserved_slots [{start_at, end_at, canceled_at}]`.
    The Open API's `after`/`before` filter the *creation* time of reservations, so `since` and
    `until` are applied here to the slots. Contiguous slots of one reservation make one
    session; a reservation is kept whole when one of its sessions overlaps [since, until).
    booking_id = the reservation id.

    - A machine id no site machine has (`fabmanager_id`): the reservation is skipped,
      counted, and the ids are listed (the machine is not monitored: nothing to attribute).
    - A user id no site member has (`fabmanager_user_id`): the session is kept with member
      ``fabmanager-user-ID`` (the machine was booked: its energy is not standby waste), counted
      and listed so that the manager can add the id to the member.
    - A reservation by a deleted member: Fab-manager keeps it, anonymised, with `user_id` null
      and no `user` object (index.json.jbuilder writes `user` only while the statistic profile
      still has a user). The session is kept with member ``fabmanager-deleted-user`` (no one
      can be named; the machine was still booked), counted and said in a warning.
    - Reservations whose every slot is cancelled are cancellations (`ImportReport.canceled`).
    The token never appears in a message, and redirects are refused (the token would follow
    them); HTTP and network errors become a SessionsError saying what to check.

Stored sessions are read back by analytics.bookings_reader (`read_booked_sessions`, also
importable from here).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import socket
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import zoneinfo
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analytics.bookings_reader import read_booked_sessions  # noqa: F401  (reading stored sessions)
from analytics.csv_input import check_time_s, csv_error_text
from analytics.records import Session

if TYPE_CHECKING:
    from devices.site import Site

log = logging.getLogger("wattelier.analytics.sessions")

MIN_TIME_S = 946_684_800.0  # 2000-01-01T00:00:00Z: earlier Unix seconds are a mistake
MAX_TIME_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z
MAX_PROBLEMS = 100  # problems listed in one error; the rest are counted
FABMANAGER_MAX_PAGES = 10_000
UNKNOWN_USER_PREFIX = "fabmanager-user-"
DELETED_USER_MEMBER = "fabmanager-deleted-user"  # reservations of members deleted in Fab-manager

Finder = Callable[[str], "str | None"] | Mapping[str, str]


class SessionsError(Exception):
    """Sessions cannot be read; `problems` lists every mistake found (where, what, what to do)."""

    def __init__(self, problems: list[str]) -> None:
        if len(problems) > MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problems"]
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ImportReport:
    """What an import left out on purpose, to show to the user.

    canceled: cancelled bookings (to withdraw a session stored earlier); warnings: one line each.
    """

    canceled: list[Session] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class FabmanagerReport(ImportReport):
    """What a Fab-manager import read and left out.

    unknown_machines: Fab-manager machine id -> (its name, reservations skipped).
    unknown_users: Fab-manager user id -> (full name, sessions kept as fabmanager-user-ID).
    deleted_users: reservations by members deleted in Fab-manager (`user_id` null), kept as
    member fabmanager-deleted-user; deleted_user_sessions: the sessions they gave.
    """

    pages: int = 0
    reservations: int = 0
    other_types: int = 0  # reservations of events, trainings, spaces: not machines
    outside_window: int = 0
    unknown_machines: dict[int, tuple[str, int]] = field(default_factory=dict)
    unknown_users: dict[int, tuple[str, int]] = field(default_factory=dict)
    deleted_users: int = 0
    deleted_user_sessions: int = 0


# ---------------------------------------------------------------------------------------------
# Times


_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?")


def _offset_text(offset: dt.timedelta | None) -> str:
    minutes = int((offset or dt.timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def localize_strict(naive: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """A local wall-clock time in `tz`; ValueError when it does not exist (clocks jump
    forward) or occurs twice (clocks go back), saying which offsets to write."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    back = first.astimezone(dt.timezone.utc).astimezone(tz).replace(tzinfo=None)
    text = naive.isoformat(sep=" ")
    if back != naive:
        raise ValueError(f"{text} does not exist in {tz} (the clocks jump forward that night); "
                         "write the time with its UTC offset")
    raise ValueError(f"{text} occurs twice in {tz} (the clocks go back that night); add the offset: "
                     f"{_offset_text(first.utcoffset())} for the first, "
                     f"{_offset_text(second.utcoffset())} for the second")


def parse_time_s(text: str, tz: dt.tzinfo | None = None) -> float:
    """Unix seconds from ISO 8601 with an offset or Z, or from Unix seconds.

    A time without offset is in `tz` (refused when tz is None, or when it does not exist or
    is ambiguous there). Raises ValueError with a message that says what to write instead.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty: write an ISO 8601 time such as 2024-10-27T09:00:00+01:00")
    if _NUMBER.fullmatch(text):
        value = float(text)
        if not MIN_TIME_S <= value < MAX_TIME_S:
            hint = (" (it looks like milliseconds: divide by 1000)"
                    if MIN_TIME_S * 1000 <= abs(value) < MAX_TIME_S * 1000 else "")
            raise ValueError(f"{text!r} read as Unix seconds is not between 2000 and 2100{hint}")
        return value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time (e.g. 2024-10-27T09:00:00+01:00 or "
                         "2024-10-27T08:00:00Z) nor Unix seconds") from None
    if when.tzinfo is None:
        if tz is None:
            raise ValueError(f"{text!r} has no UTC offset: add one (e.g. +01:00, or Z for UTC) or "
                             "give the time zone the file is written in")
    try:
        value = _seconds(localize_strict(when, tz) if when.tzinfo is None else when)
    except OverflowError:  # localize_strict's UTC time of a year-1 or year-9999 local time
        value = float("-inf")
    return check_time_s(value, text)


def _seconds(when: dt.datetime) -> float:
    """Unix seconds of an aware time; -inf when its UTC time falls off the calendar (year 1
    with a positive offset, year 9999 with a negative one), for check_time_s to refuse."""
    try:
        return when.timestamp()
    except OverflowError:
        return float("-inf")


def _to_ms(t_s: float) -> float:
    return round(t_s * 1000.0) / 1000.0


# ---------------------------------------------------------------------------------------------
# Finding machines and members by name


def normalize_name(text: str) -> str:
    """Case, accents and spacing removed: 'Amélie  DURAND' -> 'amelie durand'."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def _finder(table: dict[str, str | None]) -> Callable[[str], str | None]:
    def find(text: str) -> str | None:
        return table.get(normalize_name(text))

    return find


def _add(table: dict[str, str | None], key: str, name: str) -> None:
    key = normalize_name(key)
    if key and table.get(key, name) != name:
        table[key] = None  # two machines or members answer to this text: ambiguous
    elif key:
        table[key] = name


def machine_finder(site: Site) -> Callable[[str], str | None]:
    """Text -> machine name: the machine's name or its label (case and accents ignored)."""
    table: dict[str, str | None] = {}
    for name in site.machines:
        _add(table, name, name)
    for name, machine in site.machines.items():
        if machine.label and normalize_name(machine.label) not in table:
            _add(table, machine.label, name)
    return _finder(table)


def member_finder(site: Site) -> Callable[[str], str | None]:
    """Text -> member name: the member's name (key), full name with or without the part in
    brackets ('Amélie Durand (ébéniste)' or 'Amélie Durand'), or e-mail address."""
    table: dict[str, str | None] = {}
    for name in site.members:
        _add(table, name, name)
    for name, member in site.members.items():
        _add(table, member.name, name)
        short = re.sub(r"\s*\([^)]*\)\s*$", "", member.name)
        if short != member.name:
            _add(table, short, name)
        if member.email:
            _add(table, member.email, name)
    return _finder(table)


def _lookup(finder: Finder | None, text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if finder is None:
        return text
    if callable(finder):
        return finder(text)
    if text in finder:
        return finder[text]
    wanted = normalize_name(text)
    for key, value in finder.items():
        if normalize_name(key) == wanted:
            return value
    return None


# ---------------------------------------------------------------------------------------------
# CSV


REQUIRED_COLUMNS = ("machine", "member", "start", "end")


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise SessionsError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise SessionsError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                             "save the file as UTF-8"]) from exc


def read_sessions_csv(path: str | Path, tz: dt.tzinfo | None = None, *, source: str = "csv",
                      machines: Collection[str] | None = None,
                      members: Collection[str] | None = None) -> list[Session]:
    """Sessions of a CSV file with columns machine,member,start,end (and optional booking_id).

    tz: the time zone of times written without offset (None: such times are refused).
    machines, members: the names the site knows; when given, other names are refused.
    Raises SessionsError listing every problem as ``FILE:LINE: column 'C': what, what to do``.
    """
    import csv
    import io

    path = Path(path)
    text = _read_text(path)
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    if not first_line:
        raise SessionsError([f"{path}: empty file; the first line must be the header "
                             "machine,member,start,end"])
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    header_line = 0
    problems: list[str] = []
    sessions: list[Session] = []
    seen: dict[tuple[str, str, float, str], tuple[int, float]] = {}
    line = 0
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if header is None:
                header = [cell.strip().lower() for cell in row]
                header_line = line
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                doubled = sorted({c for c in header if c and header.count(c) > 1})
                if missing:
                    problems.append(f"{path}:{line}: header: missing column(s) {', '.join(missing)}; "
                                    "the first line must name the columns machine,member,start,end "
                                    f"(found: {', '.join(repr(c) for c in header)})")
                if doubled:
                    problems.append(f"{path}:{line}: header: column(s) {', '.join(doubled)} appear "
                                    "more than once")
                if problems:
                    raise SessionsError(problems)
                continue
            if len(row) != len(header):
                problems.append(f"{path}:{line}: {len(row)} values but the header (line {header_line}) "
                                f"has {len(header)} columns; quote values that contain "
                                f"{delimiter!r}")
                continue
            cells = {name: value.strip() for name, value in zip(header, row)}
            row_problems: list[str] = []
            machine, member = cells["machine"], cells["member"]
            for column, value, known in (("machine", machine, machines), ("member", member, members)):
                if not value:
                    row_problems.append(f"{path}:{line}: column '{column}': empty; every session "
                                        f"needs its {column}")
                elif known is not None and value not in known:
                    row_problems.append(f"{path}:{line}: column '{column}': {value!r} is not a "
                                        f"{column} of the site (known: {', '.join(sorted(known))})")
            times: dict[str, float] = {}
            for column in ("start", "end"):
                try:
                    times[column] = _to_ms(parse_time_s(cells[column], tz))
                except ValueError as exc:
                    row_problems.append(f"{path}:{line}: column '{column}': {exc}")
            if len(times) == 2 and times["end"] <= times["start"]:
                row_problems.append(f"{path}:{line}: column 'end': {cells['end']!r} is not after start "
                                    f"{cells['start']!r}; a session ends after it starts")
            if row_problems:
                problems.extend(row_problems)
                continue
            booking_id = cells.get("booking_id", "")
            key = (machine, member, times["start"], booking_id)
            if key in seen and seen[key][1] != times["end"]:
                problems.append(f"{path}:{line}: same machine, member, start and booking_id as line "
                                f"{seen[key][0]} but another end; remove one of them (or give each "
                                "its own booking_id)")
                continue
            seen[key] = (line, times["end"])
            sessions.append(Session(machine, member, times["start"], times["end"], source, booking_id))
    except csv.Error as exc:  # the row after the last one read starts on the next line
        problems.append(f"{path}:{line + 1}: not valid CSV: {csv_error_text(exc)}")
    if header is None and not problems:
        problems.append(f"{path}: no header; the first line must be machine,member,start,end")
    if problems:
        raise SessionsError(problems)
    return sessions


# ---------------------------------------------------------------------------------------------
# iCalendar (RFC 5545)


@dataclass
class _Property:
    name: str
    params: dict[str, list[str]]
    value: str
    line: int


def _unfold(data: bytes, path: Path) -> list[tuple[int, str]]:
    """Logical content lines with the number of their first physical line (RFC 5545, 3.1).

    Unfolding works on bytes, so a fold inside a multi-byte UTF-8 character is undone too."""
    logical: list[tuple[int, bytearray]] = []
    for number, raw in enumerate(re.split(rb"\r\n|\n|\r", data), 1):
        if raw[:1] in (b" ", b"\t") and logical:
            logical[-1][1].extend(raw[1:])
        elif raw.strip():
            logical.append((number, bytearray(raw)))
    out = []
    for number, raw in logical:
        try:
            out.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise SessionsError([f"{path}:{number}: not UTF-8 text ({exc.reason}); RFC 5545 "
                                 "calendars are UTF-8"]) from exc
    if out and out[0][1].startswith("\ufeff"):
        out[0] = (out[0][0], out[0][1][1:])
    return out


def _content_line(text: str) -> tuple[str, dict[str, list[str]], str]:
    """name, parameters and value of a content line (RFC 5545, 3.1 and 3.2); ValueError."""
    match = re.match(r"[A-Za-z0-9-]+", text)
    if not match:
        raise ValueError("not a content line (NAME;PARAM=VALUE:VALUE)")
    name = match.group(0).upper()
    i = match.end()
    params: dict[str, list[str]] = {}
    while i < len(text) and text[i] == ";":
        match = re.match(r"[A-Za-z0-9-]+=", text[i + 1:])
        if not match:
            raise ValueError(f"bad parameter after {name!r}")
        pname = match.group(0)[:-1].upper()
        i += 1 + match.end()
        values = []
        while True:
            if i < len(text) and text[i] == '"':
                end = text.find('"', i + 1)
                if end < 0:
                    raise ValueError(f"parameter {pname} opens a quote it does not close")
                values.append(text[i + 1:end])
                i = end + 1
            else:
                match = re.match(r'[^";:,]*', text[i:])
                values.append(match.group(0))
                i += match.end()
            if i < len(text) and text[i] == ",":
                i += 1
                continue
            break
        params[pname] = values
    if i >= len(text) or text[i] != ":":
        raise ValueError(f"no ':' before the value of {name}")
    return name, params, text[i + 1:]


def _unescape(text: str) -> str:
    """TEXT value (RFC 5545, 3.3.11): \\\\, \\;, \\, and \\n or \\N."""
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), text)


def _text_list(text: str) -> list[str]:
    """A multi-valued TEXT (CATEGORIES): split on commas that are not escaped."""
    return [_unescape(part) for part in re.split(r"(?<!\\),", text)]


_DATE_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)")
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DURATION = re.compile(r"([+-]?)P(?:(\d+)W|(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?)")


def _zone(name: str) -> dt.tzinfo:
    candidates = [name]
    parts = name.strip("/").split("/")
    candidates += ["/".join(parts[-2:]), "/".join(parts[-3:])]
    for candidate in candidates:
        try:
            return zoneinfo.ZoneInfo(candidate)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            continue
    raise ValueError(f"TZID {name!r} is not an IANA time zone name (such as Europe/Paris); "
                     "export the calendar with IANA zone names or in UTC")


def _ical_time(prop: _Property, tz: dt.tzinfo | None) -> tuple[dt.datetime, dt.tzinfo]:
    """The aware time of a DTSTART/DTEND and the zone its local days are in (3.3.4, 3.3.5)."""
    value = prop.value.strip()
    zone: dt.tzinfo | None = None
    if "TZID" in prop.params:
        zone = _zone(prop.params["TZID"][0])
    match = _DATE_TIME.fullmatch(value)
    if match:
        y, mo, d, h, mi, s, utc = match.groups()
        try:
            naive = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), min(int(s), 59))
        except ValueError as exc:
            raise ValueError(f"{prop.name} {value!r} is not a date and time ({exc})") from None
        if utc:
            return naive.replace(tzinfo=dt.timezone.utc), dt.timezone.utc
        zone = zone or tz
        if zone is None:
            raise ValueError(f"{prop.name} {value!r} is a floating local time and no time zone "
                             "was given; give the site's time zone")
        return naive.replace(tzinfo=zone), zone  # fold=0: RFC 5545 3.3.5 for gaps and repeats
    match = _DATE.fullmatch(value)
    if match and prop.params.get("VALUE", ["DATE"])[0].upper() == "DATE":
        zone = zone or tz
        if zone is None:
            raise ValueError(f"{prop.name} {value!r} is a whole day and no time zone was given")
        y, mo, d = (int(g) for g in match.groups())
        try:
            return dt.datetime(y, mo, d, tzinfo=zone), zone
        except ValueError as exc:
            raise ValueError(f"{prop.name} {value!r} is not a date ({exc})") from None
    raise ValueError(f"{prop.name} {value!r} is not a DATE-TIME (20241027T093000, "
                     "20241027T083000Z) nor a DATE (20241027)")


def _add_duration(start: dt.datetime, zone: dt.tzinfo, text: str) -> dt.datetime:
    """start + DURATION (RFC 5545, 3.3.6): weeks and days in local days, the rest exact."""
    match = _DURATION.fullmatch(text.strip())
    if not match or text.strip() in ("P", "PT", "-P", "+P"):
        raise ValueError(f"DURATION {text!r} is not a duration such as PT1H30M or P1D")
    sign, weeks, days, hours, minutes, seconds = match.groups()
    factor = -1 if sign == "-" else 1
    try:
        nominal = dt.timedelta(days=factor * (7 * int(weeks or 0) + int(days or 0)))
        exact = dt.timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=int(seconds or 0))
        local = start.astimezone(zone).replace(tzinfo=None) + nominal
        return local.replace(tzinfo=zone).astimezone(dt.timezone.utc) + factor * exact
    except (OverflowError, ValueError):  # beyond datetime's years 1..9999, or digits beyond int's
        raise ValueError(f"DURATION {text.strip()[:40]!r} ends outside the calendar; a booking "
                         "lasts hours or days (e.g. PT2H, P1D)") from None


def _storable(when: dt.datetime, what: str, prop: _Property) -> None:
    """ValueError, naming `what` and the property's text, when `when` is outside the times
    the journal holds (check_time_s)."""
    try:
        check_time_s(_seconds(when), prop.value.strip())
    except ValueError as exc:
        raise ValueError(f"{what} {exc}") from None


def _ical_components(lines: list[tuple[int, str]], path: Path) -> tuple[list[list[_Property]], str]:
    """The VEVENTs (their properties) and the calendar's METHOD."""
    problems: list[str] = []
    events: list[list[_Property]] = []
    stack: list[str] = []
    method = ""
    current: list[_Property] | None = None
    if not lines or lines[0][1].strip().upper() != "BEGIN:VCALENDAR":
        raise SessionsError([f"{path}:{lines[0][0] if lines else 1}: not an iCalendar file (it must start "
                             "with BEGIN:VCALENDAR)"])
    for number, text in lines:
        try:
            name, params, value = _content_line(text)
        except ValueError as exc:
            problems.append(f"{path}:{number}: {exc}: {text[:60]!r}")
            continue
        if name == "BEGIN":
            stack.append(value.strip().upper())
            if stack[-1] == "VEVENT" and "VEVENT" in stack[:-1]:
                problems.append(f"{path}:{number}: BEGIN:VEVENT inside another VEVENT (line "
                                f"{events[-1][0].line}); close the first with END:VEVENT")
                raise SessionsError(problems)
            if stack[-1] == "VEVENT":
                current = []
                events.append(current)
                current.append(_Property(name, params, value, number))
            continue
        if name == "END":
            component = value.strip().upper()
            if not stack or stack[-1] != component:
                problems.append(f"{path}:{number}: END:{component} without BEGIN:{component}")
                raise SessionsError(problems)
            stack.pop()
            if component == "VEVENT":
                current = None
            continue
        if not stack:
            problems.append(f"{path}:{number}: {name} outside BEGIN:VCALENDAR ... END:VCALENDAR")
        elif stack[-1] == "VEVENT" and current is not None:
            current.append(_Property(name, params, value, number))
        elif stack[-1] == "VCALENDAR" and name == "METHOD":
            method = value.strip().upper()
    if stack:
        problems.append(f"{path}:{lines[-1][0]}: BEGIN:{stack[-1]} is never closed (file cut short?)")
    if problems:
        raise SessionsError(problems)
    return events, method


def read_sessions_ical(path: str | Path, machine_for: Finder, tz: dt.tzinfo | None = None, *,
                       member_for: Finder | None = None, source: str = "ical",
                       report: ImportReport | None = None) -> list[Session]:
    """Sessions of an iCalendar file (RFC 5545): one per VEVENT, by the convention in the
    module docstring.

    machine_for, member_for: text -> machine / member name (or None), as a callable or a
    mapping (e.g. `machine_finder(site)`); member_for None takes the member's text as it is.
    tz: the time zone of floating times and whole days (the site's).
    report: receives the cancelled events and the warnings (logged when no report is given).
    Raises SessionsError listing every problem with the file and line of the event.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SessionsError([f"{path}: cannot read: {exc.strerror}"]) from exc
    events, method = _ical_components(_unfold(data, path), path)
    log_warnings = report is None  # a caller that passes a report shows the warnings itself
    report = report if report is not None else ImportReport()
    problems: list[str] = []
    sessions: list[Session] = []
    for props in events:
        begin_line = props[0].line
        by_name: dict[str, list[_Property]] = {}
        for prop in props[1:]:
            by_name.setdefault(prop.name, []).append(prop)

        def first(name: str) -> _Property | None:
            return by_name.get(name, [None])[0]

        uid = _unescape(first("UID").value.strip()) if first("UID") else ""
        summary = _unescape(first("SUMMARY").value.strip()) if first("SUMMARY") else ""
        where = f"{path}:{begin_line}: event" + (f" {uid!r}" if uid else "") + (f" ({summary!r})" if summary else "")
        event_problems: list[str] = []
        if "RRULE" in by_name or "RDATE" in by_name:
            prop = first("RRULE") or first("RDATE")
            problems.append(f"{where}: recurring event ({prop.name} at line {prop.line}) is not "
                            "supported; export the calendar with each occurrence as its own event")
            continue
        start = end = None
        dtstart, dtend, duration = first("DTSTART"), first("DTEND"), first("DURATION")
        if dtstart is None:
            event_problems.append(f"{where}: no DTSTART; every booking needs its start")
        else:
            try:
                start, zone = _ical_time(dtstart, tz)
                _storable(start, "DTSTART", dtstart)
            except ValueError as exc:
                start = None
                event_problems.append(f"{where}: line {dtstart.line}: {exc}")
        if start is not None:
            end_prop = dtend or duration or dtstart
            try:
                if dtend is not None:
                    end, _ = _ical_time(dtend, tz)
                    _storable(end, "DTEND", dtend)
                elif duration is not None:
                    end = _add_duration(start, zone, duration.value)
                    _storable(end, "the end of DURATION", duration)
                elif dtstart.params.get("VALUE", [""])[0].upper() == "DATE":
                    end = _add_duration(start, zone, "P1D")  # 3.6.1: a DATE event lasts one day
                    _storable(end, "the end of the day of DTSTART", dtstart)
                else:
                    event_problems.append(f"{where}: no DTEND nor DURATION; give the end of the booking")
            except ValueError as exc:
                end = None
                event_problems.append(f"{where}: line {end_prop.line}: {exc}")
        if start is not None and end is not None and end <= start:
            given = f"DTEND {dtend.value}" if dtend is not None else f"DURATION {duration.value}"
            event_problems.append(f"{where}: ends ({given}) before or when it starts (DTSTART "
                                  f"{dtstart.value}); check DTEND")

        summary_member, _, summary_machine = summary.rpartition(" @ ")
        machine_texts = [(p.name, _unescape(p.value)) for p in by_name.get("LOCATION", [])]
        for p in by_name.get("CATEGORIES", []):
            machine_texts += [("CATEGORIES", v) for v in _text_list(p.value)]
        machine_texts.append(("SUMMARY", summary_machine if summary_member else summary))
        machine = next((m for _, t in machine_texts if (m := _lookup(machine_for, t))), None)

        member_texts: list[tuple[str, str]] = []
        people: list[tuple[str, str | None]] = []  # (property, member) per ATTENDEE / ORGANIZER
        for pname in ("ATTENDEE", "ORGANIZER"):
            for p in by_name.get(pname, []):
                texts = [p.params["CN"][0]] if "CN" in p.params else []
                texts.append(re.sub(r"(?i)^mailto:", "", p.value.strip()))
                member_texts += [(pname, t) for t in texts]
                people.append((pname, next((m for t in texts if (m := _lookup(member_for, t))), None)))
        if summary_member:
            member_texts.append(("SUMMARY", summary_member))
            people.append(("SUMMARY", _lookup(member_for, summary_member)))
        attendees = {m for n, m in people if n == "ATTENDEE" and m}
        member = next((m for _, m in people if m), None)
        if len(attendees) > 1:
            event_problems.append(f"{where}: its attendees are several members ({', '.join(sorted(attendees))}); "
                                  "a session has one member: keep one ATTENDEE")
        if machine is None:
            tried = ", ".join(f"{n} {t!r}" for n, t in machine_texts if t.strip()) or "nothing"
            event_problems.append(f"{where}: no machine of the site found (tried {tried}); put the "
                                  "machine's name in LOCATION or end SUMMARY with ' @ machine'")
        if member is None:
            tried = ", ".join(f"{n} {t!r}" for n, t in member_texts if t.strip()) or "nothing"
            event_problems.append(f"{where}: no member of the site found (tried {tried}); add the member "
                                  "as ATTENDEE (CN or e-mail) or start SUMMARY with 'member @ '")
        booking_id = uid
        if uid and first("RECURRENCE-ID") is not None:
            booking_id = f"{uid}/{first('RECURRENCE-ID').value.strip()}"
        status = first("STATUS").value.strip().upper() if first("STATUS") else ""
        canceled = status == "CANCELLED" or method == "CANCEL"
        if canceled:  # withdraws a stored session: found by its UID, else by machine, member, start
            if booking_id or not event_problems:
                report.canceled.append(Session(
                    machine or "", member or "", _to_ms(start.timestamp()) if start else 0.0,
                    _to_ms(end.timestamp()) if end else 0.0, source, booking_id))
            else:
                report.warnings.append(f"{where}: cancelled event without UID ignored: "
                                       + "; ".join(p.split(": ", 2)[-1] for p in event_problems))
            continue
        if event_problems:
            problems.extend(event_problems)
            continue
        if not uid:
            report.warnings.append(f"{where}: no UID; a changed event will be stored as a new session")
        sessions.append(Session(machine, member, _to_ms(start.timestamp()), _to_ms(end.timestamp()),
                                source, booking_id))
    if problems:
        raise SessionsError(problems)
    for warning in report.warnings if log_warnings else []:
        log.warning("%s", warning)
    return sessions


# ---------------------------------------------------------------------------------------------
# Fab-manager Open API


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are refused: the token must not follow them to another address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _error_detail(body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    if isinstance(data, dict):
        errors = data.get("errors") or data.get("error")
        if isinstance(errors, list):
            return "; ".join(str(e) for e in errors)[:200]
        if errors:
            return str(errors)[:200]
    return json.dumps(data)[:200]


def _has_next(link: str) -> bool:
    """Whether a Link header (RFC 8288) has a target with rel="next"."""
    for match in re.finditer(r';\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', link, re.IGNORECASE):
        if "next" in (match.group(1) or match.group(2) or "").lower().split():
            return True
    return False


def _get_page(opener: urllib.request.OpenerDirector, url: str, token: str, page: int,
              timeout_s: float) -> tuple[dict, str | None]:
    request = urllib.request.Request(url, headers={
        "Authorization": f"Token token={token}", "Accept": "application/json",
        "User-Agent": "wattelier (sessions import)"})
    base = url.split("?")[0]
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read()
            link = response.headers.get("Link")
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read() or b"")
        if exc.code == 401:
            raise SessionsError([f"Fab-manager refused the token (HTTP 401 {detail or 'Unauthorized'}) at "
                                 f"{base}: set WATTELIER_FABMANAGER_TOKEN (or the variable named by "
                                 "[fabmanager] token_env, or fabmanager_token in the secrets file) to "
                                 "the token of an Open API client (Fab-manager: Admin > Open API "
                                 "clients)"]) from None
        if 300 <= exc.code < 400:
            raise SessionsError([f"Fab-manager at {base} redirects (HTTP {exc.code}) to "
                                 f"{exc.headers.get('Location')!r}; set [fabmanager] url to the final "
                                 "address (redirects are not followed, so the token stays with it)"]) from None
        if exc.code == 404:
            raise SessionsError([f"no Fab-manager Open API at {base} (HTTP 404); [fabmanager] url must "
                                 "be the Fab-manager address, e.g. https://fablab.example.org"]) from None
        raise SessionsError([f"Fab-manager answered HTTP {exc.code} {exc.reason} for page {page} of "
                             f"{base}: {detail or 'no detail'}"]) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise SessionsError([f"no answer from Fab-manager at {base} within {timeout_s:g} s"]) from None
        raise SessionsError([f"cannot reach Fab-manager at {base}: {reason}; check [fabmanager] url "
                             "and the network"]) from None
    except (TimeoutError, socket.timeout):
        raise SessionsError([f"no answer from Fab-manager at {base} within {timeout_s:g} s"]) from None
    except OSError as exc:
        raise SessionsError([f"cannot read the answer of Fab-manager at {base}: {exc}"]) from None
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SessionsError([f"Fab-manager page {page} of {base} is not JSON ({exc}); is [fabmanager] url "
                             "the Fab-manager address?"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("reservations"), list):
        raise SessionsError([f"Fab-manager page {page} of {base}: no 'reservations' list in the answer "
                             "(not the documented format of GET /open_api/v1/reservations)"])
    return data, link


def _windows(slots: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Slots in time order, contiguous or overlapping ones merged."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(slots):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def fetch_fabmanager_reservations(base_url: str, token: str,
                                  machines_by_fabmanager_id: Mapping[int, str],
                                  members_by_fabmanager_user_id: Mapping[int, str],
                                  since: float | None = None, until: float | None = None, *,
                                  per_page: int = 100, timeout_s: float = 30.0,
                                  report: FabmanagerReport | None = None) -> list[Session]:
    """Machine sessions from Fab-manager's Open API, every page (see the module docstring).

    base_url: the Fab-manager address; token: an Open API client's token.
    since, until: Unix seconds; only reservations with a session overlapping [since, until).
    report: receives pages read, reservations skipped (unknown machines, other types, outside
    the window), users not matched, cancellations and warnings (logged when no report is given).
    Raises SessionsError for network and HTTP errors and answers not in the documented format.
    """
    if not token:
        raise SessionsError(["no Fab-manager token: set WATTELIER_FABMANAGER_TOKEN (or the variable "
                             "named by [fabmanager] token_env, or fabmanager_token in the secrets file)"])
    log_warnings = report is None  # a caller that passes a report shows the warnings itself
    report = report if report is not None else FabmanagerReport()
    base_url = base_url.rstrip("/")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        report.warnings.append(f"{base_url} is plain http: the Open API token travels in clear; use https")
    opener = urllib.request.build_opener(_NoRedirect())
    sessions: list[Session] = []
    problems: list[str] = []
    seen_ids: set[int] = set()
    page = 1
    while True:
        query = urllib.parse.urlencode({"reservable_type": "Machine", "page": page, "per_page": per_page})
        data, link = _get_page(opener, f"{base_url}/open_api/v1/reservations?{query}", token, page,
                               timeout_s)
        report.pages = page
        items = data["reservations"]
        for item in items:
            problem = _reservation(item, page, machines_by_fabmanager_id, members_by_fabmanager_user_id,
                                   since, until, report, sessions, seen_ids)
            if problem:
                problems.append(problem)
        if not items:
            break
        has_next = _has_next(link) if link is not None else len(items) >= per_page
        if not has_next:
            break
        page += 1
        if page > FABMANAGER_MAX_PAGES:
            raise SessionsError([f"Fab-manager at {base_url} still has pages after {FABMANAGER_MAX_PAGES}; "
                                 "stopping (does it ignore the page parameter?)"])
    if problems:
        raise SessionsError(problems)
    if report.unknown_machines:
        listed = ", ".join(f"{i} ({name!r}, {n} reservation(s))"
                           for i, (name, n) in sorted(report.unknown_machines.items()))
        report.warnings.append(f"skipped the reservations of Fab-manager machines no site machine has as "
                               f"fabmanager_id: {listed}; add fabmanager_id = ID to [machines.NAME] to "
                               "import them")
    if report.unknown_users:
        listed = ", ".join(f"{i} ({name!r}, {n} session(s))"
                           for i, (name, n) in sorted(report.unknown_users.items()))
        report.warnings.append(f"kept as member {UNKNOWN_USER_PREFIX}ID the sessions of Fab-manager users "
                               f"no site member has as fabmanager_user_id: {listed}; add "
                               "fabmanager_user_id = ID to [members.NAME]")
    if report.deleted_users:
        report.warnings.append(f"kept as member {DELETED_USER_MEMBER} {report.deleted_user_sessions} session(s) "
                               f"of {report.deleted_users} reservation(s) by members deleted in Fab-manager "
                               "(user_id null, anonymised there): their energy counts as booked, for no "
                               "one; nothing to do")
    for warning in report.warnings if log_warnings else []:
        log.warning("%s", warning)
    return sessions


def _reservation(item: object, page: int, machines: Mapping[int, str], members: Mapping[int, str],
                 since: float | None, until: float | None, report: FabmanagerReport,
                 sessions: list[Session], seen_ids: set[int]) -> str | None:
    """Turn one reservation into sessions (appended); a problem message when malformed."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        return f"Fab-manager page {page}: a reservation without an integer id: {str(item)[:120]}"
    rid = item["id"]
    where = f"Fab-manager page {page}, reservation {rid}"
    if rid in seen_ids:
        return None  # a reservation created while paging shifts the pages: already read
    seen_ids.add(rid)
    report.reservations += 1
    if item.get("reservable_type") != "Machine":
        report.other_types += 1
        return None
    reservable = item.get("reservable") if isinstance(item.get("reservable"), dict) else {}
    machine_id = item.get("reservable_id", reservable.get("id"))
    user = item.get("user") if isinstance(item.get("user"), dict) else {}
    user_id = item.get("user_id", user.get("id"))
    if user_id is None:
        user_id = user.get("id")  # null user_id: a deleted member unless a user object says who
    if not isinstance(machine_id, int) or not (user_id is None or isinstance(user_id, int)):
        return (f"{where}: reservable_id must be an integer and user_id an integer or null, got "
                f"{machine_id!r} and {user_id!r}")
    slots = item.get("reserved_slots")
    if not isinstance(slots, list) or not slots:
        return f"{where}: no reserved_slots"
    live: list[tuple[float, float]] = []
    canceled: list[tuple[float, float]] = []
    for i, slot in enumerate(slots):
        if not isinstance(slot, dict):
            return f"{where}: reserved_slots[{i}] is not an object"
        try:
            start = _to_ms(parse_time_s(str(slot.get("start_at") or "")))
            end = _to_ms(parse_time_s(str(slot.get("end_at") or "")))
        except ValueError as exc:
            return f"{where}: reserved_slots[{i}]: {exc}"
        if end <= start:
            return f"{where}: reserved_slots[{i}] ends before it starts ({slot.get('start_at')} .. {slot.get('end_at')})"
        (canceled if slot.get("canceled_at") else live).append((start, end))
    machine = machines.get(machine_id)
    if machine is None:
        name, n = report.unknown_machines.get(machine_id, (str(reservable.get("name", "")), 0))
        report.unknown_machines[machine_id] = (name, n + 1)
        return None
    windows = _windows(live)
    overlap = [(s, e) for s, e in (windows or _windows(canceled))
               if (since is None or e > since) and (until is None or s < until)]
    if not overlap:
        report.outside_window += 1
        return None
    member = members.get(user_id) if user_id is not None else DELETED_USER_MEMBER
    if user_id is None:
        report.deleted_users += 1
        report.deleted_user_sessions += len(windows)
    elif member is None:
        member = f"{UNKNOWN_USER_PREFIX}{user_id}"
        name, n = report.unknown_users.get(user_id, (str(user.get("full_name", "")), 0))
        report.unknown_users[user_id] = (name, n + len(windows or [0]))
    if not windows:  # every slot cancelled: the booking is withdrawn
        whole = _windows(canceled)
        report.canceled.append(Session(machine, member, whole[0][0], whole[-1][1], "fabmanager", str(rid)))
        return None
    sessions.extend(Session(machine, member, s, e, "fabmanager", str(rid)) for s, e in windows)
    return None
