"""CLI behaviour: the collector refuses an invalid site file; backfill writes history."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from storage.journal_reader import JournalReader
from devices.site import example_site_path, load_site
from wattelier.cli import app


def test_collect_refuses_invalid_site(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(example_site_path().read_text().replace("unit_id = 3", "unit_id = 300"))
    result = CliRunner().invoke(app, ["collect", "--config", str(bad), "--journal", str(tmp_path / "j.sqlite")])
    assert result.exit_code == 2
    assert "meters.kiln-1.unit_id: must be 1..247, got 300" in result.output
    assert "refusing to start" in result.output
    assert not (tmp_path / "j.sqlite").exists()


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("wattelier ")


def test_backfill_two_days(tmp_path):
    journal = tmp_path / "history.sqlite"
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["simulate", "--backfill", "2", "--journal", str(journal), "--seed", "4",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    # the bookings the history was made under are stored (so an analysis attributes its jobs to
    # members) and written as the sessions CSV of --out
    from storage.bookings_store import load_sessions

    stored = load_sessions(journal)
    assert stored and f"{len(stored)} sessions (bookings) written" in result.output
    with open(out / "sessions.csv", newline="") as f:
        assert len(f.readlines()) == len(stored) + 1
    site = load_site(example_site_path())
    reader = JournalReader(journal)
    counts = reader.count_by_series()
    for name, meter in site.meters.items():
        [series] = reader.series("meter", meter=name)
        expected = 2 * 86400 / meter.poll_interval_s
        assert abs(counts[series.series_id] - expected) <= 1, name
        times, energy = reader.field(series.series_id, "energy_import_kwh")
        assert (energy[1:] >= energy[:-1]).all()  # counters never go backwards
    cnc = reader.series("cnc")
    assert {s.tags["controller"] for s in cnc} == set(site.controllers)
    # jobs happen only when the workshop is open (controller says running)
    tz = site.tz
    import datetime as dt
    for s in cnc:
        for t_ns, fields in reader.points(s.series_id):
            if fields["execution"] == "running":
                local = dt.datetime.fromtimestamp(t_ns / 1e9, tz)
                ranges = site.opening_hours.ranges(local.weekday())
                assert any(a <= local.time() and (b is None or local.time() < b) for a, b in ranges), local


def test_help_texts_read_as_written():
    """Units and sections in square brackets are shown (not read as markup), flags carry no
    <bool> placeholder, and every command's help opens."""
    runner = CliRunner()
    helps = {}
    for command in (["--help"], ["check", "--help"], ["simulate", "--help"], ["collect", "--help"],
                    ["demo", "--help"], ["journal", "--help"], ["certs", "--help"], ["analyze", "--help"],
                    ["sessions", "--help"], ["sessions", "add", "--help"], ["sessions", "import", "--help"],
                    ["sessions", "list", "--help"], ["sessions", "fabmanager", "--help"]):
        result = runner.invoke(app, command, terminal_width=80)
        assert result.exit_code == 0, (command, result.output)
        assert "<bool>" not in result.output, command
        helps[" ".join(command[:-1])] = " ".join(result.output.split())  # unwrapped
    assert "[influxdb]" in helps["demo"] and "[kg CO2e/kWh]" in helps["analyze"]
    assert "into one job [s]" in helps["analyze"]
    assert "..." not in helps[""].split("Commands:")[1]  # the command list is not cut short
