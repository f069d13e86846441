"""`wattelier analyze --power FILE.csv ... --json`: the offline mode on small CSV files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import typer
from typer.testing import CliRunner

from wattelier.commands.analyze import analyze

T0 = 1_773_133_200.0  # 2026-03-10T09:00:00Z

app = typer.Typer()


@app.callback()
def _group() -> None:
    """The command mounted as `analyze`, as wattelier.cli does."""


app.command("analyze")(analyze)
runner = CliRunner()

SITE = """
[site]
name = "Test"
timezone = "Europe/Paris"
[opening_hours]
tuesday = ["08:30-19:00"]
[machines.laser-1]
kind = "laser_cutter"
rated_power_w = 3500.0
thresholds = { standby_w = 10.0, idle_w = 50.0, processing_w = 1000.0 }
[tariffs.default]
price_per_kwh = 0.25
[members.amelie]
name = "Amélie Durand"
"""


def iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture
def files(tmp_path):
    """laser-1: a sample every 10 s for 10 min, 100 W, 2000 W from 120 s to 300 s; counter
    at the ends only. printers-1: 360 W all along, times in Unix seconds."""
    lines = ["time,machine,power_w,energy_import_kwh"]
    for k in range(61):
        t = T0 + 10.0 * k
        power = 2000.0 if 120 <= 10 * k <= 300 else 100.0
        counter = {0: "50.00", 60: "50.12"}.get(k, "")
        lines.append(f"{iso(t)},laser-1,{power},{counter}")
        lines.append(f"{t},printers-1,360,")
    power = tmp_path / "power.csv"
    power.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("machine,member,start,end\n"
                        f"laser-1,amelie,{iso(T0 + 60)},{iso(T0 + 360)}\n", encoding="utf-8")
    site = tmp_path / "site.toml"
    site.write_text(SITE, encoding="utf-8")
    return power, sessions, site


def run(*args: str):
    return runner.invoke(app, ["analyze", *map(str, args)])


def test_offline_json_numbers(files):
    power, sessions, site = files
    result = run("--power", power, "--sessions", sessions, "--config", site,
                 "--emission-factor", "0.1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["start"] == "2026-03-10T09:00:00Z" and doc["end"] == "2026-03-10T09:10:00Z"
    machines = {m["machine"]: m for m in doc["machines"]}
    laser = machines["laser-1"]
    # 100 W x 110 s + ramp 10 s (1050 W mean) + 2000 W x 180 s + ramp + 100 W x 290 s = 421 000 J
    assert laser["energy_kwh"] == pytest.approx(421000 / 3.6e6)
    assert laser["energy_power_kwh"] == pytest.approx(421000 / 3.6e6)
    # the counter moved by 0.12 kWh in steps of 0.12: power (0.117) is within its resolution
    assert laser["energy_counter_kwh"] == pytest.approx(0.12)
    assert laser["coverage"] == 1.0
    # processing from the midpoint 115 s to 305 s; idle otherwise (100 W >= 50 W)
    assert laser["processing_s"] == pytest.approx(190.0)
    assert laser["idle_s"] == pytest.approx(410.0)
    assert laser["standby_s"] == 0.0 and laser["off_s"] == 0.0
    assert laser["jobs"] == 1
    # session [60, 360]: 5000 + 10500 + 360000 + 10500 + 5000 = 391 000 J; the rest unattributed
    assert laser["unattributed_energy_kwh"] == pytest.approx(30000 / 3.6e6)
    printers = machines["printers-1"]
    assert printers["energy_kwh"] == pytest.approx(0.06)  # 360 W x 600 s
    assert printers["unattributed_energy_kwh"] == pytest.approx(0.06)
    (session,) = doc["sessions"]
    assert session["machine"] == "laser-1" and session["member"] == "amelie"
    assert session["start"] == "2026-03-10T09:01:00Z" and session["end"] == "2026-03-10T09:06:00Z"
    assert session["energy_kwh"] == pytest.approx(391000 / 3.6e6)
    assert session["coverage"] == 1.0
    assert session["processing_s"] == pytest.approx(190.0)
    assert session["co2e_kg"] == pytest.approx(0.1 * 391000 / 3.6e6)
    assert session["cost"] == pytest.approx(0.25 * 391000 / 3.6e6)
    (job,) = doc["jobs"]
    # job [115, 305]: power steps at the state changes, 2000 W x 190 s (a linear ramp across
    # the 10 s sample steps would give it 7625 J + 360 000 J + 7625 J)
    assert job["machine"] == "laser-1" and job["member"] == "amelie"
    assert job["start"] == "2026-03-10T09:01:55Z" and job["end"] == "2026-03-10T09:05:05Z"
    assert job["energy_kwh"] == pytest.approx(380000 / 3.6e6)
    (member,) = doc["members"]
    assert member["member"] == "amelie"
    assert member["energy_kwh"] == pytest.approx(391000 / 3.6e6)
    assert member["processing_s"] == pytest.approx(190.0)
    assert member["co2e_kg"] == pytest.approx(0.1 * 391000 / 3.6e6)
    assert doc["emission_factor"]["source"] == "given on the command line"
    assert {u["date"] for u in doc["usage"]} == {"2026-03-10"}


def test_offline_without_site_or_sessions(files):
    power, _, _ = files
    result = run("--power", power, "--json", "--from", iso(T0), "--to", str(T0 + 600))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["sessions"] == [] and doc["members"] == []
    # the default: ADEME's latest vintage not after the window's year (2026: the 2025 one)
    assert doc["emission_factor"]["vintage"] == "2025" and doc["emission_factor"]["zone"] == "France continentale"
    assert doc["timezone"] == "Europe/Paris"
    assert all(m["unattributed_energy_kwh"] == pytest.approx(m["energy_kwh"]) for m in doc["machines"])
    # a text summary without --json
    result = run("--power", power)
    assert result.exit_code == 0 and "laser-1" in result.stdout


def test_malformed_rows_are_reported_with_line_numbers(tmp_path):
    power = tmp_path / "power.csv"
    power.write_text(
        "time,machine,power_w,energy_import_kwh\n"      # line 1
        "2026-03-10T09:00:00Z,laser-1,100,\n"            # 2: good
        "yesterday,laser-1,100,\n"                       # 3: bad time
        "2026-03-10T09:00:10Z,laser-1,lots,\n"           # 4: not a number
        "2026-03-10T09:00:20Z,,100,\n"                   # 5: no machine
        "2026-03-10T09:00:30Z,laser-1,100\n"             # 6: a cell missing
        "2026-03-10T09:00:40,laser-1,100,\n"             # 7: no offset
        "2026-03-10T09:00:50Z,laser-1,nan,\n"            # 8: not finite
        "2026-03-10T09:01:00Z,laser-1,100,-3\n",         # 9: negative counter
        encoding="utf-8")
    result = run("--power", power, "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    for line in (3, 4, 5, 6, 7, 8, 9):
        assert f"power.csv:{line}:" in result.stderr
    assert "power.csv:2:" not in result.stderr
    assert "no data is skipped" in result.stderr


def test_bad_header_and_bad_sessions(files, tmp_path):
    power, _, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("when,machine,watts\n1,laser-1,3\n", encoding="utf-8")
    result = run("--power", bad, "--json")
    assert result.exit_code == 2 and "bad.csv:1:" in result.stderr and "time" in result.stderr
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("machine,member,start,end\nlaser-1,amelie,2026-03-10T09:06:00Z,"
                        "2026-03-10T09:01:00Z\n", encoding="utf-8")
    result = run("--power", power, "--sessions", sessions, "--json")
    assert result.exit_code == 2 and "sessions.csv:2:" in result.stderr


def test_without_power_the_example_site_is_analysed_and_a_missing_power_file_refused(tmp_path):
    """Without --power nor --config: the stored mode of the shipped example site, as the other
    commands use it (issue 14)."""
    result = run("--json", "--journal", tmp_path / "nope.sqlite")
    assert result.exit_code == 2 and "nope.sqlite: no journal here" in result.stderr
    result = run("--power", "/nonexistent/power.csv", "--json")
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_config_without_power_analyses_the_journal_and_stores_results(files, tmp_path):
    """The stored mode on a real journal: the same readings as the CSV, stored as the collector
    stores them, the session as a booking; results written back, a re-run replaces them."""
    import sqlite3

    from analytics.csv_input import read_power_csv
    from analytics.sessions import read_sessions_csv
    from storage.journal import Journal
    from storage.points import Point
    from storage.bookings_store import store_sessions

    power, sessions, site = files
    journal_path = tmp_path / "journal.sqlite"
    journal = Journal(journal_path)
    for name, series in read_power_csv(power).items():
        counter = dict(zip(series.counter_time_s.tolist(), series.energy_import_kwh.tolist()))
        journal.put([Point("meter", {"site": "Test", "meter": name, "machine": name},
                           {"power_w": float(p), **({"energy_import_kwh": counter[t]} if t in counter else {})},
                           int(round(t * 1e9)))
                     for t, p in zip(series.power_time_s.tolist(), series.power_w.tolist())])
    journal.commit()
    store_sessions(journal, "Test", read_sessions_csv(sessions))
    journal.close()
    args = ("--config", site, "--journal", journal_path, "--from", "2026-03-10T09:00:00Z", "--to",
            str(T0 + 600), "--json")
    result = run(*args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    offline = json.loads(run("--power", power, "--sessions", sessions, "--config", site, "--json").stdout)
    assert [(j["machine"], j["member"], j["start"], j["end"]) for j in doc["jobs"]] == \
        [(j["machine"], j["member"], j["start"], j["end"]) for j in offline["jobs"]] == \
        [("laser-1", "amelie", "2026-03-10T09:01:55Z", "2026-03-10T09:05:05Z")]  # midpoints of 10 s samples
    assert doc["jobs"][0]["energy_kwh"] == pytest.approx(offline["jobs"][0]["energy_kwh"])

    def stored() -> list[tuple]:
        db = sqlite3.connect(journal_path)
        rows = db.execute("SELECT s.key, p.time_ns, p.fields FROM points p JOIN series s ON s.id = p.series_id "
                          "WHERE s.measurement IN ('job', 'session', 'usage', 'machine_state') "
                          "ORDER BY s.key, p.time_ns").fetchall()
        db.close()
        return rows

    first = stored()
    assert any(key.startswith("job,machine=laser-1,member=amelie") for key, _, _ in first)
    assert run(*args).exit_code == 0
    assert stored() == first  # re-run: the same points, no duplicates
    missing = run("--config", site, "--journal", tmp_path / "nope.sqlite")
    assert missing.exit_code == 2 and "no journal here" in missing.stderr


def test_hourly_emission_factors(files, tmp_path):
    power, sessions, site = files
    hourly = tmp_path / "hourly.csv"
    hourly.write_text("time,kg_co2e_per_kwh\n2026-03-10T09:00:00Z,0.2\n2026-03-10T10:00:00Z,0.5\n",
                      encoding="utf-8")
    result = run("--power", power, "--sessions", sessions, "--config", site,
                 "--hourly-factors", hourly, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # the whole run lies in the 09:00 hour: 0.2 kg/kWh, a quantity beside the inventory CO2e
    session = doc["sessions"][0]
    assert session["co2e_grid_hourly_kg"] == pytest.approx(0.2 * 391000 / 3.6e6)
    factor = doc["emission_factor"]["kg_co2e_per_kwh"]
    assert session["co2e_kg"] == pytest.approx(factor * session["energy_kwh"])
    assert factor != 0.2 and doc["hourly_factors"]
    assert doc["options"]["hourly_emission_factors"] is True
    hourly.write_text("time,kg_co2e_per_kwh\n2026-03-10T09:00:00Z,-1\n", encoding="utf-8")
    result = run("--power", power, "--hourly-factors", hourly, "--json")
    assert result.exit_code == 2 and "hourly.csv:2:" in result.stderr


def test_rte_consumption_intensity_as_downloaded(files, tmp_path):
    """RTE's open dataset part-enr-intensite-ges-conso-tr as downloaded: ';'-separated, the
    intensity in g CO2e/kWh beside other columns; an hour not published yet is said and left
    out, a wrong value named with its line."""
    power, sessions, site = files
    hourly = tmp_path / "part-enr-intensite-ges-conso-tr.csv"
    hourly.write_text(
        "date_heure;date_heure_utc;intensite_emissions_conso;part_enr_conso\n"
        "2026-03-10T10:00:00+01:00;2026-03-10T09:00:00+00:00;31;38.2\n"
        "2026-03-10T11:00:00+01:00;2026-03-10T10:00:00+00:00;44;35.0\n"
        "2026-03-10T12:00:00+01:00;2026-03-10T11:00:00+00:00;;\n", encoding="utf-8")
    result = run("--power", power, "--sessions", sessions, "--config", site,
                 "--hourly-factors", hourly, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    session = doc["sessions"][0]
    assert session["co2e_grid_hourly_kg"] == pytest.approx(0.031 * 391000 / 3.6e6)
    assert f"{hourly}: 1 row(s) without an intensity (hours not published yet, from line 4) left out" \
        in result.stderr
    hourly.write_text("date_heure_utc;intensite_emissions_conso\n2026-03-10T09:00:00+00:00;52000\n",
                      encoding="utf-8")
    result = run("--power", power, "--hourly-factors", hourly, "--json")
    assert result.exit_code == 2
    assert f"{hourly}:2: intensite_emissions_conso: '52000' is beyond 10000 g CO2e/kWh" in result.stderr


def _iso_utc_by_datetime(time_s: float) -> str:
    import datetime as dt

    moment = dt.datetime.fromtimestamp(round(float(time_s), 3), dt.timezone.utc)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


@pytest.mark.parametrize("time_s, text", [
    (0.0, "1970-01-01T00:00:00Z"), (-0.0005, "1969-12-31T23:59:59.999Z"), (1794787200.0, "2026-11-16T00:00:00Z"),
    (1794787199.9996, "2026-11-16T00:00:00Z"), (1794787200.25, "2026-11-16T00:00:00.250Z"),
    (951782400.0 - 1, "2000-02-28T23:59:59Z"), (951782400.0 + 86400, "2000-03-01T00:00:00Z")])
def test_iso_utc_pinned(time_s, text):
    from analytics.pipeline import iso_utc

    assert iso_utc(time_s) == text == _iso_utc_by_datetime(time_s)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(min_value=-2e9, max_value=4e9), st.integers(0, 4 * 10**12).map(lambda ms: ms / 1000)))
def test_iso_utc_is_the_datetime_text(time_s):
    """The integer arithmetic of iso_utc writes what datetime.isoformat writes."""
    from analytics.pipeline import iso_utc

    assert iso_utc(time_s) == _iso_utc_by_datetime(time_s)


# ---------------------------------------------------------------------------------------------
# Values that cannot be true, and how spreadsheets export (issue 14)


def _power_problems(tmp_path, text: str | bytes) -> list[str]:
    from analytics.csv_input import CsvError, read_power_csv

    path = tmp_path / "power.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with pytest.raises(CsvError) as err:
        read_power_csv(path)
    return err.value.problems


@pytest.mark.parametrize("row, message", [
    ("2026-03-10T09:00:00Z,laser-1,1e308,", "power_w: '1e308' is beyond 1e+07 W"),
    ("2026-03-10T09:00:00Z,laser-1,-10000001,", "power_w: '-10000001' is beyond 1e+07 W"),
    ("2026-03-10T09:00:00Z,laser-1,100,1e13", "energy_import_kwh: '1e13' is beyond 1e+12 kWh"),
    ("0001-01-01T00:00:00Z,laser-1,100,", "time: '0001-01-01T00:00:00Z' is outside 1970-01-01 .. 2262-04-11"),
    ("0001-01-01T00:00:00+01:00,laser-1,100,", "time: '0001-01-01T00:00:00+01:00' is outside 1970"),
    ("9999-12-31T23:00:00-05:00,laser-1,100,", "time: '9999-12-31T23:00:00-05:00' is outside 1970"),
    ("2262-04-12T00:00:00Z,laser-1,100,", "is outside 1970-01-01 .. 2262-04-11"),
    ("1e308,laser-1,100,", "time: '1e308' is outside 1970-01-01 .. 2262-04-11"),
    ("-1,laser-1,100,", "time: '-1' is outside"),
    ("1773133200000,laser-1,100,", "check the year (it looks like milliseconds: divide by 1000)"),
])
def test_values_that_cannot_be_true_are_refused_with_their_line(tmp_path, row, message):
    problems = _power_problems(tmp_path, "time,machine,power_w,energy_import_kwh\n"
                                         f"2026-03-10T08:59:50Z,laser-1,100,\n{row}\n")
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'power.csv'}:3: "), problems
    assert message in problems[0]


def test_the_limits_themselves_are_read(tmp_path):
    from analytics.csv_input import read_power_csv

    path = tmp_path / "power.csv"
    path.write_text("time,machine,power_w,energy_import_kwh\n"
                    "1970-01-01T00:00:00Z,laser-1,-1e7,0\n"
                    "2262-04-11T23:47:16Z,laser-1,1e7,1e12\n", encoding="utf-8")
    laser = read_power_csv(path)["laser-1"]
    assert laser.power_time_s.tolist() == [0.0, 9_223_372_036.0]
    assert laser.power_w.tolist() == [-1e7, 1e7] and laser.energy_import_kwh.tolist() == [0.0, 1e12]


def test_french_spreadsheets_are_read(files, tmp_path):
    """';' separated with decimal commas (French Excel and LibreOffice), a BOM, CRLF lines and
    spaces as thousands separators read as the plain file; ';' with decimal points too."""
    power, sessions, site = files
    plain = power.read_text(encoding="utf-8").splitlines()
    french = tmp_path / "french.csv"
    french.write_bytes(("\ufeff" + "\r\n".join(
        ";".join(cell.replace(".", ",") if cell[:1].isdigit() and "T" not in cell else cell
                 for cell in line.split(",")) for line in plain) + "\r\n").encode("utf-8"))
    assert ";50,12" in french.read_text(encoding="utf-8") and "T09:00:00Z;laser-1;100,0" in \
        french.read_text(encoding="utf-8")
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("\n".join(line.replace(",", ";") for line in plain) + "\n", encoding="utf-8")
    want = json.loads(run("--power", power, "--sessions", sessions, "--config", site, "--json").stdout)
    for path in (french, semicolons):
        result = run("--power", path, "--sessions", sessions, "--config", site, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["machines"] == want["machines"]
    from analytics.csv_input import read_power_csv

    spaced = tmp_path / "spaced.csv"
    spaced.write_text("time;machine;power_w\n2026-03-10T09:00:00Z;laser-1;1 234,5\n"
                      "2026-03-10T09:00:10Z;laser-1;1\u00a0234\n1773133220,5;laser-1;-0,25\n", encoding="utf-8")
    laser = read_power_csv(spaced)["laser-1"]
    assert laser.power_w.tolist() == [1234.5, 1234.0, -0.25]
    assert laser.power_time_s.tolist() == [T0, T0 + 10, T0 + 20.5]


@pytest.mark.parametrize("text, line, message", [
    # decimal commas in a comma-separated file: every row has a cell too many
    ("time,machine,power_w\n2026-03-10T09:00:00Z,laser-1,100,5\n2026-03-10T09:00:10Z,laser-1,200,25\n", 2,
     "2 row(s) have more cells than the 3 of the header, as decimal commas (100,5) in a comma-separated "
     "file do; export with ';' as the separator"),
    # a spreadsheet's display dates: one line, not one per row
    ("time;machine;power_w\n10/03/2026 09:00;laser-1;100,5\n10/03/2026 09:01;laser-1;100,5\n", 2,
     "time '10/03/2026 09:00' is in a spreadsheet's display format; format the column as "
     "YYYY-MM-DDTHH:MM:SS with the UTC offset"),
    (b"time;machine;power_w\n2026-03-10T09:00:00Z;laser-1;1\n2026-03-10T09:00:10Z;las\xe9r;1\n", 3,
     "not UTF-8 text (byte b'\\xe9' at offset 76); save it as CSV UTF-8"),
    ("time;machine;power_w\n2026-03-10T09:00:00Z;laser-1;1.234,5\n", 2,
     "power_w: not a number: '1.234,5' (write 1234,5 or 1234.5)"),
])
def test_spreadsheet_exports_that_cannot_be_read_say_how_in_one_line(tmp_path, text, line, message):
    problems = _power_problems(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'power.csv'}:{line}: "), problems
    assert message in problems[0]


def test_header_of_another_language_names_what_it_found(tmp_path):
    problems = _power_problems(tmp_path, "temps;machine;puissance\n1;a;2\n")
    assert problems == [f"{tmp_path / 'power.csv'}:1: missing column(s) time, power_w in the header "
                        "(expected time,machine,power_w; found 'temps', 'machine', 'puissance')"]


def test_hourly_factors_that_cannot_be_true(tmp_path):
    from analytics.csv_input import CsvError, read_hourly_factors_csv

    path = tmp_path / "hourly.csv"
    path.write_text("time;kg_co2e_per_kwh\n2026-03-10T09:00:00Z;0,2\n2026-03-10T10:00:00Z;52\n", encoding="utf-8")
    with pytest.raises(CsvError) as err:
        read_hourly_factors_csv(path)
    assert err.value.problems == [f"{path}:3: kg_co2e_per_kwh: '52' is beyond 10 kg CO2e/kWh, more than "
                                  "it can be; check the column and its unit (kg CO2e/kWh)"]


def test_a_quote_never_closed_is_named_where_it_opens(tmp_path):
    rows = [f"{T0 + k:.0f},laser-1,5" for k in range(20_000)]
    rows[3] = f'{T0 + 3:.0f},"laser-1,5'  # line 5: the quote swallows the lines after it
    assert _power_problems(tmp_path, "time,machine,power_w\n" + "\n".join(rows) + "\n") == [
        f"{tmp_path / 'power.csv'}:5: a cell runs over 131072 characters from this line: a quote (\") opened "
        "and never closed? close it, or remove it"]
    assert _power_problems(tmp_path, f'time,machine,power_w\n{T0:.0f},"laser-1,5\n{T0 + 1:.0f},laser-1,5\n') == [
        f"{tmp_path / 'power.csv'}:2: 2 cells, the header has 3 (the row runs to line 3: a quote (\") never closed?)"]
