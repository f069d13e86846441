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
    assert doc["emission_factor"]["vintage"] == "2022"  # the labelled default
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


def test_needs_power_or_config():
    result = run("--json")
    assert result.exit_code == 2 and "--power" in result.stderr
    result = run("--power", "/nonexistent/power.csv", "--json")
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_config_without_power_analyses_the_journal_and_stores_results(files, tmp_path):
    """The stored mode on a real journal: the same readings as the CSV, stored as the collector
    stores them, the session as a booking; results written back, a re-run replaces them."""
    import sqlite3

    from analytics.csv_input import read_power_csv
    from analytics.sessions import read_sessions_csv
    from collector.journal import Journal
    from collector.points import Point
    from wattelier.sessions_store import store_sessions

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
    # the whole run lies in the 09:00 hour: 0.2 kg/kWh
    assert doc["sessions"][0]["co2e_kg"] == pytest.approx(0.2 * 391000 / 3.6e6)
    assert doc["options"]["hourly_emission_factors"] is True
    hourly.write_text("time,kg_co2e_per_kwh\n2026-03-10T09:00:00Z,-1\n", encoding="utf-8")
    result = run("--power", power, "--hourly-factors", hourly, "--json")
    assert result.exit_code == 2 and "hourly.csv:2:" in result.stderr


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
