"""Sessions: CSV, iCalendar and Fab-manager imports with clear errors; storage in the journal
without duplicates; the `wattelier sessions` commands (issue 4, acceptance 5)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import zoneinfo
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage.bookings import current_sessions, read_booking_versions
from analytics.records import Session
from analytics.bookings.fabmanager import CREATION_MARGIN_S, mapping_fingerprint
from analytics.sessions import (DELETED_USER_MEMBER, SETTLED_S, FabmanagerReport, FabmanagerState,
                                ImportReport, SessionsError, fetch_fabmanager_incremental,
                                fetch_fabmanager_reservations, machine_finder, member_finder,
                                parse_time_s, read_sessions_csv, read_sessions_ical)
from storage.journal import Journal
from devices.site import SiteError, example_site_path, load_site, parse_site
from tests.cli_process import run_wattelier
from tests.conftest import free_port
from tests.fabmanager_fake import DATA, TOKEN, FakeFabmanager
from wattelier.commands.sessions import app as sessions_app
from storage.bookings_store import cancel_sessions, load_sessions, store_sessions

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()


# ---------------------------------------------------------------------------------------------
# A site with Fab-manager ids and e-mails


def site_text(fabmanager_url: str | None = None) -> str:
    text = example_site_path().read_text(encoding="utf-8")
    for old, new in (
        ("rated_power_w = 9000.0", "rated_power_w = 9000.0\nfabmanager_id = 3"),
        ("rated_power_w = 3500.0", "rated_power_w = 3500.0\nfabmanager_id = 4"),
        ("rated_power_w = 15000.0", "rated_power_w = 15000.0\nfabmanager_id = 5"),
        ('name = "Amélie Durand (ébéniste)"',
         'name = "Amélie Durand (ébéniste)"\nemail = "amelie@example.org"\nfabmanager_user_id = 101'),
        ('name = "Bastien Leroy (menuisier)"', 'name = "Bastien Leroy (menuisier)"\nfabmanager_user_id = 102'),
        ('name = "Chloé Martin (céramiste)"', 'name = "Chloé Martin (céramiste)"\nfabmanager_user_id = 103'),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    if fabmanager_url:
        text += f'\n[fabmanager]\nurl = "{fabmanager_url}"\n'
    return text


@pytest.fixture
def site_file(tmp_path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(site_text(), encoding="utf-8")
    return path


@pytest.fixture
def site(site_file):
    return load_site(site_file)


def test_fabmanager_section_in_site_file():
    site = parse_site(site_text("https://fablab.example.org/"))
    assert site.fabmanager.url == "https://fablab.example.org"
    assert site.fabmanager.token_env == "WATTELIER_FABMANAGER_TOKEN"
    assert site.machines["router-1"].fabmanager_id == 3
    with pytest.raises(SiteError) as err:
        parse_site(site_text("fablab.example.org"))
    assert any("fabmanager.url: must look like https://fablab.example.org" in p for p in err.value.problems)
    with pytest.raises(SiteError) as err:
        parse_site(site_text("https://fablab.example.org") + 'token = "abc"\n')
    assert any("fabmanager.token: secrets never live in the site file" in p for p in err.value.problems)


# ---------------------------------------------------------------------------------------------
# Times


def test_times_iso_offset_z_and_unix_seconds():
    assert parse_time_s("2024-10-27T08:00:00.000Z") == utc(2024, 10, 27, 8)
    assert parse_time_s("2024-10-27T09:00:00+01:00") == utc(2024, 10, 27, 8)
    assert parse_time_s("1730016000") == utc(2024, 10, 27, 8)
    assert parse_time_s("2024-10-27 09:00", PARIS) == utc(2024, 10, 27, 8)  # CET after the change
    assert parse_time_s("2024-10-26 09:00", PARIS) == utc(2024, 10, 26, 7)  # CEST before
    with pytest.raises(ValueError, match="has no UTC offset"):
        parse_time_s("2024-10-27 09:00")
    with pytest.raises(ValueError, match=r"occurs twice in Europe/Paris.*\+02:00 for the first, \+01:00"):
        parse_time_s("2024-10-27T02:30", PARIS)
    with pytest.raises(ValueError, match="does not exist in Europe/Paris"):
        parse_time_s("2024-03-31T02:30", PARIS)
    with pytest.raises(ValueError, match="looks like milliseconds"):
        parse_time_s("1730016000000")


# ---------------------------------------------------------------------------------------------
# CSV


def test_csv_good(tmp_path, site):
    path = tmp_path / "bookings.csv"
    path.write_text(
        "\ufeffMachine,member,start,end,note,booking_id\n"
        "router-1,amelie,2024-10-26T09:00:00+02:00,2024-10-26T11:00:00+02:00,\"vacuum table, 2 sheets\",b-1\n"
        "\n"
        "laser-1,bastien,2024-10-28T14:00:00.000Z,2024-10-28T15:30:00.000Z,,\n"
        "kiln-1,chloe,1730016000,1730044800.5,,\n",
        encoding="utf-8")
    sessions = read_sessions_csv(path, machines=site.machines, members=site.members)
    assert sessions == [
        Session("router-1", "amelie", utc(2024, 10, 26, 7), utc(2024, 10, 26, 9), "csv", "b-1"),
        Session("laser-1", "bastien", utc(2024, 10, 28, 14), utc(2024, 10, 28, 15, 30), "csv", ""),
        Session("kiln-1", "chloe", 1730016000.0, 1730044800.5, "csv", ""),
    ]


def test_csv_semicolons_and_local_times_with_tz(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("machine;member;start;end\nlaser-1;elise;2024-10-27 09:00;2024-10-27 12:00\n")
    [s] = read_sessions_csv(path, tz=PARIS)
    assert (s.start_s, s.end_s) == (utc(2024, 10, 27, 8), utc(2024, 10, 27, 11))


def test_csv_the_simulator_writes_reads_back(tmp_path, example_site):
    from devices.sim.physics import Workshop
    from devices.sim.workshop import SimulatedWorkshop

    t0 = utc(2024, 10, 25, 6)
    sim = SimulatedWorkshop(example_site)
    sim.model = Workshop(example_site, seed=3, t0_s=t0)
    path = tmp_path / "sessions.csv"
    sim.write_sessions_csv(path, t0 + 2 * 86400)
    expected = sim.model.sessions(t0 + 2 * 86400)
    sessions = read_sessions_csv(path, machines=example_site.machines, members=example_site.members)
    assert len(sessions) == len(expected) > 0
    for got, want in zip(sessions, expected):
        assert (got.machine, got.member) == (want.machine, want.member)
        assert abs(got.start_s - want.start_s) <= 0.001 and abs(got.end_s - want.end_s) <= 0.001


def test_csv_bad_rows_name_file_line_column_and_what_to_do(tmp_path, site):
    path = tmp_path / "bad.csv"
    path.write_text(
        "machine,member,start,end\n"                                          # 1
        "router-1,amelie,2024-10-26T09:00:00+02:00,2024-10-26T11:00:00+02:00\n"  # 2 good
        "router-1,amelie,2024-10-26 09:00,2024-10-26T11:00:00+02:00\n"        # 3 naive
        "laser-1,bastien,2024-10-28T15:00:00Z,2024-10-28T14:00:00Z\n"         # 4 end before start
        "lazer-1,bastien,2024-10-28T14:00:00Z,2024-10-28T15:00:00Z\n"         # 5 unknown machine
        "laser-1,,2024-10-28T14:00:00Z,2024-10-28T15:00:00Z\n"                # 6 no member
        "laser-1,bastien,2024-10-28T14:00:00Z\n"                              # 7 missing value
        "laser-1,bastien,tomorrow,1730044800000\n",                           # 8 two bad times
        encoding="utf-8")
    with pytest.raises(SessionsError) as err:
        read_sessions_csv(path, machines=site.machines, members=site.members)
    problems = err.value.problems
    assert problems == [
        f"{path}:3: column 'start': '2024-10-26 09:00' has no UTC offset: add one (e.g. +01:00, or Z "
        "for UTC) or give the time zone the file is written in",
        f"{path}:4: column 'end': '2024-10-28T14:00:00Z' is not after start '2024-10-28T15:00:00Z'; "
        "a session ends after it starts",
        f"{path}:5: column 'machine': 'lazer-1' is not a machine of the site (known: embroidery-1, "
        "kiln-1, laser-1, mill-1, printers-1, router-1)",
        f"{path}:6: column 'member': empty; every session needs its member",
        f"{path}:7: 3 cells, the header has 4; quote cells that contain ','",
        f"{path}:8: column 'start': 'tomorrow' is neither an ISO 8601 time (e.g. 2024-10-27T09:00:00+01:00 "
        "or 2024-10-27T08:00:00Z) nor Unix seconds, nor a day-first date (26/10/2026 09:00); in a "
        "spreadsheet, format the column as DD/MM/YYYY HH:MM or YYYY-MM-DD HH:MM before exporting",
        f"{path}:8: column 'end': '1730044800000' read as Unix seconds is not between 2000 and 2100 (it "
        "looks like milliseconds: divide by 1000)",
    ]


def test_csv_bad_header_and_files(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("machine,who,start,end\nrouter-1,amelie,1730016000,1730019600\n")
    with pytest.raises(SessionsError, match=rf"{path}:1: missing column\(s\) member in the header"):
        read_sessions_csv(path)
    path.write_bytes(b"machine,member,start,end\nrouter-1,am\xe9lie,1730016000,1730019600\n")
    with pytest.raises(SessionsError, match=r"h.csv:2: not UTF-8 text .* save it as CSV UTF-8"):
        read_sessions_csv(path)
    with pytest.raises(SessionsError, match="cannot read: No such file"):
        read_sessions_csv(tmp_path / "missing.csv")
    path.write_text("machine,member,start,end\n"
                    "router-1,amelie,2024-10-27T02:30,2024-10-27T04:00\n")
    with pytest.raises(SessionsError, match=r"h.csv:2: column 'start': 2024-10-27 02:30:00 occurs twice"):
        read_sessions_csv(path, tz=PARIS)


# ---------------------------------------------------------------------------------------------
# iCalendar


def ics(*events: str, method: str = "") -> bytes:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Manufacture du Canal//Reservations//FR"]
    if method:
        head.append(f"METHOD:{method}")
    # the VTIMEZONE as Google and Thunderbird write it (a VTIMEZONE of the file is honoured)
    head += ["BEGIN:VTIMEZONE", "TZID:Europe/Paris", "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0100",
             "TZOFFSETTO:+0200", "TZNAME:CEST", "DTSTART:19700329T020000",
             "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT", "BEGIN:STANDARD",
             "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "TZNAME:CET", "DTSTART:19701025T030000",
             "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD", "END:VTIMEZONE"]
    text = "\r\n".join(head) + "\r\n" + "".join(events) + "END:VCALENDAR\r\n"
    return text.encode("utf-8")


def event(*lines: str) -> str:
    return "\r\n".join(["BEGIN:VEVENT", "DTSTAMP:20241020T120000Z", *lines, "END:VEVENT"]) + "\r\n"


def fold(line: str, width: int = 20) -> str:
    """Fold a content line every `width` octets (RFC 5545 3.1), even inside a character."""
    data = line.encode("utf-8")
    parts = [data[i:i + width] for i in range(0, len(data), width)]
    return b"\r\n ".join(parts).decode("utf-8", "surrogateescape")


def write_ics(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape"))
    return path


GOOD_EVENTS = [
    # across the October change: 01:30 CEST .. 03:30 CET is three hours
    event("UID:resa-1@canal", "DTSTART;TZID=Europe/Paris:20241027T013000",
          "DTEND;TZID=Europe/Paris:20241027T033000", "SUMMARY:Amélie @ router-1", "LOCATION:router-1",
          'ATTENDEE;CN="Durand, Amélie";ROLE=REQ-PARTICIPANT:mailto:amelie@example.org'),
    # 02:15 occurs twice that night: the first one (CEST), RFC 5545 3.3.5; DURATION is exact
    event("UID:resa-2@canal", "DTSTART;TZID=Europe/Paris:20241027T021500", "DURATION:PT1H",
          "LOCATION:kiln-1", "ATTENDEE;CN=Chloé Martin:mailto:chloe@example.org"),
    # folded lines (inside the é of the summary too), escaped commas in a machine label
    event("UID:resa-3@canal", "DTSTART;TZID=Europe/Paris:20241028T090000",
          "DTEND;TZID=Europe/Paris:20241028T120000",
          fold("SUMMARY:Découpe de panneaux de contreplaqué pour l'étagère"),
          fold("LOCATION:CO2 laser cutter 130 W tube\\, 1300 x 900 mm\\, with chiller"),
          "ORGANIZER;CN=Bastien Leroy:mailto:bastien@example.org",
          "BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:rappel", "TRIGGER:-PT15M", "END:VALARM"),
    # UTC; machine from CATEGORIES, member from SUMMARY "member @ machine"
    event("UID:resa-4@canal", "DTSTART:20241029T080000Z", "DTEND:20241029T093000Z",
          "SUMMARY:Chloé Martin @ four", "CATEGORIES:Atelier,mill-1"),
    # floating time: the site's zone
    event("UID:resa-5@canal", "DTSTART:20241030T090000", "DTEND:20241030T100000",
          "SUMMARY:jules @ printers-1"),
    # a cancellation
    event("UID:resa-6@canal", "STATUS:CANCELLED", "DTSTART:20241031T080000Z", "DTEND:20241031T090000Z",
          "SUMMARY:hugo @ laser-1"),
]


def test_ical_good(tmp_path, site):
    path = write_ics(tmp_path / "bookings.ics", ics(*GOOD_EVENTS))
    report = ImportReport()
    sessions = read_sessions_ical(path, machine_finder(site), site.tz, member_for=member_finder(site),
                                  report=report)
    assert sessions == [
        Session("router-1", "amelie", utc(2024, 10, 26, 23, 30), utc(2024, 10, 27, 2, 30), "ical", "resa-1@canal"),
        Session("kiln-1", "chloe", utc(2024, 10, 27, 0, 15), utc(2024, 10, 27, 1, 15), "ical", "resa-2@canal"),
        Session("laser-1", "bastien", utc(2024, 10, 28, 8), utc(2024, 10, 28, 11), "ical", "resa-3@canal"),
        Session("mill-1", "chloe", utc(2024, 10, 29, 8), utc(2024, 10, 29, 9, 30), "ical", "resa-4@canal"),
        Session("printers-1", "jules", utc(2024, 10, 30, 8), utc(2024, 10, 30, 9), "ical", "resa-5@canal"),
    ]
    assert sessions[0].end_s - sessions[0].start_s == 3 * 3600
    assert report.canceled == [Session("laser-1", "hugo", utc(2024, 10, 31, 8), utc(2024, 10, 31, 9),
                                       "ical", "resa-6@canal")]


def test_ical_mapping_and_lf_only_lines(tmp_path):
    text = ics(event("UID:x", "DTSTART;VALUE=DATE:20241027", "LOCATION:Four", "SUMMARY:Chloé @ Four"))
    path = write_ics(tmp_path / "lf.ics", text.replace(b"\r\n", b"\n"))
    [s] = read_sessions_ical(path, {"four": "kiln-1"}, PARIS)
    # a whole day in Paris on the day clocks go back lasts 25 hours
    assert (s.machine, s.member) == ("kiln-1", "Chloé")
    assert (s.start_s, s.end_s - s.start_s) == (utc(2024, 10, 26, 22), 25 * 3600)


def test_ical_bad_events_name_line_and_what_to_do(tmp_path, site):
    text = ics(
        event("UID:no-start", "DTEND:20241029T093000Z", "LOCATION:router-1", "SUMMARY:amelie @ router-1"),
        event("UID:win-zone", "DTSTART;TZID=Romance Standard Time:20241029T090000",
              "DTEND;TZID=Romance Standard Time:20241029T100000", "SUMMARY:amelie @ router-1"),
        event("UID:nowhere", "DTSTART:20241029T080000Z", "DTEND:20241029T090000Z", "LOCATION:Salle 2",
              "SUMMARY:amelie @ salle 2"),
        event("UID:weekly", "DTSTART:20241029T080000Z", "DTEND:20241029T090000Z",
              "RRULE:FREQ=WEEKLY;COUNT=4", "SUMMARY:amelie @ router-1"),
        event("UID:backwards", "DTSTART:20241029T100000Z", "DTEND:20241029T090000Z",
              "SUMMARY:amelie @ router-1"),
    )
    path = write_ics(tmp_path / "bad.ics", text)
    with pytest.raises(SessionsError) as err:
        read_sessions_ical(path, machine_finder(site), site.tz, member_for=member_finder(site))
    lines = text.decode().split("\r\n")
    begins = [i + 1 for i, line in enumerate(lines) if line == "BEGIN:VEVENT"]
    problems = err.value.problems
    assert problems[0] == f"{path}:{begins[0]}: event 'no-start' ('amelie @ router-1'): no DTSTART; every booking needs its start"
    # a Windows zone name (Outlook) and a weekly RRULE are read now: no problem for them
    assert problems[1] == (f"{path}:{begins[2]}: event 'nowhere' ('amelie @ salle 2'): no machine of the site "
                           "found (tried LOCATION 'Salle 2', SUMMARY 'salle 2'); put the machine's name in "
                           "LOCATION or end SUMMARY with ' @ machine'")
    assert problems[2].startswith(f"{path}:{begins[4]}: event 'backwards' ('amelie @ router-1'): ends")
    assert len(problems) == 3


def test_ical_broken_files(tmp_path, site):
    finder = machine_finder(site)
    path = write_ics(tmp_path / "cut.ics", ics(event("UID:a", "DTSTART:20241029T080000Z")).replace(
        b"END:VEVENT\r\nEND:VCALENDAR\r\n", b""))
    with pytest.raises(SessionsError, match=r"cut.ics:\d+: BEGIN:VEVENT is never closed"):
        read_sessions_ical(path, finder, PARIS)
    path = write_ics(tmp_path / "not.ics", "machine,member,start,end\n")
    with pytest.raises(SessionsError, match=r"not.ics:1: not an iCalendar file"):
        read_sessions_ical(path, finder, PARIS)
    path = write_ics(tmp_path / "float.ics", ics(event("UID:f", "DTSTART:20241029T080000",
                                                       "DTEND:20241029T090000", "SUMMARY:a @ router-1")))
    with pytest.raises(SessionsError, match="floating local time and no time zone was given"):
        read_sessions_ical(path, finder, None)


# ---------------------------------------------------------------------------------------------
# Fab-manager, served by a fake at the seam that cannot run here (tests/fabmanager_fake.py)


@pytest.fixture
def fake_fabmanager():
    servers: list[FakeFabmanager] = []

    def make(**kwargs) -> FakeFabmanager:
        servers.append(FakeFabmanager(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


MACHINES = {3: "router-1", 4: "laser-1", 5: "mill-1"}
MEMBERS = {101: "amelie", 102: "bastien", 103: "chloe"}
EXPECTED_FABMANAGER = [
    Session("router-1", "amelie", utc(2024, 10, 26, 7), utc(2024, 10, 26, 9), "fabmanager", "5012"),
    Session("laser-1", "bastien", utc(2024, 10, 28, 14), utc(2024, 10, 28, 15), "fabmanager", "5010"),
    Session("router-1", "fabmanager-user-999", utc(2024, 10, 25, 14), utc(2024, 10, 25, 16), "fabmanager", "5008"),
    Session("laser-1", "chloe", utc(2024, 10, 27, 9), utc(2024, 10, 27, 10), "fabmanager", "5006"),
    Session("laser-1", "chloe", utc(2024, 10, 27, 13), utc(2024, 10, 27, 14), "fabmanager", "5006"),
]


@pytest.mark.parametrize("link", [True, False])
def test_fabmanager_all_pages(fake_fabmanager, link):
    server = fake_fabmanager(link=link)
    report = FabmanagerReport()
    sessions = fetch_fabmanager_reservations(server.url, TOKEN, MACHINES, MEMBERS, per_page=3, report=report)
    assert sessions == EXPECTED_FABMANAGER
    assert [int(q["page"][0]) for _, q, _ in server.requests] == [1, 2, 3]
    assert all(auth == f"Token token={TOKEN}" and q["reservable_type"] == ["Machine"]
               for _, q, auth in server.requests)
    assert (report.pages, report.reservations, report.other_types) == (3, 7, 1)
    assert report.unknown_machines == {99: ("Découpe vinyle", 1)}
    assert report.unknown_users == {999: ("Zoé Lambert", 1)}
    assert report.canceled == [Session("mill-1", "chloe", utc(2024, 10, 29, 8), utc(2024, 10, 29, 10),
                                       "fabmanager", "5007")]
    assert any("99 ('Découpe vinyle', 1 reservation(s))" in w and "fabmanager_id" in w for w in report.warnings)
    assert any("999 ('Zoé Lambert', 1 session(s))" in w for w in report.warnings)



def test_fabmanager_deleted_member(fake_fabmanager):
    """A reservation by a member deleted in Fab-manager (user_id null, no user object) is kept
    as member fabmanager-deleted-user, and said; it no longer aborts the import."""
    server = fake_fabmanager()
    server.pages[4] = json.loads((DATA / "reservations_deleted_member.json").read_text(encoding="utf-8"))
    assert all(r["user_id"] is None and "user" not in r for r in server.pages[4]["reservations"])
    report = FabmanagerReport()
    sessions = fetch_fabmanager_reservations(server.url, TOKEN, MACHINES, MEMBERS, per_page=3, report=report)
    # the fake serves every recorded reservation in order: 9 in all, so page 3 ends the list
    assert [int(q["page"][0]) for _, q, _ in server.requests] == [1, 2, 3]
    # 10:00-12:00 +02:00 on 24 October is 08:00-10:00 UTC
    assert sessions == EXPECTED_FABMANAGER + [
        Session("router-1", DELETED_USER_MEMBER, utc(2024, 10, 24, 8), utc(2024, 10, 24, 10), "fabmanager", "5005")]
    assert DELETED_USER_MEMBER == "fabmanager-deleted-user"
    assert (report.reservations, report.deleted_users, report.deleted_user_sessions) == (9, 2, 1)
    assert report.unknown_users == {999: ("Zoé Lambert", 1)}  # deleted members are not "unknown ids"
    assert report.canceled[-1] == Session("laser-1", DELETED_USER_MEMBER, utc(2024, 10, 23, 12),
                                          utc(2024, 10, 23, 13), "fabmanager", "5004")
    [said] = [w for w in report.warnings if "deleted in Fab-manager" in w]
    assert "kept as member fabmanager-deleted-user 1 session(s) of 2 reservation(s)" in said
    # a user object still present names the user even when user_id is null
    server.pages[4]["reservations"][0]["user"] = {"id": 102, "full_name": "Bastien Leroy"}
    sessions = fetch_fabmanager_reservations(server.url, TOKEN, MACHINES, MEMBERS, per_page=3)
    assert sessions[-1].member == "bastien"
    # a user_id that is neither an integer nor null is still refused, with where and what
    server.pages[4]["reservations"][0]["user_id"] = "102"
    with pytest.raises(SessionsError, match=r"page 3, reservation 5005: .*user_id an integer or null, got 3 and '102'"):
        fetch_fabmanager_reservations(server.url, TOKEN, MACHINES, MEMBERS, per_page=3)


def test_fabmanager_empty_page_ends_without_link(fake_fabmanager, caplog):
    server = fake_fabmanager(link=False)
    del server.pages[3]  # two full pages: only the empty third one says the list is over
    sessions = fetch_fabmanager_reservations(server.url, TOKEN, MACHINES, MEMBERS, per_page=3)
    assert [int(q["page"][0]) for _, q, _ in server.requests] == [1, 2, 3]
    assert [s.booking_id for s in sessions] == ["5012", "5010", "5008"]
    # without a report, what was left out is logged, not dropped silently
    assert any("99 ('Découpe vinyle', 1 reservation(s))" in r.getMessage() for r in caplog.records)


def test_fabmanager_window(fake_fabmanager):
    server = fake_fabmanager()
    report = FabmanagerReport()
    sessions = fetch_fabmanager_reservations(server.url, TOKEN, MACHINES, MEMBERS, since=utc(2024, 10, 27, 9, 30),
                                             until=utc(2024, 10, 28, 14, 30), per_page=3, report=report)
    # reservation 5006 overlaps with its first window only: it is kept whole
    assert [(s.booking_id, s.start_s) for s in sessions] == [
        ("5010", utc(2024, 10, 28, 14)), ("5006", utc(2024, 10, 27, 9)), ("5006", utc(2024, 10, 27, 13))]
    assert report.outside_window == 3 and report.canceled == []


def test_fabmanager_errors(fake_fabmanager):
    server = fake_fabmanager()
    with pytest.raises(SessionsError) as err:
        fetch_fabmanager_reservations(server.url, "wrong-token", MACHINES, MEMBERS, per_page=3)
    [problem] = err.value.problems
    assert problem.startswith(f"Fab-manager refused the token (HTTP 401 Bad credentials) at {server.url}/open_api/v1/reservations")
    assert "WATTELIER_FABMANAGER_TOKEN" in problem and "wrong-token" not in problem
    failing = fake_fabmanager(fail_page=2)
    with pytest.raises(SessionsError, match=r"HTTP 500 Internal Server Error for page 2 of .*: Server error; undefined method"):
        fetch_fabmanager_reservations(failing.url, TOKEN, MACHINES, MEMBERS, per_page=3)
    with pytest.raises(SessionsError, match=r"no Fab-manager Open API at .*/typo/open_api/v1/reservations \(HTTP 404\)"):
        fetch_fabmanager_reservations(server.url + "/typo", TOKEN, MACHINES, MEMBERS, per_page=3)
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SessionsError, match=rf"cannot reach Fab-manager at {closed}/open_api/v1/reservations: .*refused"):
        fetch_fabmanager_reservations(closed, TOKEN, MACHINES, MEMBERS, timeout_s=5)
    server.pages[2]["reservations"][1]["reserved_slots"][0]["start_at"] = "2024-10-25 16:00"
    with pytest.raises(SessionsError, match=r"Fab-manager page 2, reservation 5008: reserved_slots\[0\]: .*no UTC offset"):
        fetch_fabmanager_reservations(server.url, TOKEN, MACHINES, MEMBERS, per_page=3)


# ---------------------------------------------------------------------------------------------
# Storage


def booking_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM points p JOIN series s ON s.id = p.series_id "
                          "WHERE s.measurement = 'booking'").fetchone()[0]


def test_store_twice_does_not_duplicate(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    try:
        assert store_sessions(journal, "canal", EXPECTED_FABMANAGER) == (5, 0)
        assert store_sessions(journal, "canal", EXPECTED_FABMANAGER) == (0, 5)
        assert store_sessions(journal, "canal", list(reversed(EXPECTED_FABMANAGER))) == (0, 5)
    finally:
        journal.close()
    assert booking_rows(tmp_path / "j.sqlite") == 5
    assert load_sessions(tmp_path / "j.sqlite") == sorted(EXPECTED_FABMANAGER, key=lambda s: s.start_s)
    assert load_sessions(tmp_path / "j.sqlite", utc(2024, 10, 27), utc(2024, 10, 28)) == EXPECTED_FABMANAGER[3:]


def test_changed_and_cancelled_bookings_replace_the_stored_ones(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    try:
        store_sessions(journal, "canal", EXPECTED_FABMANAGER)
        moved = Session("laser-1", "chloe", utc(2024, 10, 27, 9), utc(2024, 10, 27, 11), "fabmanager", "5006")
        assert store_sessions(journal, "canal", [moved]) == (1, 0)  # two windows became one
        assert cancel_sessions(journal, "canal", [Session("", "", 0, 0, "fabmanager", "5012")]) == 1
        assert cancel_sessions(journal, "canal", [Session("", "", 0, 0, "fabmanager", "5012")]) == 0
        manual = Session("kiln-1", "chloe", utc(2024, 10, 30, 8), utc(2024, 10, 30, 12), "manual")
        store_sessions(journal, "canal", [manual])
        longer = Session("kiln-1", "chloe", utc(2024, 10, 30, 8), utc(2024, 10, 30, 16), "manual")
        assert store_sessions(journal, "canal", [longer]) == (1, 0)
    finally:
        journal.close()
    got = load_sessions(path)
    assert {s.booking_id for s in got} == {"5010", "5008", "5006", ""}
    assert [s for s in got if s.booking_id == "5006"] == [moved]
    assert [s for s in got if s.source == "manual"] == [longer]
    # the window 5006 no longer has is empty, also when read over that window only
    assert load_sessions(path, utc(2024, 10, 27, 12), utc(2024, 10, 27, 15)) == []
    # the latest version wins whatever the order rows come in (as from InfluxDB)
    assert current_sessions(reversed(read_booking_versions(path))) == got
    # rows are only ever added: 5, the moved window and a cancelled version of the window it
    # no longer has, the cancelled 5012, the manual session and its longer version
    assert booking_rows(path) == 10
    with sqlite3.connect(path) as db:
        tags = {json.loads(t)["site"] for (t,) in db.execute("SELECT tags FROM series WHERE measurement = 'booking'")}
    assert tags == {"canal"}


# ---------------------------------------------------------------------------------------------
# Commands


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(sessions_app, list(args), env=env)


def test_cli_add_list(tmp_path, site_file):
    journal = str(tmp_path / "j.sqlite")
    common = ["--config", str(site_file), "--journal", journal]
    result = invoke("add", "--machine", "router-1", "--member", "amelie", "--start", "2024-10-26T09:00",
                    "--end", "2024-10-26 11:30", *common)
    assert result.exit_code == 0, result.output
    assert "1 added, 0 already stored" in result.output
    result = invoke("add", "--machine", "router-1", "--member", "amelie", "--start", "2024-10-26T07:00:00Z",
                    "--end", "1729935000", *common)
    assert result.exit_code == 0 and "0 added, 1 already stored" in result.output
    result = invoke("add", "--machine", "router-2", "--member", "amelie", "--start", "2024-10-27T02:30",
                    "--end", "2024-10-27T01:00", *common)
    assert result.exit_code == 2
    assert "--machine: 'router-2' is not a machine of site 'Manufacture du Canal'; machines: embroidery-1" in result.output
    assert "--start: 2024-10-27 02:30:00 occurs twice in Europe/Paris" in result.output
    result = invoke("add", "--machine", "router-1", "--member", "amelie", "--start", "2024-10-26T11:00",
                    "--end", "2024-10-26T10:00", *common)
    assert result.exit_code == 2 and "--end: '2024-10-26T10:00' is not after --start" in result.output
    result = invoke("list", "--json", *common)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{
        "machine": "router-1", "member": "amelie", "start": "2024-10-26T07:00:00.000Z",
        "end": "2024-10-26T09:30:00.000Z", "start_s": utc(2024, 10, 26, 7), "end_s": utc(2024, 10, 26, 9, 30),
        "duration_s": 9000.0, "source": "manual", "booking_id": ""}]
    result = invoke("list", *common)
    assert result.exit_code == 0 and "router-1" in result.output and "2024-10-26 09:00" in result.output
    result = invoke("list", "--from", "2024-10-27", *common)
    assert result.exit_code == 0 and "no session" in result.output
    result = invoke("list", "--config", str(site_file), "--journal", str(tmp_path / "none.sqlite"))
    assert result.exit_code == 2 and "no journal here" in result.output


def test_cli_import_csv_and_ics(tmp_path, site_file):
    journal = str(tmp_path / "j.sqlite")
    common = ["--config", str(site_file), "--journal", journal]
    csv_path = tmp_path / "bookings.csv"
    csv_path.write_text("machine,member,start,end\nrouter-1,amelie,2024-10-26 09:00,2024-10-26 11:00\n")
    result = invoke("import", str(csv_path), *common)
    assert result.exit_code == 2
    assert f"{csv_path}:2: column 'start': '2024-10-26 09:00' has no UTC offset" in result.output
    assert "nothing imported" in result.output
    assert not Path(journal).exists()
    result = invoke("import", str(csv_path), "--tz", "Europe/Paris", *common)
    assert result.exit_code == 0, result.output
    assert "1 session(s): 1 added, 0 already stored" in result.output
    ics_path = write_ics(tmp_path / "bookings.ics", ics(*GOOD_EVENTS))
    for expected in ("5 session(s): 5 added, 0 already stored", "5 session(s): 0 added, 5 already stored"):
        result = invoke("import", str(ics_path), *common)
        assert result.exit_code == 0, result.output
        assert expected in result.output
        assert "1 cancelled booking(s), 0 withdrawn" in result.output
    assert booking_rows(Path(journal)) == 6
    # the booking is cancelled later: the stored session is withdrawn
    cancelled = [e.replace("UID:resa-5@canal", "UID:resa-5@canal\r\nSTATUS:CANCELLED") for e in GOOD_EVENTS]
    result = invoke("import", str(write_ics(tmp_path / "later.ics", ics(*cancelled))), *common)
    assert result.exit_code == 0 and "2 cancelled booking(s), 1 withdrawn" in result.output
    result = invoke("list", "--json", *common)
    listed = json.loads(result.output)
    assert len(listed) == 5 and "printers-1" not in {s["machine"] for s in listed}
    result = invoke("import", str(tmp_path / "bookings.xlsx"), *common)
    assert result.exit_code == 2 and "name it .csv" in result.output
    result = invoke("import", str(csv_path), "--tz", "Paris", *common)
    assert result.exit_code == 2 and "--tz: unknown time zone 'Paris'" in result.output


def test_cli_fabmanager(tmp_path, fake_fabmanager, monkeypatch):
    server = fake_fabmanager()
    site_file = tmp_path / "site.toml"
    site_file.write_text(site_text(server.url), encoding="utf-8")
    journal = str(tmp_path / "j.sqlite")
    common = ["--config", str(site_file), "--journal", journal]
    monkeypatch.delenv("WATTELIER_FABMANAGER_TOKEN", raising=False)
    result = invoke("fabmanager", *common)
    assert result.exit_code == 2
    assert "no Fab-manager token: set the environment variable WATTELIER_FABMANAGER_TOKEN" in result.output
    secrets = tmp_path / "secrets.toml"  # the example site's secrets_file, beside the site file
    secrets.write_text(f'fabmanager_token = "{TOKEN}"\n')
    os.chmod(secrets, 0o600)
    result = invoke("fabmanager", *common)
    assert result.exit_code == 0, result.output
    assert "full read (no earlier read in this journal): 1 page(s), 7 reservation(s) read (1 not of machines" \
        in result.output
    assert "5 session(s): 5 added, 0 already stored; 1 cancelled booking(s), 0 withdrawn" in result.output
    assert "99 ('Découpe vinyle', 1 reservation(s))" in result.output
    # again, with the token from the environment: every slot ended long ago (settled), so only
    # the reservations created in the hour before the newest one are read again: 5012
    env = {"WATTELIER_FABMANAGER_TOKEN": TOKEN}
    result = invoke("fabmanager", *common, env=env)
    assert result.exit_code == 0, result.output
    # 5012 was created at 2024-10-20 18:02:11.517 +02:00; after = one hour before, in Paris time
    assert "reservations created since 2024-10-20 17:02: 1 page(s), 1 reservation(s) read" in result.output
    assert server.requests[-1][1]["after"] == ["2024-10-20T15:02:11.517Z"]
    assert "1 session(s): 0 added, 1 already stored" in result.output
    # then 5012 is cancelled
    for slot in server.pages[1]["reservations"][0]["reserved_slots"]:
        slot["canceled_at"] = "2024-10-25T12:00:00.000+02:00"
    result = invoke("fabmanager", "--since", "2024-10-26", "--until", "2024-10-27", *common, env=env)
    assert result.exit_code == 0, result.output
    assert "0 session(s): 0 added, 0 already stored; 1 cancelled booking(s), 1 withdrawn" in result.output
    listed = json.loads(invoke("list", "--json", *common).output)
    assert sorted({s["booking_id"] for s in listed}) == ["5006", "5008", "5010"]
    result = invoke("fabmanager", *common, env={"WATTELIER_FABMANAGER_TOKEN": "nope"})
    assert result.exit_code == 1 and "Fab-manager refused the token (HTTP 401" in result.output
    site_file.write_text(site_text(), encoding="utf-8")
    result = invoke("fabmanager", *common, env=env)
    assert result.exit_code == 2 and "the site file has no [fabmanager] section" in result.output



def test_cli_fabmanager_deleted_member(tmp_path, fake_fabmanager):
    """The import (a real process: it used to abort on this answer) says that it kept deleted
    members' bookings, and the listing shows them."""
    server = fake_fabmanager()
    server.pages[4] = json.loads((DATA / "reservations_deleted_member.json").read_text(encoding="utf-8"))
    site_file = tmp_path / "site.toml"
    site_file.write_text(site_text(server.url), encoding="utf-8")
    common = ["--config", str(site_file), "--journal", str(tmp_path / "j.sqlite")]
    done = run_wattelier("sessions", "fabmanager", *common, env={"WATTELIER_FABMANAGER_TOKEN": TOKEN})
    assert done.returncode == 0 and "Traceback" not in done.output, done.output
    assert "9 reservation(s) read" in done.stdout and "6 session(s): 6 added" in done.stdout
    assert "warning: kept as member fabmanager-deleted-user 1 session(s) of 2 reservation(s)" in done.stderr
    listed = json.loads(invoke("list", "--json", *common).output)
    assert [(s["booking_id"], s["member"]) for s in listed if s["booking_id"] == "5005"] == [
        ("5005", "fabmanager-deleted-user")]


def test_ical_attendees(tmp_path, site):
    base = ["DTSTART:20241029T080000Z", "DTEND:20241029T090000Z", "LOCATION:router-1"]
    path = write_ics(tmp_path / "one.ics", ics(
        event("UID:one", *base, 'ATTENDEE;CN="Durand, Amélie":mailto:amelie@example.org')))
    [s] = read_sessions_ical(path, machine_finder(site), PARIS, member_for=member_finder(site))
    assert s.member == "amelie"  # the quoted CN is no member's name; the address is
    [s] = read_sessions_ical(path, machine_finder(site), PARIS)
    assert s.member == "Durand, Amélie"  # without a member finder: the CN as it is
    path = write_ics(tmp_path / "two.ics", ics(
        event("UID:two", *base, "ATTENDEE;CN=Amélie Durand:mailto:a@x.org",
              "ATTENDEE;CN=Bastien Leroy:mailto:b@x.org")))
    with pytest.raises(SessionsError, match=r"event 'two'.*several members \(amelie, bastien\)"):
        read_sessions_ical(path, machine_finder(site), PARIS, member_for=member_finder(site))


# ---------------------------------------------------------------------------------------------
# Times the journal cannot hold, durations beyond the calendar, broken structure (issue 14)


def test_times_beyond_what_the_journal_holds_are_refused():
    for text in ("2300-01-01T00:00:00Z", "2262-04-12T00:00:00Z", "9999-12-31T23:00:00-05:00",
                 "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z"):
        with pytest.raises(ValueError, match=rf"'{text[:10]}.*' is outside 1970-01-01 \.\. 2262-04-11, "
                                             r"the times .* check the year$"):
            parse_time_s(text)
    with pytest.raises(ValueError, match="is outside 1970-01-01"):
        parse_time_s("9999-12-31 23:30", zoneinfo.ZoneInfo("America/New_York"))
    assert parse_time_s("2262-04-11T23:47:16Z") == 9_223_372_036.0


def test_csv_dates_after_2262_name_file_line_and_column(tmp_path, site):
    path = tmp_path / "late.csv"
    path.write_text("machine,member,start,end\n"
                    "laser-1,bastien,2026-10-28T14:00:00Z,2300-10-28T15:00:00Z\n", encoding="utf-8")
    with pytest.raises(SessionsError) as err:
        read_sessions_csv(path, machines=site.machines, members=site.members)
    assert err.value.problems == [
        f"{path}:2: column 'end': '2300-10-28T15:00:00Z' is outside 1970-01-01 .. 2262-04-11, the times the "
        "analysis and the journal can hold (64-bit nanoseconds); check the year"]


@pytest.mark.parametrize("lines, prop, message", [
    (("DTSTART:20260310T090000Z", "DURATION:P99999999W"), "DURATION",
     "line {n}: DURATION 'P99999999W' ends outside the calendar; a booking lasts hours or days"),
    (("DTSTART:20260310T090000Z", "DURATION:PT" + "9" * 5000 + "S"), "DURATION", "line {n}: DURATION 'PT999"),
    (("DTSTART:20260310T090000Z", "DURATION:P20000W"), "DURATION",
     "line {n}: the end of DURATION 'P20000W' is outside 1970-01-01 .. 2262-04-11"),
    (("DTSTART:20260310T090000Z", "DTEND:23000310T100000Z"), "DTEND",
     "line {n}: DTEND '23000310T100000Z' is outside 1970"),
    (("DTSTART;VALUE=DATE:99991231",), "DTSTART", "line {n}: DTSTART '99991231' is outside 1970"),
    (("DTSTART;VALUE=DATE;TZID=Etc/GMT+12:22620411",), "DTSTART",  # 12:00Z to 12:00Z the next day
     "line {n}: the end of the day of DTSTART '22620411' is outside"),
    (("DTSTART;TZID=Asia/Tokyo:00010101T000000", "DURATION:PT1H"), "DTSTART",
     "line {n}: DTSTART '00010101T000000' is outside"),
    (("DTSTART:00000101T000000Z", "DURATION:PT1H"), "DTSTART",
     "line {n}: DTSTART '00000101T000000Z' is not a date and time (year 0 is out of range)"),
    (("DTSTART:20261399T090000Z", "DURATION:PT1H"), "DTSTART",
     "line {n}: DTSTART '20261399T090000Z' is not a date and time (month must be in 1..12)"),
    (("DTSTART;TZID=" + "x" * 300 + ":20260310T090000", "DURATION:PT1H"), "DTSTART",
     "line {n}: TZID 'xxx"),
    (("DTSTART;TZID=../../etc/passwd:20260310T090000", "DURATION:PT1H"), "DTSTART",
     "line {n}: TZID '../../etc/passwd' is not an IANA time zone name"),
])
def test_ical_times_and_durations_beyond_the_calendar(tmp_path, site, lines, prop, message):
    path = write_ics(tmp_path / "far.ics", ics(event("UID:far", "SUMMARY:amelie @ laser-1", *lines)))
    with pytest.raises(SessionsError) as err:
        read_sessions_ical(path, machine_finder(site), site.tz, member_for=member_finder(site))
    text = path.read_bytes().decode("utf-8").split("\r\n")
    begin = text.index("BEGIN:VEVENT") + 1
    n = next(i + 1 for i, line in enumerate(text) if i >= begin and line.startswith(prop))
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:{begin}: event 'far' ('amelie @ laser-1'): "), problem
    assert message.format(n=n) in problem, problem


def test_ical_nested_event_and_cancelled_event_beyond_2262(tmp_path, site):
    nested = ics("BEGIN:VEVENT\r\nUID:outer\r\n" + event("UID:inner", "DTSTART:20260310T090000Z")
                 + "END:VEVENT\r\n")
    path = write_ics(tmp_path / "nested.ics", nested)
    with pytest.raises(SessionsError, match=r"nested.ics:\d+: BEGIN:VEVENT inside another VEVENT \(line \d+\); "
                                            "close the first with END:VEVENT"):
        read_sessions_ical(path, machine_finder(site), site.tz)
    # a cancellation is stored as a withdrawal: its times must be storable too
    path = write_ics(tmp_path / "cancel.ics", ics(event("UID:c", "STATUS:CANCELLED", "DTSTART:23000310T090000Z",
                                                        "DTEND:23000310T100000Z", "SUMMARY:amelie @ laser-1")))
    report = ImportReport()
    assert read_sessions_ical(path, machine_finder(site), site.tz, member_for=member_finder(site),
                              report=report) == []
    assert [(s.booking_id, s.start_s, s.end_s) for s in report.canceled] == [("c", 0.0, 0.0)]


def test_cli_one_bad_row_is_one_line(tmp_path, site_file):
    path = tmp_path / "late.csv"
    path.write_text("machine,member,start,end\nlaser-1,bastien,2026-10-28T14:00:00Z,2300-10-28T15:00:00Z\n")
    result = invoke("import", str(path), "--config", str(site_file), "--journal", str(tmp_path / "j.sqlite"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:2: column 'end': '2300-10-28T15:00:00Z' is outside 1970-01-01 .. 2262-04-11, the times the "
        f"analysis and the journal can hold (64-bit nanoseconds); check the year; nothing imported from {path}; "
        "fix the file and import it again"]
    assert not (tmp_path / "j.sqlite").exists()
    result = invoke("import", str(path), "--tz", "x" * 5000, "--config", str(site_file))
    assert result.exit_code == 2 and "--tz: unknown time zone 'xxxx" in result.stderr


def test_csv_quote_never_closed_is_named_where_it_opens(tmp_path):
    rows = [f"laser-1,amelie,{1773133200 + 10 * k},{1773133205 + 10 * k}" for k in range(20_000)]
    rows[4] = 'laser-1,"amelie,1773133240,1773133245'
    path = tmp_path / "quote.csv"
    path.write_text("machine,member,start,end\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(SessionsError) as err:
        read_sessions_csv(path)
    assert err.value.problems == [f"{path}:6: a cell runs over 131072 characters from this line: "
                                  "a quote (\") opened and never closed? close it, or remove it"]


def test_a_time_without_offset_is_refused_naming_the_option_of_each_command(tmp_path):
    """The library names no option; each command names its own (sessions import: --tz;
    analyze: --config, whose site gives the zone)."""
    from tests.cli_process import assert_clear_failure, run_wattelier

    path = tmp_path / "bookings.csv"
    path.write_text("machine,member,start,end\nlaser-1,amelie,2026-03-10 09:00,2026-03-10T11:00:00Z\n")
    done = run_wattelier("sessions", "import", str(path), "--journal", str(tmp_path / "j.sqlite"))
    assert_clear_failure(done, "has no UTC offset", "(--tz ZONE)", exit_code=2)
    power = tmp_path / "power.csv"
    power.write_text("time,machine,power_w\n2026-03-10T09:00:00Z,laser-1,100\n2026-03-10T09:10:00Z,laser-1,100\n")
    done = run_wattelier("analyze", "--power", str(power), "--sessions", str(path))
    text = assert_clear_failure(done, "has no UTC offset", "(--config SITE.toml: its time zone)", exit_code=2)
    assert "--tz" not in text


# ---------------------------------------------------------------------------------------------
# Fab-manager: incremental reads (issue 15). The fake lists newest first and honours `after`
# (created_at >= after), as the Open API does.

NOW = utc(2026, 3, 2, 12)
DAY = 86400.0


def paris_iso(t_s: float) -> str:
    """A time as the Open API writes it: local, milliseconds, offset."""
    return dt.datetime.fromtimestamp(t_s, PARIS).isoformat(timespec="milliseconds")


def resa(rid: int, created_s: float, start_s: float, hours: float = 1.0, machine: int = 3,
         user: int = 101) -> dict:
    """A machine reservation in the documented format, one slot from start_s."""
    return {"id": rid, "user_id": user, "reservable_id": machine, "reservable_type": "Machine",
            "created_at": paris_iso(created_s), "updated_at": paris_iso(created_s),
            "user": {"id": user, "full_name": f"user {user}"},
            "reservable": {"id": machine, "name": f"machine {machine}"},
            "reserved_slots": [{"canceled_at": None, "availability_id": rid,
                                "start_at": paris_iso(start_s), "end_at": paris_iso(start_s + hours * 3600)}]}


def incremental(server: FakeFabmanager, state, now_s: float, **kwargs):
    report = FabmanagerReport()
    sessions, new_state = fetch_fabmanager_incremental(server.url, TOKEN, MACHINES, MEMBERS, state,
                                                       per_page=kwargs.pop("per_page", 20), report=report,
                                                       now_s=now_s, **kwargs)
    return sessions, new_state, report


def pages_asked(server: FakeFabmanager, since: int = 0) -> list[tuple[int, str | None]]:
    return [(int(q["page"][0]), q.get("after", [None])[0]) for _, q, _ in server.requests[since:]]


def test_fabmanager_second_read_reads_only_what_can_still_change(fake_fabmanager, tmp_path):
    """200 reservations, one a day, each for the next day: the first read reads all 10
    pages; the next one, with nothing new, one short page (the week not yet settled); a new
    reservation is on it; --full reads everything again. Storing each read adds nothing twice."""
    created = [NOW - (200 - i) * DAY for i in range(200)]  # the last one a day before NOW
    server = fake_fabmanager(recorded=False, reservations=[
        resa(8000 + i, c, c + DAY, machine=(3, 4, 5)[i % 3], user=(101, 102, 103)[i % 3])
        for i, c in enumerate(created)])
    sessions, state, report = incremental(server, None, NOW)
    assert report.full_reason == "no earlier read in this journal" and report.after_s is None
    assert pages_asked(server) == [(n, None) for n in range(1, 11)]
    assert len(sessions) == 200 and report.reservations == 200
    # unsettled at NOW: slots ending after NOW - 7 days, i.e. those created 8 days before NOW or later
    unsettled = [c for c in created if c + DAY + 3600 > NOW - SETTLED_S]
    assert len(unsettled) == 8
    assert (state.read_s, state.newest_created_s, state.oldest_unsettled_created_s) == (NOW, created[-1], unsettled[0])
    assert state.after_s == unsettled[0]
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    try:
        assert store_sessions(journal, "canal", sessions) == (200, 0)
        n = len(server.requests)
        again, state2, report = incremental(server, state, NOW + 3600)
        after = dt.datetime.fromtimestamp(unsettled[0], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert pages_asked(server, n) == [(1, after)]
        assert [s.booking_id for s in again] == [str(8000 + i) for i in range(199, 191, -1)]
        assert report.full_reason == "" and report.after_s == unsettled[0]
        assert store_sessions(journal, "canal", again) == (0, 8)
        # an hour later, 8192's slot is a week behind: settled
        assert state2.oldest_unsettled_created_s == unsettled[1]
        # a reservation made since: it is on the first page of the next read
        server.add(resa(8200, NOW + 1800, NOW + 2 * DAY, machine=4, user=102))
        n = len(server.requests)
        newer, state3, _ = incremental(server, state2, NOW + 7200)
        assert len(pages_asked(server, n)) == 1 and newer[0].booking_id == "8200"
        assert [s.booking_id for s in newer[1:]] == [str(8000 + i) for i in range(199, 192, -1)]
        assert state3.newest_created_s == NOW + 1800
        assert store_sessions(journal, "canal", newer) == (1, 7)
        # --full: every page again, and nothing stored twice
        n = len(server.requests)
        everything, _, report = incremental(server, state3, NOW + 7200, full=True)
        assert report.full_reason == "--full" and len(pages_asked(server, n)) == 11 and len(everything) == 201
        assert all(after is None for _, after in pages_asked(server, n))
        assert store_sessions(journal, "canal", everything) == (0, 201)
    finally:
        journal.close()
    assert booking_rows(path) == 201


def test_fabmanager_moved_slot_of_an_old_unsettled_booking_is_read_a_settled_one_is_not(fake_fabmanager):
    """Fab-manager filters on creation time, not on the slots: a booking made months ahead is
    still read while its slot has not settled; an older settled one is not read again."""
    server = fake_fabmanager(recorded=False, reservations=[
        resa(7000, NOW - 120 * DAY, NOW - 119 * DAY),             # settled, created first
        resa(7001, NOW - 90 * DAY, NOW + 2 * DAY, machine=4),     # booked three months ahead
        resa(7002, NOW - 60 * DAY, NOW - 50 * DAY, machine=5),    # settled, created after 7001
        resa(7004, NOW - 2 * DAY, NOW - DAY, user=103)])          # recent
    _, state, _ = incremental(server, None, NOW)
    assert state.after_s == NOW - 90 * DAY
    # the manager moves 7001 by a day, and corrects 7000 (settled: this read does not see it)
    moved = server.reservation(7001)["reserved_slots"][0]
    moved["start_at"], moved["end_at"] = paris_iso(NOW + 3 * DAY), paris_iso(NOW + 3 * DAY + 3600)
    server.reservation(7000)["reserved_slots"][0]["end_at"] = paris_iso(NOW - 119 * DAY + 7200)
    sessions, state, report = incremental(server, state, NOW + DAY)
    assert report.after_s == NOW - 90 * DAY
    assert {s.booking_id: (s.start_s, s.end_s) for s in sessions} == {
        "7001": (NOW + 3 * DAY, NOW + 3 * DAY + 3600), "7002": (NOW - 50 * DAY, NOW - 50 * DAY + 3600),
        "7004": (NOW - DAY, NOW - DAY + 3600)}
    # once 7001's slot is a week behind, nothing before the newest reservation is read again
    sessions, state, _ = incremental(server, state, NOW + 11 * DAY)
    assert state.oldest_unsettled_created_s is None
    assert state.after_s == NOW - 2 * DAY - CREATION_MARGIN_S
    n = len(server.requests)
    sessions, _, _ = incremental(server, state, NOW + 11 * DAY)
    assert [s.booking_id for s in sessions] == ["7004"] and len(pages_asked(server, n)) == 1


def test_fabmanager_a_server_that_ignores_after_is_read_up_to_the_older_reservations(fake_fabmanager):
    """Pages stop at the first reservation older than `after`, which is left out and counted."""
    server = fake_fabmanager(recorded=False, honour_after=False, reservations=[
        resa(6000 + i, NOW - (50 - i) * DAY, NOW - (50 - i) * DAY + 3600) for i in range(50)])
    _, state, _ = incremental(server, None, NOW, per_page=5)
    n = len(server.requests)
    sessions, _, report = incremental(server, state, NOW + 60, per_page=5)
    # unsettled: created within the last 7 days (slots an hour after creation): 7 of them
    assert [s.booking_id for s in sessions] == [str(6000 + i) for i in range(49, 42, -1)]
    assert [page for page, _ in pages_asked(server, n)] == [1, 2] and report.older_than_after == 3


def test_fabmanager_state_reasons_for_a_full_read_and_its_json(fake_fabmanager):
    server = fake_fabmanager()
    _, state, _ = incremental(server, None, NOW)
    assert FabmanagerState.from_json(state.to_json()) == state
    assert state.mapping == mapping_fingerprint(MACHINES, MEMBERS)
    other_ids = fetch_fabmanager_incremental(server.url, TOKEN, MACHINES, {**MEMBERS, 104: "elise"}, state,
                                             report=(report := FabmanagerReport()), now_s=NOW)
    assert report.full_reason == "the site's fabmanager_id or fabmanager_user_id changed since the last read"
    assert other_ids[1].mapping != state.mapping
    moved = FabmanagerState("https://old.example.org", state.mapping, NOW, NOW, None)
    _, _, report = incremental(server, moved, NOW)
    assert report.full_reason == "the last read was of another Fab-manager (https://old.example.org)"
    for text, message in (("{", "not JSON"), ('{"version": 2}', "not a version 1 state"),
                          ('{"version": 1, "url": "u", "mapping": "m", "read_s": "x"}', "read_s is not a time")):
        with pytest.raises(ValueError, match=message):
            FabmanagerState.from_json(text)
    # a reservation without a readable created_at: the state does not move
    server.pages[1]["reservations"][0]["created_at"] = "yesterday"
    _, kept, report = incremental(server, state, NOW + 60)
    assert kept == state and any("without a readable created_at" in w for w in report.warnings)


def test_cli_fabmanager_incremental_full_and_a_crash_before_the_state_is_written(tmp_path, fake_fabmanager,
                                                                                 monkeypatch):
    """The state is written only once the sessions are stored: a crash in between reads the
    same reservations again next time, and they are not stored twice."""
    import wattelier.commands.sessions as sessions_cmd
    from wattelier.fabmanager_state import FABMANAGER_STATE_KEY, load_fabmanager_state

    server = fake_fabmanager()
    site_file = tmp_path / "site.toml"
    site_file.write_text(site_text(server.url), encoding="utf-8")
    path = tmp_path / "j.sqlite"
    common = ["--config", str(site_file), "--journal", str(path)]
    env = {"WATTELIER_FABMANAGER_TOKEN": TOKEN}
    assert invoke("fabmanager", *common, env=env).exit_code == 0
    first, _ = load_fabmanager_state(path)
    assert first.newest_created_s == parse_time_s("2024-10-20T18:02:11.517+02:00")
    # a booking made now, read, then a crash before anything is stored
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    server.add(resa(9100, now - 60, now + DAY, machine=5, user=103))

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(sessions_cmd, "store_sessions", crash)
        result = invoke("fabmanager", *common, env=env)
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    assert load_fabmanager_state(path)[0] == first
    # stored, then a crash before the state is written
    with monkeypatch.context() as patch:
        patch.setattr(sessions_cmd, "save_fabmanager_state", crash)
        result = invoke("fabmanager", *common, env=env)
    assert result.exit_code != 0 and load_fabmanager_state(path)[0] == first
    assert [s.booking_id for s in load_sessions(path) if s.booking_id == "9100"] == ["9100"]
    # the next run reads from the first state again: 9100 and 5012, already stored
    result = invoke("fabmanager", *common, env=env)
    assert result.exit_code == 0, result.output
    assert "2 session(s): 0 added, 2 already stored" in result.output
    state, _ = load_fabmanager_state(path)
    assert state.oldest_unsettled_created_s == pytest.approx(now - 60, abs=0.001)
    rows = booking_rows(path)
    # a read with a window does not move the state; --full reads all pages
    result = invoke("fabmanager", "--since", "2024-10-26", *common, env=env)
    assert result.exit_code == 0 and load_fabmanager_state(path)[0] == state
    result = invoke("fabmanager", "--full", *common, env=env)
    assert result.exit_code == 0 and "full read (--full): 1 page(s), 8 reservation(s) read" in result.output
    assert "6 session(s): 0 added, 6 already stored" in result.output and booking_rows(path) == rows
    # a state nobody can read: said in one line, and everything is read
    journal = Journal(path)
    try:
        journal.set_meta_value(FABMANAGER_STATE_KEY, "{broken")
        with pytest.raises(ValueError, match="belongs to the journal"):
            journal.set_meta_value("schema_version", "1")
    finally:
        journal.close()
    result = invoke("fabmanager", *common, env=env)
    assert result.exit_code == 0 and "full read (no earlier read in this journal)" in result.output
    assert "warning: the Fab-manager state kept in" in result.output and "cannot be read (not JSON" in result.output


def test_fabmanager_no_answer_says_what_to_check(fake_fabmanager):
    import socket

    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(SessionsError) as err:
            fetch_fabmanager_reservations(url, TOKEN, MACHINES, MEMBERS, timeout_s=0.3)
    [problem] = err.value.problems
    assert problem == (f"no answer from Fab-manager at {url}/open_api/v1/reservations within 0.3 s; check "
                       "that Fab-manager is up and [fabmanager] url, or raise [fabmanager] timeout_s")
    failing = fake_fabmanager(fail_page=1)
    with pytest.raises(SessionsError, match=r"HTTP 500 .*undefined method; Fab-manager's own log says why; "
                                            r"try again later"):
        fetch_fabmanager_reservations(failing.url, TOKEN, MACHINES, MEMBERS)


def test_cli_import_a_french_spreadsheet_export(tmp_path, site_file):
    """`;`, members by full name or e-mail, machines by name, day-first dates in the site's zone
    (Europe/Paris) without --tz, as a French spreadsheet saves them."""
    path = tmp_path / "réservations.csv"
    path.write_text("Machine;Member;Start;End\n"
                    "router-1;Amélie Durand;26/10/2026 09:00;26/10/2026 11:30\n"
                    "laser-1;amelie@example.org;02/11/2026 14:00;02/11/2026 15:00\n", encoding="utf-8")
    common = ["--config", str(site_file), "--journal", str(tmp_path / "j.sqlite")]
    result = invoke("import", str(path), *common)
    assert result.exit_code == 0, result.output
    listed = json.loads(invoke("list", "--json", *common).output)
    assert [(s["machine"], s["member"], s["start"], s["end"]) for s in listed] == [
        ("router-1", "amelie", "2026-10-26T08:00:00.000Z", "2026-10-26T10:30:00.000Z"),  # CET from 25 Oct
        ("laser-1", "amelie", "2026-11-02T13:00:00.000Z", "2026-11-02T14:00:00.000Z")]
    path.write_text("machine;member;start;end\nrouter-1;Zoé Inconnue;26/10/2026 09:00;26/10/2026 10:00\n",
                    encoding="utf-8")
    result = invoke("import", str(path), *common)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"{path}:2: column 'member': 'Zoé Inconnue' is not a member of the site by key, "
                           "full name or e-mail")


def test_cli_import_from_to_is_the_window_recurrences_are_expanded_in(tmp_path, site_file):
    """The error for a rule with too many occurrences says to import a shorter window with
    --from/--to: the command has them, and they work."""
    common = ["--config", str(site_file), "--journal", str(tmp_path / "j.sqlite")]
    weekly = Path(__file__).parent / "data" / "calendars" / "google_weekly_exdate.ics"
    result = invoke("import", str(weekly), "--from", "2026-10-13", "--to", "2026-10-28", *common)
    assert result.exit_code == 0, result.output
    listed = json.loads(invoke("list", "--json", *common).output)
    assert [s["start"] for s in listed] == ["2026-10-13T07:00:00.000Z", "2026-10-27T08:00:00.000Z"]
    path = tmp_path / "every-half-hour.ics"
    path.write_bytes(ics(event("UID:h", "DTSTART:20260101T000000Z", "DURATION:PT1M",
                               "RRULE:FREQ=HOURLY;BYMINUTE=0,30", "SUMMARY:amelie @ laser-1")))
    result = invoke("import", str(path), "--from", "2026-01-01", "--to", "2027-01-01", *common)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert "more than 10000; import a shorter window (--from/--to)" in line and "nothing imported" in line
    result = invoke("import", str(path), "--from", "2026-01-01", "--to", "2026-01-02", *common)
    # a Paris day: 2025-12-31T23:00Z to 2026-01-01T23:00Z; the rule starts at 00:00Z: 46 half-hours
    assert result.exit_code == 0 and "46 session(s): 46 added" in result.output
    result = invoke("import", str(path), "--from", "2026-01-02", "--to", "2026-01-01", *common)
    assert result.exit_code == 2 and "--to must be after --from" in result.output
