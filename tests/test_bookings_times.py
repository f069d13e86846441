"""The one time parser (analytics/bookings/times.py): ISO 8601, Unix seconds, day-first
French spreadsheet dates in the site's zone, strict daylight-saving handling, and iCalendar's
rule for local times that occur twice or not at all."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from analytics.bookings.times import (LATEST_TIME_S, localize_rfc5545, localize_strict, looks_day_first,
                                      parse_time_s)

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()


def test_iso_unix_and_local_times():
    assert parse_time_s("2026-10-26T09:00:00+01:00") == utc(2026, 10, 26, 8)
    assert parse_time_s("2026-10-26T08:00:00.000Z") == utc(2026, 10, 26, 8)
    assert parse_time_s(" 1792998000 ") == 1792998000.0
    assert parse_time_s("2026-10-26 09:00", PARIS) == utc(2026, 10, 26, 8)
    assert parse_time_s("2026-10-24 09:00", PARIS) == utc(2026, 10, 24, 7)  # CEST, before the change
    with pytest.raises(ValueError, match="has no UTC offset"):
        parse_time_s("2026-10-26 09:00")


def test_day_first_french_dates_in_the_given_zone():
    assert parse_time_s("26/10/2026 09:00", PARIS, day_first=True) == utc(2026, 10, 26, 8)
    assert parse_time_s("24/10/2026 09:00:30", PARIS, day_first=True) == utc(2026, 10, 24, 7, 0, 30)
    assert parse_time_s("03.11.2026 14h30", PARIS, day_first=True) == utc(2026, 11, 3, 13, 30)
    assert looks_day_first("26/10/2026 09:00") and not looks_day_first("2026-10-26 09:00")
    with pytest.raises(ValueError, match=r"'26/10/2026 09:00' has no UTC offset.*a spreadsheet date is local"):
        parse_time_s("26/10/2026 09:00", day_first=True)
    with pytest.raises(ValueError, match=r"read day first \(month must be in 1\.\.12\)"):
        parse_time_s("10/26/2026 09:00", PARIS, day_first=True)  # a US export: month first
    with pytest.raises(ValueError, match="four digits"):
        parse_time_s("26/10/26 09:00", PARIS, day_first=True)
    with pytest.raises(ValueError, match="occurs twice in Europe/Paris"):
        parse_time_s("25/10/2026 02:30", PARIS, day_first=True)
    # without day_first (power files: no zone), a display date says how to export, in one line
    with pytest.raises(ValueError, match="spreadsheet's display format; format the column as YYYY-MM-DDTHH:MM:SS"):
        parse_time_s("26/10/2026 09:00", PARIS)


def test_unreadable_times_say_how_to_write_them():
    with pytest.raises(ValueError, match=r"'lundi 9h' is neither .* nor Unix seconds$"):
        parse_time_s("lundi 9h")
    with pytest.raises(ValueError, match="format the column as DD/MM/YYYY HH:MM or YYYY-MM-DD HH:MM"):
        parse_time_s("lundi 9h", PARIS, day_first=True)
    with pytest.raises(ValueError, match="looks like milliseconds"):
        parse_time_s("1792998000000")
    with pytest.raises(ValueError, match="is not a time"):
        parse_time_s("nan")
    assert parse_time_s("0", plausible_unix=False) == 0.0
    with pytest.raises(ValueError, match="outside 1970-01-01 .. 2262-04-11"):
        parse_time_s("9223372037", plausible_unix=False)
    assert parse_time_s("2262-04-11T23:47:16Z") == LATEST_TIME_S


def test_strict_and_rfc5545_rules_across_clock_changes():
    with pytest.raises(ValueError, match="does not exist in Europe/Paris"):
        localize_strict(dt.datetime(2026, 3, 29, 2, 30), PARIS)
    # RFC 5545 3.3.5: first occurrence of 02:30 on 25 October (CEST); in the March gap, the
    # offset before the gap (CET): 02:30 is read as 01:30Z, i.e. 03:30 CEST
    assert localize_rfc5545(dt.datetime(2026, 10, 25, 2, 30), PARIS).timestamp() == utc(2026, 10, 25, 0, 30)
    assert localize_rfc5545(dt.datetime(2026, 3, 29, 2, 30), PARIS).timestamp() == utc(2026, 3, 29, 1, 30)
    assert localize_rfc5545(dt.datetime(2026, 7, 1, 9), PARIS).timestamp() == utc(2026, 7, 1, 7)
    # a zone built by dateutil from a VTIMEZONE answers the same
    from dateutil import tz as dateutil_tz

    new_york = dateutil_tz.gettz("America/New_York")
    assert localize_rfc5545(dt.datetime(2026, 3, 8, 2, 30), new_york).timestamp() == utc(2026, 3, 8, 7, 30)
    assert localize_rfc5545(dt.datetime(2026, 11, 1, 1, 30), new_york).timestamp() == utc(2026, 11, 1, 5, 30)
