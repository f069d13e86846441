"""Files a user hands in, refused by `wattelier` run as a real process (issue 14): a non-zero
exit, one clear line (file, line, what to do) and no traceback. Sessions commands write to a
temporary journal, which a refused input leaves uncreated."""

from __future__ import annotations

import pytest

from tests.cli_process import assert_clear_failure, run_wattelier

NOTICE = "refusing to analyse: fix the power file (no data is skipped)"


@pytest.mark.parametrize("row, fragment", [
    ("2026-03-10T09:00:10Z,laser-1,1e308", "power.csv:3: power_w: '1e308' is beyond 1e+07 W"),
    ("0001-01-01T00:00:00Z,laser-1,100",
     "power.csv:3: time: '0001-01-01T00:00:00Z' is outside 1970-01-01 .. 2262-04-11"),
    ("1e308,laser-1,100", "power.csv:3: time: '1e308' is outside 1970-01-01 .. 2262-04-11"),
])
def test_analyze_power_values_that_cannot_be_true(tmp_path, row, fragment):
    power = tmp_path / "power.csv"
    power.write_text(f"time,machine,power_w\n2026-03-10T09:00:00Z,laser-1,100\n{row}\n", encoding="utf-8")
    done = run_wattelier("analyze", "--power", str(power), "--json")
    # one line: the problem, naming the file and the line, then what analyze does about it
    text = assert_clear_failure(done, fragment, "check", NOTICE, exit_code=2)
    assert text.startswith(f"{tmp_path}/{fragment}"), text
    assert done.stdout == ""


def test_sessions_import_csv_with_a_date_after_2262(tmp_path):
    bookings = tmp_path / "bookings.csv"
    bookings.write_text("machine,member,start,end\nlaser-1,amelie,2026-03-10T09:00:00Z,2300-03-10T11:00:00Z\n",
                        encoding="utf-8")
    journal = tmp_path / "journal.sqlite"
    done = run_wattelier("sessions", "import", str(bookings), "--journal", str(journal))
    assert_clear_failure(done, f"{bookings}:2: column 'end': '2300-03-10T11:00:00Z' is outside 1970-01-01 .. "
                         "2262-04-11", "check the year", "nothing imported", exit_code=2)
    assert not journal.exists()


def test_sessions_import_ics_with_a_duration_of_99999999_weeks(tmp_path):
    calendar = tmp_path / "bookings.ics"
    calendar.write_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:w1\r\n"
                         b"DTSTART:20260310T090000Z\r\nDURATION:P99999999W\r\nSUMMARY:amelie @ laser-1\r\n"
                         b"END:VEVENT\r\nEND:VCALENDAR\r\n")
    journal = tmp_path / "journal.sqlite"
    done = run_wattelier("sessions", "import", str(calendar), "--journal", str(journal))
    assert_clear_failure(done, f"{calendar}:3: event 'w1' ('amelie @ laser-1'): line 6: DURATION 'P99999999W' "
                         "ends outside the calendar; a booking lasts hours or days", "nothing imported", exit_code=2)
    assert not journal.exists()


def test_sessions_add_starting_in_2300(tmp_path):
    journal = tmp_path / "journal.sqlite"
    done = run_wattelier("sessions", "add", "--machine", "laser-1", "--member", "amelie", "--start",
                         "2300-01-01T00:00", "--end", "2030-01-01T02:00", "--journal", str(journal))
    assert_clear_failure(done, "--start: '2300-01-01T00:00' is outside 1970-01-01 .. 2262-04-11",
                         "check the year", exit_code=2)
    assert not journal.exists()
