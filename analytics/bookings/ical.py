"""Sessions from iCalendar files (RFC 5545), as Google, Thunderbird, Nextcloud, Apple and
Outlook/Exchange export them.

The calendar is read by `icalendar` (>= 6: unfolding, escapes, parameters, VTIMEZONE
definitions, Windows zone names) and recurring events are expanded by `recurring-ical-events`
(RRULE, RDATE, EXDATE and RECURRENCE-ID overrides, as the RFC says, in local time across
daylight-saving changes). This module adds what a booking needs and the project's messages:
every problem names the file, the line of the event (and of the property where known) and
what to do; a broken file is never a traceback.

Times
    - UTC (``...Z``), local with ``TZID=``: a VTIMEZONE of the file with that TZID first (Apple
      writes ``TZID=EST`` with its daylight-saving rules: honoured, not the fixed IANA ``EST``),
      else an IANA name (a prefix such as ``/mozilla.org/.../Europe/Paris`` is accepted) or a
      Windows name (Outlook: ``Romance Standard Time`` is Europe/Paris); floating local time is
      in the time zone given as `tz` (the site's). A local time that occurs twice is its first
      occurrence, one in a daylight-saving gap uses the offset before the gap (3.3.5).
    - DURATION (3.3.6): days and weeks in local days, the rest exact.
    - All-day events (DATE values) hold the machine for the whole site-local day(s), midnight
      to midnight, not only the opening hours: a member who booked the day may work late,
      and energy used that day is theirs, not standby waste. A day on which clocks change
      lasts 23 or 25 hours.

Which events
    - Recurring events are expanded within the window [start_s, end_s) when given. Without
      one, the window runs from the earliest DTSTART of the file to `DEFAULT_SPAN_DAYS` after
      the later of now and the latest DTSTART (bookings made a year ahead at most). Events
      that do not recur are all read when no window is given. A rule that would run through
      more than `MAX_RULE_STEPS` steps (FREQ=MINUTELY for years) or give more than
      `MAX_OCCURRENCES` occurrences in the window is refused, saying to import a shorter window.
    - The same UID twice: the higher SEQUENCE replaces the lower (then the later DTSTAMP, then
      the later in the file), said in a warning; an event with RECURRENCE-ID moves or changes
      that one occurrence.
    - STATUS:CANCELLED (or METHOD:CANCEL) events and occurrences, and occurrences removed by
      EXDATE within the window, are cancellations (`ImportReport.canceled`): a booking stored
      earlier is withdrawn.
    - machine: the first of LOCATION, each CATEGORIES value, and the part of SUMMARY after
      " @ " (SUMMARY "member @ machine") that `machine_for` recognises.
    - member: the first of ATTENDEE (its CN, then its address), ORGANIZER (CN, address) and
      the part of SUMMARY before " @ " that `member_for` recognises.
    - booking_id: UID; for an occurrence of a recurring event, UID/ORIGINAL-START (UTC,
      ``20261006T070000Z``, or the date of an all-day one), so that a moved occurrence replaces
      the one stored.

Speed: about 25 000 events a second on one core (`tests/test_bookings_ical.py` measures a file
of 3 000 events, 2 000 of them occurrences of weekly series).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import warnings
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from analytics.bookings.names import Finder, lookup
from analytics.bookings.report import ImportReport, SessionsError
from analytics.bookings.times import check_time_s, localize_rfc5545, seconds, to_ms
from analytics.records import Session

log = logging.getLogger("wattelier.analytics.bookings.ical")

DEFAULT_SPAN_DAYS = 366  # [d] the default window ends this long after now or the latest DTSTART
MAX_OCCURRENCES = 10_000  # per recurring event within the window (a daily booking for 27 years)
MAX_RULE_STEPS = 200_000  # steps a rule may take from its DTSTART to the end of the window
_TIME_PROPS = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")
_STEP_S = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 7 * 86400,
           "MONTHLY": 28 * 86400, "YEARLY": 365 * 86400}
_SAFE_TZID = re.compile(r"[A-Za-z0-9 /_+\-.()&,']{1,80}")
_BAD_TZID = "X-WATTELIER-UNKNOWN-ZONE-"
_DATE_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)")
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


# ---------------------------------------------------------------------------------------------
# Lines: where each component and property is, for the messages (icalendar keeps no lines)


@dataclass
class _Where:
    """Where one VEVENT or VTIMEZONE is: its BEGIN line, and each property's first line and
    value as written."""

    line: int
    props: dict[str, tuple[int, str]] = field(default_factory=dict)
    bad_tzids: dict[str, str] = field(default_factory=dict)  # placeholder -> TZID as written


def _value(text: str) -> str:
    """The value of a content line: after the first ':' outside quotes."""
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return text[i + 1:]
    return ""


def _zone_name_breaks_lookup(name: str) -> bool:
    """Whether a TZID would make a zone lookup fail with an error other than 'not found'
    (too long for a file name, a path out of the zone database, ...)."""
    if not _SAFE_TZID.fullmatch(name) or ".." in name:
        return True
    for candidate in (name, name.strip("/")):
        try:
            zoneinfo.ZoneInfo(candidate)
        except zoneinfo.ZoneInfoNotFoundError:
            continue
        except (ValueError, OSError):
            return True
        break
    return False


def _lines(data: bytes, path: Path) -> tuple[list[str], list[_Where], list[_Where], str]:
    """Unfolded content lines (3.1; a fold inside a UTF-8 character is undone too), where each
    VEVENT and VTIMEZONE is, and the calendar's METHOD; SessionsError for a file whose
    structure is broken (not a calendar, a component never closed or closed twice)."""
    logical: list[tuple[int, bytearray]] = []
    for number, raw in enumerate(re.split(rb"\r\n|\n|\r", data), 1):
        if raw[:1] in (b" ", b"\t") and logical:
            logical[-1][1].extend(raw[1:])
        elif raw.strip():
            logical.append((number, bytearray(raw)))
    lines: list[tuple[int, str]] = []
    for number, raw in logical:
        try:
            lines.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise SessionsError([f"{path}:{number}: not UTF-8 text ({exc.reason}); RFC 5545 "
                                 "calendars are UTF-8"]) from None
    if lines and lines[0][1].startswith("\ufeff"):
        lines[0] = (lines[0][0], lines[0][1][1:])
    if not lines or lines[0][1].strip().upper() != "BEGIN:VCALENDAR":
        raise SessionsError([f"{path}:{lines[0][0] if lines else 1}: not an iCalendar file (it must start "
                             "with BEGIN:VCALENDAR)"])
    events: list[_Where] = []
    zones: list[_Where] = []
    stack: list[str] = []  # the components open, outermost first
    opened: list[int] = []  # the line each of them began on
    method = ""
    out: list[str] = []
    current: _Where | None = None
    for number, text in lines:
        name = re.match(r"[A-Za-z0-9-]*", text).group(0).upper()
        if "TZID=" in text.upper() and current is not None:
            text = _guard_tzids(text, current)
        out.append(text)
        if name in ("BEGIN", "END"):
            component = _value(text).strip().upper()
            if name == "BEGIN":
                if component == "VEVENT" and "VEVENT" in stack:
                    raise SessionsError([f"{path}:{number}: BEGIN:VEVENT inside another VEVENT (line "
                                         f"{opened[stack.index('VEVENT')]}); close the first with END:VEVENT"])
                stack.append(component)
                opened.append(number)
                if component in ("VEVENT", "VTIMEZONE") and len(stack) == 2:
                    current = _Where(number)
                    (events if component == "VEVENT" else zones).append(current)
                continue
            if not stack or stack[-1] != component:
                raise SessionsError([f"{path}:{number}: END:{component} without BEGIN:{component}"])
            stack.pop()
            opened.pop()
            if len(stack) == 1:
                current = None
            if not stack and number != lines[-1][0]:
                following = next(n for n, _ in lines if n > number)
                raise SessionsError([f"{path}:{following}: text after END:VCALENDAR; one calendar per file"])
            continue
        if not stack:
            raise SessionsError([f"{path}:{number}: {name or text[:20]!r} outside BEGIN:VCALENDAR ... "
                                 "END:VCALENDAR"])
        if current is not None and len(stack) == 2 and name not in current.props:
            current.props[name] = (number, _value(text))
        elif len(stack) == 1 and name == "METHOD":
            method = _value(text).strip().upper()
    if stack:
        raise SessionsError([f"{path}:{lines[-1][0]}: BEGIN:{stack[-1]} is never closed (file cut short?)"])
    return out, events, zones, method


def _guard_tzids(text: str, where: _Where) -> str:
    """A TZID parameter that would break the zone lookup is replaced by a placeholder (the
    event then reports the TZID as written)."""
    def swap(match: re.Match) -> str:
        name = match.group(2) if match.group(2) is not None else match.group(3)
        if not _zone_name_breaks_lookup(name):
            return match.group(0)
        placeholder = f"{_BAD_TZID}{len(where.bad_tzids)}"
        where.bad_tzids[placeholder] = name
        return f"{match.group(1)}{placeholder}"

    head, colon, rest = text.partition(":") if '"' not in text else (text, "", "")
    if not colon:  # quoted parameters: swap over the whole line up to the value
        value = _value(text)
        head = text[:len(text) - len(value) - 1] if value or text.endswith(":") else text
        rest, colon = value, ":" if value or text.endswith(":") else ""
    head = re.sub(r'(?i)(;TZID=)(?:"([^"]*)"|([^;:]*))', swap, head)
    return head + colon + rest


# ---------------------------------------------------------------------------------------------
# Times


def _raw_problem(name: str, raw: str, error: str) -> str:
    """What is wrong with a date-time value icalendar could not read."""
    raw = raw.strip()
    if name == "DURATION":
        return f"DURATION {raw[:40]!r} is not a duration such as PT1H30M or P1D"
    match = _DATE_TIME.fullmatch(raw)
    if match:
        y, mo, d, h, mi, s, _ = match.groups()
        try:
            dt.datetime(int(y), int(mo), int(d), int(h), int(mi), min(int(s), 59))
        except ValueError as exc:
            return f"{name} {raw!r} is not a date and time ({exc})"
    match = _DATE.fullmatch(raw)
    if match:
        try:
            dt.date(*(int(g) for g in match.groups()))
        except ValueError as exc:
            return f"{name} {raw!r} is not a date ({exc})"
    if name == "RRULE":
        return f"RRULE {raw[:60]!r} is not a recurrence rule ({error[:80]})"
    return (f"{name} {raw[:40]!r} is not a DATE-TIME (20241027T093000, 20241027T083000Z) nor a DATE "
            "(20241027)")


class _Zones:
    """The time zones of one file: its VTIMEZONE definitions (by TZID) before any other."""

    def __init__(self, calendar, wheres: list[_Where], path: Path, problems: list[str]) -> None:
        self.by_tzid: dict[str, dt.tzinfo] = {}
        for component, where in zip(calendar.walk("VTIMEZONE"), wheres):
            tzid = str(component.get("TZID", "")).strip()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.by_tzid[tzid] = component.to_tz(lookup_tzid=False)
            except Exception as exc:  # noqa: BLE001  (a broken VTIMEZONE: said, with its line)
                problems.append(f"{path}:{where.line}: VTIMEZONE {tzid[:60]!r} cannot be read "
                                f"({str(exc)[:80]}); export the calendar with its time zones again")


def _retag(value, zone: dt.tzinfo | None, site_tz: dt.tzinfo | None):
    """A date-time with the zone it is really in (its VTIMEZONE; the site's when floating)."""
    if not isinstance(value, dt.datetime) or value.tzinfo is dt.timezone.utc:
        return value
    if zone is not None:
        return value.replace(tzinfo=zone)
    if value.tzinfo is None and site_tz is not None:
        return value.replace(tzinfo=site_tz)
    return value


def _utc(value, site_tz: dt.tzinfo | None) -> dt.datetime:
    """The UTC time of an (aware) date-time, or of the site-local midnight of a date (3.3.5)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("floating")
        if value.utcoffset() == dt.timedelta(0) and value.tzinfo in (dt.timezone.utc,):
            return value
        return localize_rfc5545(value.replace(tzinfo=None), value.tzinfo)
    zone = site_tz
    if zone is None:
        raise ValueError("day")
    return localize_rfc5545(dt.datetime(value.year, value.month, value.day), zone)


def _utc_text(value) -> str:
    """The original start of an occurrence as its booking id suffix."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


# ---------------------------------------------------------------------------------------------
# Events


@dataclass
class _Event:
    component: object
    where: _Where
    order: int
    uid: str
    summary: str
    label: str  # "FILE:LINE: event 'UID' ('SUMMARY')"
    sequence: int = 0
    stamp: float = 0.0
    recurrence: str = ""  # the RECURRENCE-ID as a booking id suffix ('' for a master)
    problems: list[str] = field(default_factory=list)

    def line_of(self, name: str) -> int:
        return self.where.props.get(name, (self.where.line, ""))[0]

    def raw(self, name: str) -> str:
        return self.where.props.get(name, (0, ""))[1]


def _text(component, name: str) -> str:
    value = component.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip() if value is not None else ""


_MOMENTS = ("DTSTART", "DTEND", "RECURRENCE-ID")  # RFC 5545 3.8.2.4, 3.8.2.2, 3.8.4.4: DATE or DATE-TIME


def _prop_value(event: _Event, name: str):
    """The value of a property, or None; a problem (with its line) when it is broken."""
    component = event.component
    if name not in component:
        return None
    broken = dict(getattr(component, "errors", []) or [])
    if name in broken:
        raise ValueError(f"line {event.line_of(name)}: {_raw_problem(name, event.raw(name), str(broken[name]))}")
    prop = component[name]
    if isinstance(prop, list):
        prop = prop[0]
    try:
        value = prop.dt
    except Exception as exc:  # noqa: BLE001  (icalendar's broken property)
        raise ValueError(f"line {event.line_of(name)}: {_raw_problem(name, event.raw(name), str(exc))}") from None
    params = getattr(prop, "params", None) or {}
    if name in _MOMENTS and not isinstance(value, dt.date):
        raise ValueError(f"line {event.line_of(name)}: {name} {event.raw(name)!r} is not a date or a "
                         "date-time; write it as 20261027T090000 (with TZID or Z) or 20261027")
    if name == "DURATION" and not isinstance(value, dt.timedelta):  # icalendar reads a date-time too
        raise ValueError(f"line {event.line_of(name)}: {_raw_problem(name, event.raw(name), '')}")
    if isinstance(value, dt.datetime) and str(params.get("VALUE", "")).upper() == "DATE":
        return value.date()  # a DATE with a TZID is still a whole day
    return value


def _zone_of(event: _Event, name: str, zones: _Zones, site_tz: dt.tzinfo | None):
    """(zone, problem) of a TZID parameter: its VTIMEZONE, else what icalendar found."""
    prop = event.component.get(name)
    if isinstance(prop, list):
        prop = prop[0] if prop else None
    params = getattr(prop, "params", None) or {}
    tzid = params.get("TZID")
    if not tzid:
        return None, ""
    tzid = str(tzid)
    written = event.where.bad_tzids.get(tzid, tzid)
    if tzid in zones.by_tzid:
        return zones.by_tzid[tzid], ""
    value = getattr(prop, "dt", None)
    if tzid in event.where.bad_tzids or (isinstance(value, dt.datetime) and value.tzinfo is None):
        return None, (f"line {event.line_of(name)}: TZID {written[:60]!r} is not an IANA time zone name "
                      "(such as Europe/Paris), a Windows one (Romance Standard Time) nor a VTIMEZONE "
                      "of the file; export the calendar with its time zones, or in UTC")
    return None, ""


def _fix_zones(event: _Event, zones: _Zones, site_tz: dt.tzinfo | None) -> None:
    """Put each date-time of the event in the zone it is really in (before any expansion)."""
    component = event.component
    broken = {name for name, _ in getattr(component, "errors", []) or []}
    for name in _TIME_PROPS:
        if name not in component or name in broken:
            continue
        zone, problem = _zone_of(event, name, zones, site_tz)
        if problem:
            event.problems.append(problem)
            continue
        props = component[name] if isinstance(component[name], list) else [component[name]]
        for prop in props:
            if hasattr(prop, "dts"):  # EXDATE, RDATE: lists of values
                for item in prop.dts:
                    if hasattr(item, "dt") and not isinstance(item.dt, tuple):
                        item.dt = _retag(item.dt, zone, site_tz)
            elif hasattr(prop, "dt") and not isinstance(getattr(prop, "dt", None), tuple):
                try:
                    prop.dt = _retag(prop.dt, zone, site_tz)
                except Exception:  # noqa: BLE001  (a broken property: reported when read)
                    pass


def _window_times(event: _Event, start, end, site_tz: dt.tzinfo | None) -> tuple[float, float]:
    """(start_s, end_s) of one occurrence; ValueError naming the property when unusable."""
    result = []
    for what, value, name in (("DTSTART", start, "DTSTART"), ("DTEND", end, "DTEND")):
        if "DTEND" not in event.component and name == "DTEND":
            name = "DURATION" if "DURATION" in event.component else "DTSTART"
            what = ("the end of DURATION" if name == "DURATION" else "the end of the day of DTSTART")
        raw = event.raw(name).strip() or str(value)
        try:
            when = _utc(value, _day_zone(event, name, site_tz)) if value is not None else None
        except ValueError as exc:
            kind = "a floating local time" if str(exc) == "floating" else "a whole day"
            raise ValueError(f"line {event.line_of(name)}: {name} {raw!r} is {kind} and no time zone was "
                             "given; give the site's time zone") from None
        except OverflowError:
            if name == "DURATION":
                raise ValueError(f"line {event.line_of(name)}: DURATION {raw[:40]!r} ends outside the "
                                 "calendar; a booking lasts hours or days (e.g. PT2H, P1D)") from None
            when = None
        try:
            result.append(check_time_s(seconds(when) if when is not None else float("-inf"), raw))
        except ValueError as exc:
            raise ValueError(f"line {event.line_of(name)}: {what} {exc}") from None
    return result[0], result[1]


def _day_zone(event: _Event, name: str, site_tz: dt.tzinfo | None) -> dt.tzinfo | None:
    """The zone of a whole day: its TZID's when it has one (DTSTART;VALUE=DATE;TZID=...), else
    the site's."""
    prop = event.component.get(name if name in ("DTSTART", "DTEND") else "DTSTART")
    value = getattr(prop, "dt", None) if prop is not None and not isinstance(prop, list) else None
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.tzinfo
    return site_tz


def _occurrence_end(event: _Event, start):
    """The end of a single (not recurring) event: DTEND, DTSTART + DURATION, or one day."""
    end = _prop_value(event, "DTEND")
    if end is not None:
        return end
    duration = _prop_value(event, "DURATION")
    if duration is not None:
        try:
            if isinstance(start, dt.datetime):
                nominal = dt.timedelta(days=duration.days)
                exact = duration - nominal
                local = start + nominal  # days in local days (3.3.6), wall clock kept
                return _Exact(local, exact)
            return start + duration
        except OverflowError:
            raise ValueError(f"line {event.line_of('DURATION')}: DURATION {event.raw('DURATION').strip()[:40]!r} "
                             "ends outside the calendar; a booking lasts hours or days (e.g. PT2H, P1D)") from None
    if isinstance(start, dt.datetime):
        raise ValueError("no DTEND nor DURATION; give the end of the booking")
    try:
        return start + dt.timedelta(days=1)  # 3.6.1: a DATE event lasts one day
    except OverflowError:
        return None  # the last day of the calendar: said as outside the times the journal holds


@dataclass
class _Exact:
    """A local wall-clock time plus an exact duration (hours, minutes, seconds of DURATION)."""

    local: dt.datetime
    exact: dt.timedelta


def _times(event: _Event, start, end, site_tz: dt.tzinfo | None) -> tuple[float, float]:
    exact = None
    if isinstance(end, _Exact):
        end, exact = end.local, end.exact
    start_s, end_s = _window_times(event, start, end, site_tz)
    if exact is not None:
        end_s += exact.total_seconds()
        try:
            check_time_s(end_s, event.raw("DURATION").strip())
        except ValueError as exc:
            raise ValueError(f"line {event.line_of('DURATION')}: the end of DURATION {exc}") from None
    return start_s, end_s


def _people(component, member_for: Finder | None) -> tuple[list[tuple[str, str]], list[tuple[str, str | None]]]:
    texts: list[tuple[str, str]] = []
    people: list[tuple[str, str | None]] = []
    for pname in ("ATTENDEE", "ORGANIZER"):
        values = component.get(pname)
        if values is None:
            continue
        for value in values if isinstance(values, list) else [values]:
            params = getattr(value, "params", {}) or {}
            candidates = [str(params["CN"])] if params.get("CN") else []
            candidates.append(re.sub(r"(?i)^mailto:", "", str(value).strip()))
            texts += [(pname, t) for t in candidates]
            people.append((pname, next((m for t in candidates if (m := lookup(member_for, t))), None)))
    return texts, people


def _machine_member(event: _Event, component, machine_for: Finder, member_for: Finder | None,
                    problems: list[str]) -> tuple[str | None, str | None]:
    summary = _text(component, "SUMMARY")
    summary_member, _, summary_machine = summary.rpartition(" @ ")
    machine_texts: list[tuple[str, str]] = []
    locations = component.get("LOCATION")
    for value in locations if isinstance(locations, list) else ([locations] if locations is not None else []):
        machine_texts.append(("LOCATION", str(value)))
    categories = component.get("CATEGORIES")
    for value in categories if isinstance(categories, list) else ([categories] if categories is not None else []):
        cats = getattr(value, "cats", None)
        machine_texts += [("CATEGORIES", str(c)) for c in (cats if cats is not None else [value])]
    machine_texts.append(("SUMMARY", summary_machine if summary_member else summary))
    machine = next((m for _, t in machine_texts if (m := lookup(machine_for, t))), None)
    member_texts, people = _people(component, member_for)
    if summary_member:
        member_texts.append(("SUMMARY", summary_member))
        people.append(("SUMMARY", lookup(member_for, summary_member)))
    attendees = {m for n, m in people if n == "ATTENDEE" and m}
    member = next((m for _, m in people if m), None)
    if len(attendees) > 1:
        problems.append(f"its attendees are several members ({', '.join(sorted(attendees))}); a session "
                        "has one member: keep one ATTENDEE")
    if machine is None:
        tried = ", ".join(f"{n} {t!r}" for n, t in machine_texts if t.strip()) or "nothing"
        problems.append(f"no machine of the site found (tried {tried}); put the machine's name in LOCATION "
                        "or end SUMMARY with ' @ machine'")
    if member is None:
        tried = ", ".join(f"{n} {t!r}" for n, t in member_texts if t.strip()) or "nothing"
        problems.append(f"no member of the site found (tried {tried}); add the member as ATTENDEE (CN or "
                        "e-mail) or start SUMMARY with 'member @ '")
    return machine, member


def _stamp(component) -> float:
    value = component.get("DTSTAMP") or component.get("LAST-MODIFIED")
    try:
        when = value.dt
        return seconds(when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc))
    except Exception:  # noqa: BLE001  (no or broken DTSTAMP: ranks first)
        return 0.0


def _sequence(component) -> int:
    try:
        return int(str(component.get("SEQUENCE", 0)).strip())
    except ValueError:
        return 0


# ---------------------------------------------------------------------------------------------
# The reader


def _parse(path: Path, data: bytes):
    import icalendar

    text, events, zones, method = _lines(data, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calendar = icalendar.Calendar.from_ical("\r\n".join(text) + "\r\n")
    except Exception as exc:  # noqa: BLE001  (icalendar's own error for a broken file)
        raise SessionsError([f"{path}: not a readable iCalendar file ({str(exc)[:120]}); export it "
                             "again from the calendar"]) from None
    if isinstance(calendar, list):
        calendar = calendar[0]
    return calendar, events, zones, method


def _rule_steps(event: _Event, start, window_end: dt.datetime) -> tuple[int, str]:
    """How many steps the rule takes from DTSTART to the end of the window (an upper bound)."""
    rule = event.component.get("RRULE")
    if rule is None:
        return 0, ""
    rules = rule if isinstance(rule, list) else [rule]
    worst, text = 0, ""
    begin = start if isinstance(start, dt.datetime) else dt.datetime(start.year, start.month, start.day)
    if begin.tzinfo is None:
        begin = begin.replace(tzinfo=dt.timezone.utc)
    span_s = max(0.0, (window_end - begin).total_seconds())
    for r in rules:
        freq = str((r.get("FREQ") or ["DAILY"])[0]).upper()
        interval = max(1, int((r.get("INTERVAL") or [1])[0]))
        factor = 1
        for by in ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH"):
            factor *= max(1, len(r.get(by) or []))
        steps = int(span_s / (_STEP_S.get(freq, 86400) * interval)) * factor
        if steps > worst:
            worst, text = steps, f"FREQ={freq}" + (f";INTERVAL={interval}" if interval > 1 else "")
    return worst, text


def read_sessions_ical(path: str | Path, machine_for: Finder, tz: dt.tzinfo | None = None, *,
                       member_for: Finder | None = None, source: str = "ical",
                       report: ImportReport | None = None, start_s: float | None = None,
                       end_s: float | None = None, now_s: float | None = None) -> list[Session]:
    """Sessions of an iCalendar file, by the rules of the module docstring.

    machine_for, member_for: text -> machine / member name (or None), as a callable or a
    mapping (e.g. `machine_finder(site)`); member_for None takes the member's text as it is.
    tz: the time zone of floating times and whole days (the site's).
    start_s, end_s: the window [s] recurring events are expanded in (and, when given, the only
    sessions kept: those overlapping it); now_s: "now" for the default window (the clock).
    report: receives the cancellations and the warnings (logged when no report is given).
    Raises SessionsError listing every problem with the file and line of the event.
    """
    import recurring_ical_events

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SessionsError([f"{path}: cannot read: {exc.strerror}"]) from exc
    calendar, wheres, zone_wheres, method = _parse(path, data)
    log_warnings = report is None  # a caller that passes a report shows the warnings itself
    report = report if report is not None else ImportReport()
    problems: list[str] = []
    zones = _Zones(calendar, zone_wheres, path, problems)
    components = list(calendar.walk("VEVENT"))
    if len(components) != len(wheres):  # icalendar and the line index disagree: lines unknown
        wheres = [_Where(1) for _ in components]
    events: list[_Event] = []
    for order, (component, where) in enumerate(zip(components, wheres)):
        uid, summary = _text(component, "UID"), _text(component, "SUMMARY")
        label = f"{path}:{where.line}: event" + (f" {uid!r}" if uid else "") + (f" ({summary!r})" if summary else "")
        event = _Event(component, where, order, uid, summary, label, _sequence(component), _stamp(component))
        _fix_zones(event, zones, tz)
        if "RECURRENCE-ID" in component and not event.problems:
            try:
                rid = _prop_value(event, "RECURRENCE-ID")
                event.recurrence = _utc_text(_utc(rid, tz) if isinstance(rid, dt.datetime) else rid)
            except (ValueError, OverflowError) as exc:
                event.problems.append(f"line {event.line_of('RECURRENCE-ID')}: RECURRENCE-ID {exc}")
        events.append(event)

    # the same UID (and RECURRENCE-ID) more than once: the higher SEQUENCE, then DTSTAMP, wins
    chosen: dict[tuple[str, str], _Event] = {}
    for event in events:
        key = (event.uid, event.recurrence) if event.uid else ("", f"#{event.order}")
        other = chosen.get(key)
        if other is None or (event.sequence, event.stamp, event.order) > (other.sequence, other.stamp, other.order):
            if other is not None:
                report.warnings.append(f"{event.label}: replaces the event of line {other.where.line} with the "
                                       f"same UID (SEQUENCE {other.sequence} -> {event.sequence})")
            chosen[key] = event
        else:
            report.warnings.append(f"{event.label}: an older version (SEQUENCE {event.sequence}) of the event of "
                                   f"line {other.where.line}; ignored")
    series: dict[str, list[_Event]] = {}
    for (uid, recurrence), event in chosen.items():
        series.setdefault(uid if uid else recurrence, []).append(event)

    window_start, window_end = _window(events, tz, start_s, end_s, now_s)
    sessions: list[Session] = []
    for key, members in series.items():
        members.sort(key=lambda e: (e.recurrence != "", e.order))
        master = members[0]
        recurring = any(name in master.component for name in ("RRULE", "RDATE")) or len(members) > 1
        bad = [(e, p) for e in members for p in e.problems]
        if bad:
            problems.extend(f"{e.label}: {p}" for e, p in bad)
            continue
        try:
            if recurring:
                occurrences = _expand(members, recurring_ical_events, window_start, window_end, tz)
            else:
                occurrences = _single(master, tz)
        except ValueError as exc:
            _problem_or_cancel(master, str(exc), method, tz, machine_for, member_for, source, report, problems)
            continue
        _sessions_of(master, members, occurrences, recurring, method, tz, machine_for, member_for, source,
                     start_s, end_s, report, sessions, problems)
    if problems:
        raise SessionsError(problems)
    for warning in report.warnings if log_warnings else []:
        log.warning("%s", warning)
    return sessions


def _window(events: list[_Event], tz, start_s, end_s, now_s) -> tuple[dt.datetime, dt.datetime]:
    """The window recurring events are expanded in (UTC)."""
    def utc(t_s: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t_s, dt.timezone.utc)

    if start_s is not None and end_s is not None:
        return utc(start_s), utc(end_s)
    starts = []
    for event in events:
        try:
            value = _prop_value(event, "DTSTART")
            if value is not None:
                starts.append(seconds(_utc(value, tz)))
        except (ValueError, OverflowError):
            continue
    starts = [s for s in starts if 0 <= s <= 9_223_372_036] or [now_s or time.time()]
    begin = start_s if start_s is not None else min(starts)
    end = end_s if end_s is not None else max(max(starts), now_s or time.time()) + DEFAULT_SPAN_DAYS * 86400
    return utc(max(0.0, begin)), utc(min(end, 9_223_372_036.0))


def _single(event: _Event, tz) -> list[tuple[object, object, object]]:
    start = _prop_value(event, "DTSTART")
    if start is None:
        raise ValueError("no DTSTART; every booking needs its start")
    return [(event.component, start, _occurrence_end(event, start))]


def _expand(members: list[_Event], library, window_start: dt.datetime, window_end: dt.datetime, tz):
    """The occurrences (component, start, end) of a recurring event within the window."""
    import icalendar

    master = members[0]
    start = _prop_value(master, "DTSTART")
    if start is None:
        raise ValueError("no DTSTART; every booking needs its start")
    broken = dict(getattr(master.component, "errors", []) or [])
    for name in ("RRULE", "RDATE", "EXDATE"):
        if name in broken:
            raise ValueError(f"line {master.line_of(name)}: {_raw_problem(name, master.raw(name), str(broken[name]))}")
    steps, freq = _rule_steps(master, start, window_end)
    if steps > MAX_RULE_STEPS:
        raise ValueError(f"line {master.line_of('RRULE')}: recurring event (RRULE {freq}) would take about "
                         f"{steps} steps to reach {window_end.date()}; a booking repeats daily or weekly: "
                         "import a shorter window (--from/--to) or export the calendar without it")
    mini = icalendar.Calendar()
    for event in members:
        mini.add_component(event.component)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = library.of(mini).between(window_start, window_end)
    except Exception as exc:  # noqa: BLE001  (the library's error for a rule it cannot expand)
        raise ValueError(f"line {master.line_of('RRULE')}: recurring event cannot be expanded "
                         f"({str(exc)[:100]}); check its RRULE, RDATE and EXDATE") from None
    if len(found) > MAX_OCCURRENCES:
        raise ValueError(f"line {master.line_of('RRULE')}: recurring event has {len(found)} occurrences between "
                         f"{window_start.date()} and {window_end.date()}, more than {MAX_OCCURRENCES}; import a "
                         "shorter window (--from/--to)")
    return [(o, o.start, o.end) for o in found]


def _problem_or_cancel(event: _Event, problem: str, method: str, tz, machine_for, member_for, source,
                       report: ImportReport, problems: list[str]) -> None:
    """A problem of an event; for a cancelled one, a withdrawal by its UID (or a warning)."""
    if _canceled(event.component, method):
        if event.uid:
            machine, member = _machine_member(event, event.component, machine_for, member_for, [])
            report.canceled.append(Session(machine or "", member or "", 0.0, 0.0, source, event.uid))
        else:
            report.warnings.append(f"{event.label}: cancelled event without UID ignored: {problem}")
        return
    problems.append(f"{event.label}: {problem}")


def _canceled(component, method: str) -> bool:
    return _text(component, "STATUS").upper() == "CANCELLED" or method == "CANCEL"


def _sessions_of(master: _Event, members: list[_Event], occurrences, recurring: bool, method: str, tz,
                 machine_for, member_for, source: str, start_s, end_s, report: ImportReport,
                 sessions: list[Session], problems: list[str]) -> None:
    """Sessions (or cancellations) of one event's occurrences; problems said once per event."""
    by_recurrence = {e.recurrence: e for e in members if e.recurrence}
    said: set[str] = set()
    for component, start, end in occurrences:
        recurrence = ""
        if recurring:
            rid = component.get("RECURRENCE-ID")
            original = getattr(rid, "dt", None) if rid is not None else start
            try:
                recurrence = _utc_text(_utc(original, tz) if isinstance(original, dt.datetime)
                                       else original)
            except (ValueError, OverflowError):
                recurrence = str(original)
        event = by_recurrence.get(recurrence, master)
        if recurring and "DTEND" not in event.component and "DURATION" in event.component:
            try:
                end = _occurrence_end(event, start)  # exact hours across clock changes (3.3.6)
            except ValueError:
                pass
        booking_id = f"{master.uid}/{recurrence}" if recurring and master.uid else master.uid
        event_problems: list[str] = []
        times = None
        try:
            times = _times(event, start, end, tz)
            if times[1] <= times[0]:
                given = (f"DTEND {event.raw('DTEND').strip()}" if "DTEND" in event.component
                         else f"DURATION {event.raw('DURATION').strip()}")
                event_problems.append(f"ends ({given}) before or when it starts (DTSTART "
                                      f"{event.raw('DTSTART').strip()}); check DTEND")
        except ValueError as exc:
            event_problems.append(str(exc))
            times = None
        machine, member = _machine_member(event, component, machine_for, member_for, event_problems)
        if _canceled(component, method):
            if booking_id or not event_problems:
                start_s_, end_s_ = times if times and not any("before or when" in p for p in event_problems) \
                    else (0.0, 0.0)
                report.canceled.append(Session(machine or "", member or "", to_ms(start_s_), to_ms(end_s_),
                                               source, booking_id))
            else:
                report.warnings.append(f"{event.label}: cancelled event without UID ignored: "
                                       + "; ".join(event_problems))
            continue
        if event_problems:
            for problem in event_problems:
                if problem not in said:
                    said.add(problem)
                    problems.append(f"{event.label}: {problem}")
            continue
        if start_s is not None and end_s is not None and not (times[1] > start_s and times[0] < end_s):
            continue
        if not master.uid and "no UID" not in said:
            said.add("no UID")
            report.warnings.append(f"{event.label}: no UID; a changed event will be stored as a new session")
        sessions.append(Session(machine, member, to_ms(times[0]), to_ms(times[1]), source, booking_id))
    if recurring and master.uid:
        _excluded(master, occurrences, tz, machine_for, member_for, source, start_s, end_s, report)


def _excluded(master: _Event, occurrences, tz, machine_for, member_for, source: str, start_s, end_s,
              report: ImportReport) -> None:
    """Occurrences removed by EXDATE within the window: cancellations (withdraw a stored one)."""
    exdates = master.component.get("EXDATE")
    if exdates is None or not occurrences:
        return
    component, first_start, first_end = occurrences[0]
    try:
        length_s = (_utc(first_end, tz) - _utc(first_start, tz)).total_seconds()
    except (ValueError, OverflowError, TypeError):
        return
    machine, member = _machine_member(master, master.component, machine_for, member_for, [])
    if machine is None or member is None:
        return
    for prop in exdates if isinstance(exdates, list) else [exdates]:
        for item in getattr(prop, "dts", []):
            value = getattr(item, "dt", None)
            if value is None or isinstance(value, tuple):
                continue
            try:
                begin = seconds(_utc(value, tz))
            except (ValueError, OverflowError):
                continue
            if start_s is not None and end_s is not None and not (begin + length_s > start_s and begin < end_s):
                continue
            report.canceled.append(Session(machine, member, to_ms(begin), to_ms(begin + length_s), source,
                                           f"{master.uid}/{_utc_text(value)}"))
