"""Fuzz tests of the files a user hands in (issue 14): power CSV, sessions CSV, iCalendar.

Each parser gets mutations of valid files (built like the project's own test data: the
offline-analysis power file, the bookings of tests/test_sessions.py) and random text and
bytes. It must return its result or raise the module's own error (CsvError, SessionsError),
whose every problem is one line naming the file; nothing else. A result it returns must
keep its promises: finite floats, times sorted (power), within 1970..2262, each session
ending after it starts.

The default run is short, for CI; `WATTELIER_FUZZ_EXAMPLES=5000` runs each test that many
times.
"""

from __future__ import annotations

import math
import os
import zoneinfo
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analytics import csv_input
from analytics.csv_input import (EARLIEST_TIME_S, LATEST_TIME_S, MAX_COUNTER_KWH, MAX_POWER_W,
                                 CsvError, read_hourly_factors_csv, read_power_csv)
from analytics.records import Session
from analytics.sessions import (ImportReport, SessionsError, machine_finder, member_finder,
                                read_sessions_csv, read_sessions_ical)
from devices.site import example_site_path, load_site
from tests.test_sessions import GOOD_EVENTS, ics

EXAMPLES = int(os.environ.get("WATTELIER_FUZZ_EXAMPLES", 200))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
SITE = load_site(example_site_path())
MACHINES, MEMBERS = machine_finder(SITE), member_finder(SITE)
T0 = 1_773_133_200.0  # 2026-03-10T09:00:00Z


# ---------------------------------------------------------------------------------------------
# Valid files to start from


def _power_file(separator: str = ",", decimal: str = ".") -> bytes:
    """The offline-analysis test's power file: laser-1 every 10 s with its counter at the ends
    (ISO times), printers-1 in Unix seconds; optionally as French spreadsheets export it."""
    import datetime as dt

    lines = [separator.join(("time", "machine", "power_w", "energy_import_kwh"))]
    for k in range(12):
        t = T0 + 10.0 * k
        iso = dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z")
        power = "2000.5" if 3 <= k <= 6 else "100"
        counter = {0: "50.00", 11: "50.12"}.get(k, "")
        lines.append(separator.join((iso, "laser-1", power.replace(".", decimal),
                                     counter.replace(".", decimal))))
        lines.append(separator.join((f"{t:.1f}".replace(".", decimal), "printers-1", "360", "")))
    return ("\n".join(lines) + "\n").encode("utf-8")


POWER_SEEDS = [_power_file(), _power_file(";", ","), _power_file(";"), _power_file("\t", ",")]
SESSIONS_SEEDS = [
    ("\ufeffMachine,member,start,end,note,booking_id\n"
     "router-1,amelie,2024-10-26T09:00:00+02:00,2024-10-26T11:00:00+02:00,\"vacuum table, 2 sheets\",b-1\n"
     "\n"
     "laser-1,bastien,2024-10-28T14:00:00.000Z,2024-10-28T15:30:00.000Z,,\n"
     "kiln-1,chloe,1730016000,1730044800.5,,\n").encode("utf-8"),
    b"machine;member;start;end\nlaser-1;elise;2024-10-27 09:00;2024-10-27 12:00\n",
]
ICAL_SEEDS = [ics(*GOOD_EVENTS), ics(*GOOD_EVENTS, method="CANCEL").replace(b"\r\n", b"\n")]

# What breaks parsers: numbers and times beyond every range, separators, quotes, line ends,
# folds, BOMs, bytes that are not UTF-8, iCalendar structure and values.
VALUES = [
    "1e308", "-1e308", "nan", "inf", "-0", "1e7", "10000001", "-10000001", "9" * 400, "9" * 5000, "1,5",
    "1 234,5", "1.234,5", "1e12", "1e13", "-1", "9223372037", "9223372036854", "-62135596800",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
    "2262-04-12T00:00:00Z", "2300-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2024-10-27T02:30",
    "2024-03-31T02:30", "10/03/2026 09:00", "2026-03-10T09:00:00,5Z", "",
]
ICAL_VALUES = [
    "P99999999W", "-P99999999W", "P9999999999999999999D", "PT99999999999999H", "PT" + "9" * 5000 + "S",
    "P", "PT", "-P1D", "P1W2D", "23000101T000000Z", "22620411T235000Z", "99991231T235959Z",
    "99991231T233000", "00010101T000000", "00010101T000000Z", "00000101T000000Z", "20241399T250000Z",
    "99991231", "00010101", "20241027", "Europe", "../../etc/passwd", "x" * 300, "/mozilla.org/Europe/Paris",
    "Pacific/Kiritimati", "Etc/GMT+12", "CANCELLED", "CANCEL", "DATE", "DATE-TIME",
]
STRUCTURE = [
    ",", ";", "\t", ":", "=", '"', '""', "\r", "\n", "\r\n", "\n ", "\n\t", "\ufeff", "\x00", "é", "\u2028",
    "BEGIN:VEVENT", "END:VEVENT", "BEGIN:VCALENDAR", "END:VCALENDAR", "BEGIN:VALARM", "END:VALARM",
    "RRULE:FREQ=DAILY;COUNT=999999999999", "RDATE:20241027T090000Z", "STATUS:CANCELLED",
    "RECURRENCE-ID:20241027T090000Z", "DURATION:P99999999W", "DTEND:23000101T000000Z",
    "DTSTART;TZID=Europe/Paris:99991231T233000", "DTSTART;VALUE=DATE:99991231", ";TZID=Europe",
    ";TZID=\"Europe/Paris", 'ATTENDEE;CN="x:mailto:a', "X" * 200_000,
]
TOKENS = VALUES + ICAL_VALUES + STRUCTURE
TOKEN_BYTES = [t.encode("utf-8") for t in TOKENS] + [b"\xff", b"\xe9", b"\xc3", b"\xef\xbb\xbf", b"\x80\x80"]
CSV_FIELDS = b",;\t\n"  # a field starts after one of these
ICAL_FIELDS = b":="


@st.composite
def mutated(draw, seeds: list[bytes], values: list[str], fields: bytes) -> bytes:
    """A seed file after 1 to 6 edits (mostly one: each may spoil the file for another reason
    than the next): a value put in place of a field (the bytes after one of `fields` up to
    the next separator), a token, random bytes or text put in or over a span, a span deleted,
    a line doubled or two lines swapped."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.sampled_from([1, 1, 1, 1, 2, 3, 6]))):
        kind = draw(st.sampled_from(["value", "value", "value", "token", "token", "bytes", "text",
                                     "delete", "line", "swap"]))
        i = draw(st.integers(0, len(data)))
        j = min(len(data), i + draw(st.integers(0, 12)))
        if kind == "value":
            starts = [k + 1 for k, byte in enumerate(data) if byte in fields]
            if starts:
                i = draw(st.sampled_from(starts))
                j = i
                while j < len(data) and data[j] not in fields + b";,\r\n":
                    j += 1
            data[i:j] = draw(st.sampled_from(values)).encode("utf-8")
        elif kind == "token":
            data[i:j if draw(st.booleans()) else i] = draw(st.sampled_from(TOKEN_BYTES))
        elif kind == "bytes":
            data[i:j] = draw(st.binary(max_size=8))
        elif kind == "text":
            data[i:j] = draw(st.text(max_size=8)).encode("utf-8")
        elif kind == "delete":
            del data[i:j]
        else:
            lines = bytes(data).split(b"\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "line":
                lines.insert(a, lines[b])
            else:
                lines[a], lines[b] = lines[b], lines[a]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def inputs(seeds: list[bytes], values: list[str] = VALUES, fields: bytes = CSV_FIELDS):
    """Mutated seeds most of the time, random text or bytes otherwise."""
    files = mutated(seeds, values, fields)
    return st.one_of(files, files, files, files,
                     st.text(max_size=300).map(lambda t: t.encode("utf-8")), st.binary(max_size=300))


def _one_line_each(problems: list[str], path: Path) -> None:
    assert problems, "an error without a problem"
    event("refused")
    for problem in problems:
        assert problem.startswith(str(path)), problem
        assert "\n" not in problem and "\r" not in problem, problem


def _time_ok(t_s: float) -> bool:
    return math.isfinite(t_s) and EARLIEST_TIME_S <= t_s <= LATEST_TIME_S


# ---------------------------------------------------------------------------------------------
# Power CSV (analytics/csv_input.py)


def _check_power(path: Path) -> dict:
    try:
        series = read_power_csv(path)
    except CsvError as exc:
        _one_line_each(exc.problems, path)
        return {}
    for s in series.values():
        for times, values in ((s.power_time_s, s.power_w), (s.counter_time_s, s.energy_import_kwh)):
            assert times.dtype == values.dtype == np.float64 and len(times) == len(values)
            assert np.all(np.isfinite(times)) and np.all(np.isfinite(values))
            assert np.all(np.diff(times) >= 0), "times not sorted"
            assert np.all(times >= EARLIEST_TIME_S) and np.all(times <= LATEST_TIME_S)
        assert np.all(np.abs(s.power_w) <= MAX_POWER_W)
        assert np.all(s.energy_import_kwh >= 0) and np.all(s.energy_import_kwh <= MAX_COUNTER_KWH)
    event("read")
    return series


def test_power_seeds_read():
    """The seeds are valid, in every dialect, and read to the same numbers."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        read = []
        for k, seed in enumerate(POWER_SEEDS):
            path = Path(folder) / f"p{k}.csv"
            path.write_bytes(seed)
            read.append(read_power_csv(path))
    for series in read[1:]:
        for name in ("laser-1", "printers-1"):
            np.testing.assert_array_equal(series[name].power_w, read[0][name].power_w)
            np.testing.assert_array_equal(series[name].power_time_s, read[0][name].power_time_s)
            np.testing.assert_array_equal(series[name].energy_import_kwh, read[0][name].energy_import_kwh)
    assert read[0]["laser-1"].power_w.max() == 2000.5 and len(read[0]["laser-1"].energy_import_kwh) == 2


@FUZZ
@given(data=inputs(POWER_SEEDS))
def test_power_csv_fuzz(tmp_path, data):
    path = tmp_path / "power.csv"
    path.write_bytes(data)
    _check_power(path)


CELLS = st.one_of(st.sampled_from(VALUES + STRUCTURE[:16]), st.floats().map(repr), st.integers().map(str),
                  st.floats(EARLIEST_TIME_S - 1e3, LATEST_TIME_S + 1e3).map(repr), st.text(max_size=6))


@FUZZ
@given(rows=st.lists(st.tuples(CELLS, st.sampled_from(["laser-1", "", "a;b", "x,y"]), CELLS, CELLS),
                     min_size=1, max_size=8),
       separator=st.sampled_from([",", ";", "\t"]))
def test_power_csv_cells_fuzz(tmp_path, rows, separator):
    """Rows of tricky cells, written by the csv module (quoted as needed) in each dialect."""
    import csv

    path = tmp_path / "power.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=separator)
        writer.writerow(["time", "machine", "power_w", "energy_import_kwh"])
        writer.writerows(rows)
    _check_power(path)


@FUZZ
@given(data=inputs([b"time,kg_co2e_per_kwh\n2026-03-10T09:00:00Z,0.2\n2026-03-10T10:00:00Z,0.5\n",
                    b"time;kg_co2e_per_kwh\n1773133200;0,2\n"]))
def test_hourly_factors_csv_fuzz(tmp_path, data):
    path = tmp_path / "hourly.csv"
    path.write_bytes(data)
    try:
        times, values = read_hourly_factors_csv(path)
    except CsvError as exc:
        _one_line_each(exc.problems, path)
        return
    assert np.all(np.isfinite(times)) and np.all(np.isfinite(values)) and np.all(np.diff(times) >= 0)
    assert np.all(values >= 0) and np.all(values <= csv_input.MAX_FACTOR_KG_PER_KWH)
    event("read")


# ---------------------------------------------------------------------------------------------
# Sessions CSV and iCalendar (analytics/bookings: csv_sessions, ical)


def _check_sessions(sessions: list[Session], canceled: list[Session] = ()) -> None:
    event("read")
    for s in sessions:
        assert isinstance(s.start_s, float) and isinstance(s.end_s, float)
        assert _time_ok(s.start_s) and _time_ok(s.end_s) and s.end_s > s.start_s, s
        assert s.machine and s.member
    for s in canceled:  # stored as withdrawals: their times must be storable too
        assert _time_ok(s.start_s) and _time_ok(s.end_s), s


@FUZZ
@given(data=inputs(SESSIONS_SEEDS), tz=st.sampled_from([None, PARIS]), known=st.booleans())
def test_sessions_csv_fuzz(tmp_path, data, tz, known):
    path = tmp_path / "bookings.csv"
    path.write_bytes(data)
    try:
        sessions = read_sessions_csv(path, tz, machines=set(SITE.machines) if known else None,
                                     members=set(SITE.members) if known else None)
    except SessionsError as exc:
        _one_line_each(exc.problems[:-1] if exc.problems[-1].startswith("...") else exc.problems, path)
    else:
        _check_sessions(sessions)
    try:
        finders = read_sessions_csv(path, tz, machine_for=MACHINES, member_for=MEMBERS, spreadsheet_tz=PARIS)
    except SessionsError as exc:
        _one_line_each(exc.problems, path)
    else:
        _check_sessions(finders)


@FUZZ
@given(data=inputs(ICAL_SEEDS, ICAL_VALUES + VALUES[:8], ICAL_FIELDS), tz=st.sampled_from([None, PARIS]))
def test_ical_fuzz(tmp_path, data, tz):
    path = tmp_path / "bookings.ics"
    path.write_bytes(data)
    report = ImportReport()
    try:
        sessions = read_sessions_ical(path, MACHINES, tz, member_for=MEMBERS, report=report)
    except SessionsError as exc:
        _one_line_each(exc.problems[:-1] if exc.problems[-1].startswith("...") else exc.problems, path)
        return
    _check_sessions(sessions, report.canceled)


def test_ical_seeds_read():
    """The seeds are valid: five sessions and a cancellation (every event a cancellation with
    METHOD:CANCEL)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        counts = []
        for k, seed in enumerate(ICAL_SEEDS):
            path = Path(folder) / f"c{k}.ics"
            path.write_bytes(seed)
            report = ImportReport()
            counts.append((len(read_sessions_ical(path, MACHINES, PARIS, member_for=MEMBERS, report=report)),
                           len(report.canceled)))
    assert counts == [(5, 1), (0, 6)]
