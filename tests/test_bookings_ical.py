"""iCalendar files as real calendars export them (tests/data/calendars, see its README): the
sessions stored from each, pinned in UTC; recurrence windows; the import speed."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from analytics.bookings.ical import DEFAULT_SPAN_DAYS, MAX_OCCURRENCES, read_sessions_ical
from analytics.bookings.names import machine_finder, member_finder
from analytics.bookings.report import ImportReport, SessionsError
from analytics.records import Session
from storage.journal import Journal
from devices.site import parse_site
from tests.test_sessions import site_text
from storage.bookings_store import cancel_sessions, load_sessions, store_sessions

CALENDARS = Path(__file__).parent / "data" / "calendars"
SITE = parse_site(site_text())
NOW_S = dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc).timestamp()


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()


def read(name: str, report: ImportReport | None = None, **window) -> list[Session]:
    return read_sessions_ical(CALENDARS / name, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE),
                              report=report if report is not None else ImportReport(), now_s=NOW_S, **window)


def test_google_weekly_rrule_with_exdate():
    report = ImportReport()
    sessions = read("google_weekly_exdate.ics", report)
    uid = "4k1o2m7v9q3r5s8t0u6w@google.com"
    # Tuesdays 09:00-12:00 Paris: CEST (07:00Z) until 25 October, CET (08:00Z) after it
    assert sessions == [
        Session("router-1", "amelie", utc(2026, 10, 6, 7), utc(2026, 10, 6, 10), "ical", f"{uid}/20261006T070000Z"),
        Session("router-1", "amelie", utc(2026, 10, 13, 7), utc(2026, 10, 13, 10), "ical", f"{uid}/20261013T070000Z"),
        Session("router-1", "amelie", utc(2026, 10, 27, 8), utc(2026, 10, 27, 11), "ical", f"{uid}/20261027T080000Z"),
        Session("router-1", "amelie", utc(2026, 11, 10, 8), utc(2026, 11, 10, 11), "ical", f"{uid}/20261110T080000Z"),
    ]
    # the weeks EXDATE removes withdraw what an earlier import stored for them
    assert report.canceled == [
        Session("router-1", "amelie", utc(2026, 10, 20, 7), utc(2026, 10, 20, 10), "ical", f"{uid}/20261020T070000Z"),
        Session("router-1", "amelie", utc(2026, 11, 3, 8), utc(2026, 11, 3, 11), "ical", f"{uid}/20261103T080000Z"),
    ]
    # a window keeps the occurrences overlapping it
    inside = read("google_weekly_exdate.ics", start_s=utc(2026, 10, 13), end_s=utc(2026, 10, 28))
    assert [s.start_s for s in inside] == [utc(2026, 10, 13, 7), utc(2026, 10, 27, 8)]


def test_outlook_windows_zone_names():
    sessions = read("outlook_windows_zones.ics")
    assert sessions == [
        # Romance Standard Time (its VTIMEZONE): 08:00-17:00 CET after the October change
        Session("kiln-1", "chloe", utc(2026, 10, 27, 7), utc(2026, 10, 27, 16), "ical",
                "040000008200E00074C5B7101A82E00800000000B0E1A2C3D4E5F601000000000000000010000000"),
        # W. Europe Standard Time without a VTIMEZONE: Europe/Berlin, CEST in July
        Session("laser-1", "bastien", utc(2026, 7, 15, 12), utc(2026, 7, 15, 13, 30), "ical", "outlook-2@example.org"),
    ]


def test_apple_vtimezone_with_daylight_saving_is_honoured_over_the_iana_zone():
    sessions = read("apple_est_daylight.ics")
    # 09:00 EDT (-04:00) in July; the IANA zone "EST" (always -05:00) would say 14:00Z
    assert [(s.member, s.machine, s.start_s, s.end_s) for s in sessions] == [
        ("hugo", "printers-1", utc(2026, 7, 10, 13), utc(2026, 7, 10, 15)),
        ("hugo", "printers-1", utc(2026, 12, 15, 14), utc(2026, 12, 15, 16)),
    ]


def test_nextcloud_all_day_events_are_site_local_days():
    sessions = read("nextcloud_all_day.ics")
    assert [(s.member, s.machine, s.start_s, s.end_s) for s in sessions] == [
        ("gaelle", "embroidery-1", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),  # 25 hours
        ("farid", "mill-1", utc(2026, 11, 2, 23), utc(2026, 11, 4, 23)),  # two days, DTEND excluded
    ]


def test_thunderbird_moved_cancelled_and_sequence():
    report = ImportReport()
    sessions = read("thunderbird_moved_cancelled.ics", report)
    uid = "a1b2c3d4-e5f6-4789-9abc-def012345678"
    assert sorted(sessions, key=lambda s: s.start_s) == [
        Session("laser-1", "elise", utc(2026, 9, 2, 12), utc(2026, 9, 2, 14), "ical", f"{uid}/20260902T120000Z"),
        Session("laser-1", "elise", utc(2026, 9, 9, 12), utc(2026, 9, 9, 14), "ical", f"{uid}/20260909T120000Z"),
        Session("mill-1", "david", utc(2026, 9, 11, 11), utc(2026, 9, 11, 15), "ical",
                "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"),  # SEQUENCE 2 replaces SEQUENCE 0
        # the occurrence of 16 September moved to the 17th, 10:00-11:30: same booking id
        Session("laser-1", "elise", utc(2026, 9, 17, 8), utc(2026, 9, 17, 9, 30), "ical", f"{uid}/20260916T120000Z"),
        Session("laser-1", "elise", utc(2026, 9, 30, 12), utc(2026, 9, 30, 14), "ical", f"{uid}/20260930T120000Z"),
    ]
    assert sorted((s.booking_id, s.start_s) for s in report.canceled) == [
        (f"{uid}/20260923T120000Z", utc(2026, 9, 23, 12)),
        ("f0e1d2c3-b4a5-4697-8877-665544332211", utc(2026, 9, 8, 7)),
    ]
    assert any("SEQUENCE 0 -> 2" in w for w in report.warnings)


def test_a_moved_and_a_cancelled_occurrence_replace_what_was_stored(tmp_path):
    """The series imported before its changes, then after: the journal holds the new times."""
    path = CALENDARS / "thunderbird_moved_cancelled.ics"
    text = path.read_bytes().decode("utf-8")
    before = text.split("BEGIN:VEVENT")
    # the calendar as it was on 1 September: the series alone
    first = tmp_path / "before.ics"
    first.write_bytes(("BEGIN:VEVENT".join(before[:2]) + "END:VCALENDAR\r\n").encode("utf-8"))
    journal = Journal(tmp_path / "j.sqlite")
    try:
        for calendar in (first, path):
            report = ImportReport()
            sessions = read_sessions_ical(calendar, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE),
                                          report=report, now_s=NOW_S)
            store_sessions(journal, "canal", sessions)
            cancel_sessions(journal, "canal", report.canceled)
    finally:
        journal.close()
    stored = [(s.start_s, s.end_s) for s in load_sessions(tmp_path / "j.sqlite") if s.machine == "laser-1"]
    assert stored == [(utc(2026, 9, 2, 12), utc(2026, 9, 2, 14)), (utc(2026, 9, 9, 12), utc(2026, 9, 9, 14)),
                      (utc(2026, 9, 17, 8), utc(2026, 9, 17, 9, 30)), (utc(2026, 9, 30, 12), utc(2026, 9, 30, 14))]


def calendar(*events: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + "".join(events)
            + "END:VCALENDAR\r\n").encode("utf-8")


def vevent(*lines: str) -> str:
    return "\r\n".join(["BEGIN:VEVENT", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]) + "\r\n"


def test_unbounded_rules_use_the_default_window_and_runaway_rules_are_refused(tmp_path):
    path = tmp_path / "weekly.ics"
    path.write_bytes(calendar(vevent("UID:w", "DTSTART:20260105T080000Z", "DURATION:PT2H",
                                     "RRULE:FREQ=WEEKLY", "SUMMARY:amelie @ laser-1")))
    sessions = read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE),
                                  now_s=NOW_S)
    # from the first DTSTART to DEFAULT_SPAN_DAYS after now
    assert sessions[0].start_s == utc(2026, 1, 5, 8) and sessions[0].end_s == utc(2026, 1, 5, 10)
    assert sessions[-1].start_s <= NOW_S + DEFAULT_SPAN_DAYS * 86400 < sessions[-1].start_s + 7 * 86400
    path.write_bytes(calendar(vevent("UID:m", "DTSTART:19700101T000000Z", "DURATION:PT1M",
                                     "RRULE:FREQ=MINUTELY", "SUMMARY:amelie @ laser-1")))
    with pytest.raises(SessionsError) as err:
        read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE), now_s=NOW_S)
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:4: event 'm' ('amelie @ laser-1'): line 9: recurring event (RRULE "
                              "FREQ=MINUTELY) would take about ")
    assert "import a shorter window (--from/--to)" in problem
    path.write_bytes(calendar(vevent("UID:h", "DTSTART:20260101T000000Z", "DURATION:PT1M",
                                     "RRULE:FREQ=HOURLY;BYMINUTE=0,30", "SUMMARY:amelie @ laser-1")))
    with pytest.raises(SessionsError, match=rf"more than {MAX_OCCURRENCES}; import a shorter window"):
        read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE),
                           start_s=utc(2026, 1, 1), end_s=utc(2027, 1, 1))


def test_broken_recurrences_and_zones_say_where(tmp_path):
    path = tmp_path / "bad.ics"
    path.write_bytes(calendar(
        vevent("UID:r", "DTSTART:20260105T080000Z", "DURATION:PT2H", "RRULE:FREQ=FORTNIGHTLY",
               "SUMMARY:amelie @ laser-1"),
        vevent("UID:z", "DTSTART;TZID=Mars/Olympus_Mons:20260105T080000", "DURATION:PT2H",
               "SUMMARY:amelie @ laser-1")))
    with pytest.raises(SessionsError) as err:
        read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE), now_s=NOW_S)
    assert err.value.problems == [
        f"{path}:4: event 'r' ('amelie @ laser-1'): line 9: RRULE 'FREQ=FORTNIGHTLY' is not a recurrence rule "
        "(Expected frequency, got: FORTNIGHTLY)",
        f"{path}:12: event 'z' ('amelie @ laser-1'): line 15: TZID 'Mars/Olympus_Mons' is not an IANA time zone "
        "name (such as Europe/Paris), a Windows one (Romance Standard Time) nor a VTIMEZONE of the file; export "
        "the calendar with its time zones, or in UTC"]


def test_a_start_that_is_not_a_date_says_where(tmp_path):
    """icalendar reads DTSTART:P2W as a duration: a problem with its line, not a crash."""
    path = tmp_path / "bad.ics"
    path.write_bytes(calendar(vevent("UID:d", "DTSTART:P2W", "DTEND:20261029T093000Z",
                                     "SUMMARY:amelie @ laser-1")))
    with pytest.raises(SessionsError) as err:
        read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE), now_s=NOW_S)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:4: event 'd' ('amelie @ laser-1'): line 7: DTSTART 'P2W' "
                                            "is not a date or a date-time"), err.value.problems


def test_a_duration_that_is_a_date_says_where(tmp_path):
    """icalendar reads DURATION:23000101T000000Z as a date-time (a fuzz find): a problem with
    its line, not a crash."""
    path = tmp_path / "bad.ics"
    path.write_bytes(calendar(vevent("UID:d", "DTSTART:20261029T083000Z", "DURATION:23000101T000000Z",
                                     "SUMMARY:amelie @ laser-1")))
    with pytest.raises(SessionsError) as err:
        read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE), now_s=NOW_S)
    assert err.value.problems == [f"{path}:4: event 'd' ('amelie @ laser-1'): line 8: DURATION "
                                  "'23000101T000000Z' is not a duration such as PT1H30M or P1D"], err.value.problems



def test_an_event_inside_an_open_one_within_an_unknown_component_says_where(tmp_path):
    """A fuzz find: an event left open inside an unknown component (BEGIN:X-PLAN), then another
    event, made an IndexError; it is a problem naming both lines."""
    path = tmp_path / "bad.ics"
    path.write_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:X-PLAN\r\nBEGIN:VEVENT\r\nUID:a\r\n"
                     b"BEGIN:VEVENT\r\nUID:b\r\nEND:VEVENT\r\nEND:X-PLAN\r\nEND:VCALENDAR\r\n")
    with pytest.raises(SessionsError) as err:
        read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE), now_s=NOW_S)
    assert err.value.problems == [f"{path}:6: BEGIN:VEVENT inside another VEVENT (line 4); close the first "
                                  "with END:VEVENT"], err.value.problems


def test_import_speed_of_a_few_thousand_events(tmp_path):
    """1 000 single bookings and 100 weekly series of 20 occurrences (3 000 sessions)."""
    machines = ["router-1", "laser-1", "mill-1", "kiln-1", "printers-1"]
    members = ["amelie", "bastien", "chloe", "david", "elise"]
    events = []
    t0 = dt.datetime(2026, 1, 5, 8, tzinfo=dt.timezone.utc)
    for k in range(1000):
        start = t0 + dt.timedelta(hours=3 * k)
        events.append(vevent(f"UID:single-{k}", f"DTSTART:{start:%Y%m%dT%H%M%SZ}", "DURATION:PT2H",
                             f"SUMMARY:{members[k % 5]} @ {machines[k % 5]}"))
    for k in range(100):
        events.append(vevent(f"UID:series-{k}", f"DTSTART;TZID=Europe/Paris:202601{5 + k % 20:02d}T{8 + k % 9:02d}0000",
                             "DTEND;TZID=Europe/Paris:202601{:02d}T{:02d}3000".format(5 + k % 20, 8 + k % 9),
                             "RRULE:FREQ=WEEKLY;COUNT=20", f"LOCATION:{machines[k % 5]}",
                             f"ATTENDEE;CN={members[(k + 1) % 5]}:mailto:x{k}@example.org"))
    path = tmp_path / "big.ics"
    path.write_bytes(calendar(*events))
    began = time.perf_counter()
    sessions = read_sessions_ical(path, machine_finder(SITE), SITE.tz, member_for=member_finder(SITE), now_s=NOW_S)
    took_s = time.perf_counter() - began
    assert len(sessions) == 3000
    print(f"\n{len(sessions)} sessions from {len(events)} events in {took_s:.2f} s")
    assert took_s < 30
