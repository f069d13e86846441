"""The one reader of times written in input files (sessions, power and factor CSV files,
Fab-manager answers, command options).

Times become float Unix seconds (UTC). Accepted:

- ISO 8601 with a UTC offset or ``Z`` (``2026-10-26T09:00:00+01:00``, ``...08:00:00.000Z``);
- Unix seconds (``1730016000``, ``1730016000.5``);
- a local time without offset (ISO ``2026-10-26 09:00``, or, with ``day_first``, the French
  spreadsheet form ``26/10/2026 09:00``) in the time zone the caller gives; refused when none
  is given, and refused when it does not exist or occurs twice there (the night clocks change:
  `localize_strict`).

Every time must be one the journal and the analysis can hold: 1970-01-01 .. 2262-04-11
(`EARLIEST_TIME_S`, `LATEST_TIME_S`; times are kept as 64-bit nanoseconds, numpy
``datetime64[ns]`` and the journal's ``time_ns``). Unix seconds written by hand or exported by
a booking tool are also checked to be plausible (2000 .. 2100, `plausible_unix`), which
catches milliseconds.

iCalendar's own rule for local times that occur twice or not at all (RFC 5545, 3.3.5: the first
occurrence; in a gap, the offset before the gap) is `localize_rfc5545`.
"""

from __future__ import annotations

import datetime as dt
import math
import re

EARLIEST_TIME_S = 0.0  # 1970-01-01T00:00:00Z [s]
LATEST_TIME_S = 9_223_372_036.0  # 2262-04-11T23:47:16Z [s]: the last whole second of int64 ns
PLAUSIBLE_MIN_S = 946_684_800.0  # 2000-01-01T00:00:00Z [s]: earlier Unix seconds are a mistake
PLAUSIBLE_MAX_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z [s]

ISO_EXAMPLE = "2024-10-27T09:00:00+01:00 or 2024-10-27T08:00:00Z"
_DAY_FIRST = re.compile(r"(\d{1,2})[/.](\d{1,2})[/.](\d{2,4})(?:[ T]+(\d{1,2})[:h](\d{2})(?::(\d{2}))?)?")
SPREADSHEET_DATE = re.compile(r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b")


def check_time_s(value: float, text: str) -> float:
    """`value` [s] when it is a time the analysis can hold (`EARLIEST_TIME_S` ..
    `LATEST_TIME_S`); ValueError naming `text` and what to check otherwise."""
    if EARLIEST_TIME_S <= value <= LATEST_TIME_S:
        return value
    hint = " (it looks like milliseconds: divide by 1000)" if (
        EARLIEST_TIME_S * 1000 < value <= LATEST_TIME_S * 1000 and _is_number(text)) else ""
    raise ValueError(f"{text!r} is outside 1970-01-01 .. 2262-04-11, the times the analysis and the "
                     f"journal can hold (64-bit nanoseconds); check the year{hint}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def offset_text(offset: dt.timedelta | None) -> str:
    """'+02:00' for a UTC offset."""
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
                     f"{offset_text(first.utcoffset())} for the first, "
                     f"{offset_text(second.utcoffset())} for the second")


def localize_rfc5545(naive: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The UTC time of a local wall-clock time by RFC 5545, 3.3.5: a time that occurs twice is
    its first occurrence; one in a gap (clocks jump forward) uses the UTC offset before the gap.

    Works with any tzinfo (zoneinfo, or dateutil's zones built from a VTIMEZONE, which answer
    differently about `fold` in a gap). OverflowError at the ends of the calendar."""
    offsets = set()
    for shift_d in (-1, 0, 1):
        for fold in (0, 1):
            try:
                probe = naive + dt.timedelta(days=shift_d)
                offset = probe.replace(tzinfo=tz, fold=fold).utcoffset()
            except (OverflowError, ValueError):  # the first or last day of the calendar
                continue
            if offset is not None:
                offsets.add(offset)
    if not offsets:
        return naive.replace(tzinfo=dt.timezone.utc)
    matches = []
    for offset in offsets:
        utc = (naive - offset).replace(tzinfo=dt.timezone.utc)
        try:
            back = utc.astimezone(tz).replace(tzinfo=None, fold=0)
        except (OverflowError, ValueError):
            back = None
        if back == naive:
            matches.append(utc)
    if matches:
        return min(matches)
    # a gap: the offset in force just before it is the one at (naive - largest offset)
    before = (naive - max(offsets)).replace(tzinfo=dt.timezone.utc).astimezone(tz).utcoffset()
    return (naive - before).replace(tzinfo=dt.timezone.utc)


def seconds(when: dt.datetime) -> float:
    """Unix seconds of an aware time; -inf when its UTC time falls off the calendar (year 1
    with a positive offset, year 9999 with a negative one), for check_time_s to refuse."""
    try:
        return when.timestamp()
    except (OverflowError, ValueError):
        return float("-inf")


def to_ms(t_s: float) -> float:
    """Seconds rounded to the millisecond (the resolution sessions are stored with)."""
    return round(t_s * 1000.0) / 1000.0


def _local(naive: dt.datetime, text: str, tz: dt.tzinfo | None, what: str) -> float:
    if tz is None:
        raise ValueError(f"{text!r} has no UTC offset: add one (e.g. +01:00, or Z for UTC) or give the "
                         f"time zone the file is written in{what}")
    try:
        value = seconds(localize_strict(naive, tz))
    except OverflowError:  # localize_strict's UTC time of a year-1 or year-9999 local time
        value = float("-inf")
    return check_time_s(value, text)


def _day_first(match: re.Match, text: str) -> dt.datetime:
    day, month, year, hour, minute, second = match.groups()
    if len(year) != 4:
        raise ValueError(f"{text!r}: write the year with four digits (26/10/2026 09:00)")
    try:
        return dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date and time, read day first ({exc})") from None


def parse_time_s(text: str, tz: dt.tzinfo | None = None, *, day_first: bool = False,
                 plausible_unix: bool = True) -> float:
    """Unix seconds [s] of a time as written in an input file (see the module docstring).

    tz: the zone of local times (without offset); None refuses them.
    day_first: also read ``26/10/2026 09:00`` (day, month, year; French spreadsheets) in `tz`.
    plausible_unix: Unix seconds must lie in 2000 .. 2100 (else only 1970 .. 2262).
    Raises ValueError with a one-line message that says what to write instead.
    """
    text = text.strip()
    if not text:
        raise ValueError(f"empty: write an ISO 8601 time such as {ISO_EXAMPLE.split(' or ')[0]}")
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a time")
        if plausible_unix and not PLAUSIBLE_MIN_S <= value < PLAUSIBLE_MAX_S:
            hint = (" (it looks like milliseconds: divide by 1000)"
                    if PLAUSIBLE_MIN_S * 1000 <= abs(value) < PLAUSIBLE_MAX_S * 1000 else "")
            raise ValueError(f"{text!r} read as Unix seconds is not between 2000 and 2100{hint}")
        return check_time_s(value, text)
    match = _DAY_FIRST.fullmatch(text)
    if match and day_first:
        return _local(_day_first(match, text), text, tz, " (a spreadsheet date is local time)")
    if SPREADSHEET_DATE.match(text) and not day_first:
        raise ValueError(f"time {text!r} is in a spreadsheet's display format; format the column as "
                         "YYYY-MM-DDTHH:MM:SS with the UTC offset (+01:00, or Z for UTC), or as Unix "
                         "seconds, before exporting")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        also = (", nor a day-first date (26/10/2026 09:00); in a spreadsheet, format the column as "
                "DD/MM/YYYY HH:MM or YYYY-MM-DD HH:MM before exporting") if day_first else ""
        raise ValueError(f"{text!r} is neither an ISO 8601 time (e.g. {ISO_EXAMPLE}) nor Unix seconds"
                         f"{also}") from None
    if when.tzinfo is None:
        return _local(when, text, tz, "")
    return check_time_s(seconds(when), text)


def looks_day_first(text: str) -> bool:
    """Whether `text` is written as a day-first date (26/10/2026 09:00)."""
    return _DAY_FIRST.fullmatch(text.strip()) is not None
