"""The README's first command: `wattelier demo` over real sockets, checked against ground truth."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys

import pytest
from rich.console import Console

from devices.site import example_site_path, load_site


def test_demo_at_its_default_length_collects_every_device_and_matches_ground_truth(tmp_path):
    """The README's first command as written (default 60 s), output through a pipe."""
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "wattelier.cli", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seconds"] == 60
    site = load_site(example_site_path())

    # every meter and controller of the example produced points
    for name in site.meters:
        assert summary["devices"][f"meter:{name}"]["points"] >= 10, name
    for name in site.controllers:
        assert summary["devices"][f"controller:{name}"]["points"] >= 1, name
    # every machine of the example is metered, so every machine has points
    fed = {m.feeds for m in site.meters.values()}
    assert set(site.machines) <= fed

    # the collector's counter delta equals the simulator's ground truth within resolution
    assert {e["meter"] for e in summary["energy"]} == set(site.meters)
    for e in summary["energy"]:
        assert abs(e["difference_kwh"]) <= e["allowed_error_kwh"], e
        assert e["allowed_error_kwh"] == pytest.approx(e["counter_resolution_kwh"] + e["timing_allowance_kwh"])
        assert e["within_allowed"] is True
    moving = [e for e in summary["energy"] if e["truth_energy_kwh"] > 0.01]
    assert len(moving) >= 5  # machines really drew energy during the run

    assert summary["write_attempts"] == 0
    assert summary["ok"] is True
    # with seed 1 at pace 60, the example's jobs end 4 s, 18 s and 24 s after the start: a 20 s
    # run (start-up and analysis on top) stops either side of the third
    truth = json.loads((out / "ground_truth.json").read_text())
    assert summary["jobs_completed"] == len(truth["jobs"]) >= 3
    with open(out / "sessions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"machine", "member", "start", "end"}
    assert {r["member"] for r in rows} <= set(site.members)
    assert all(j["energy_kwh"] > 0 for j in truth["jobs"])
    # the analysis ran over the demo and set its jobs beside the ground truth
    analysis = summary["analysis"]
    assert analysis["result_points_written"] > 0
    assert analysis["jobs_in_window"] == len(analysis["jobs"])
    # what a manager reads first: energy, CO2e and cost per machine and per member, in 80 columns
    assert "Per machine over the run" in proc.stdout and "Per member over the run" in proc.stdout
    assert "Check: each meter's counter" in proc.stdout and "all checks passed" in proc.stdout
    commands = "  wattelier "  # commands to copy are printed whole
    assert max(len(line) for line in proc.stdout.splitlines() if not line.startswith(commands)) <= 80
    assert f"  wattelier analyze --journal {out / 'journal.sqlite'} --json" in proc.stdout
    by_member = {m["name"]: m for m in analysis["by_member"]}
    assert set(by_member) <= set(site.members) and by_member
    factor = analysis["emission_factor_kg_per_kwh"]
    for m in by_member.values():
        assert m["co2e_kg"] == pytest.approx(m["energy_kwh"] * factor, rel=1e-3, abs=1e-6)
        assert m["cost"] is not None and m["cost"] >= 0
    machines = {m["name"]: m for m in analysis["by_machine"]}
    assert set(site.machines) <= set(machines)
    # the live table's energy column is what each meter counted during the run, not its
    # lifetime counter: the final table's router-1 row shows the run's energy
    router = next(line for line in proc.stdout.splitlines() if line.startswith("│ router-1")
                  and "│" in line)
    used = float(router.split("│")[4])
    collected = next(e for e in summary["energy"] if e["meter"] == "router-1")["collector_energy_kwh"]
    assert used == pytest.approx(collected, abs=2e-4)


def _demo(out, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "wattelier.cli", "demo", "--seconds", "20", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_demo_into_influxdb_v1_leaves_exactly_the_journaled_points(tmp_path, influx_server):
    from tests.stores import influx_points, journal_points

    out = tmp_path / "demo"
    proc = _demo(out, "--influx-url", influx_server.url, "--influx-api", "v1", "--influx-db", "demo_v1")
    summary = json.loads((out / "summary.json").read_text())
    journaled = journal_points(out / "journal.sqlite")
    stored = influx_points(influx_server, "demo_v1")
    by_measurement = lambda points: {m: sum(1 for k in points if k[0] == m) for m in {k[0] for k in points}}
    assert by_measurement(stored) == by_measurement(journaled)  # counts per measurement equal
    assert set(by_measurement(stored)) == {"meter", "cnc", "collector", "booking", "machine_state", "job",
                                           "session", "usage", "balance"}
    assert stored == journaled  # and every value equal
    assert summary["influxdb"]["backlog"] == 0 and summary["influxdb"]["quarantined"] == 0
    assert summary["influxdb"]["api"] == "v1" and summary["ok"] is True
    assert "created it" in proc.stderr  # the database did not exist: the user is told


def test_demo_into_victoria_metrics_v2_every_point_arrives(tmp_path, victoria_server):
    from tests.stores import expected_victoria, journal_points, victoria_samples

    import pytest

    out = tmp_path / "demo"
    _demo(out, "--influx-url", victoria_server.url, "--influx-api", "v2", "--influx-bucket", "demo",
          "--influx-org", "workshop")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["influxdb"]["api"] == "v2" and summary["influxdb"]["backlog"] == 0
    expected = expected_victoria(journal_points(out / "journal.sqlite"))
    stored = victoria_samples(victoria_server, expected)
    missing = set(expected) - set(stored)
    assert not missing, sorted(missing)[:5]
    assert {k: stored[k] for k in expected} == pytest.approx(expected, rel=1e-11)


def test_the_demo_verdict_catches_a_wrong_scale_and_a_wrong_address(tmp_path, monkeypatch):
    """The collector reads two meters with a wrong register map, the simulator serves the right
    one: the main meter's counter 10 % too large (scale), router-1's counter read from the export
    register (address). Both must fail the check, the others pass."""
    import collector.runtime
    from devices.meter_models import load_model
    from wattelier.demo import run_demo

    def wrong(point, name):
        if name == "janitza-umg604" and point.quantity == "energy_import_kwh":
            return point.model_copy(update={"scale": point.scale * 1.1})
        if name == "eastron-sdm630" and point.quantity == "energy_import_kwh":
            return point.model_copy(update={"address": 0x004A})  # Total export kWh
        return point

    def misread_model(name):
        model = load_model(name)
        return model.model_copy(update={"points": [wrong(p, name) for p in model.points]})

    monkeypatch.setattr(collector.runtime, "load_model", misread_model)
    site = load_site(example_site_path())
    console = Console(file=open(tmp_path / "demo.log", "w"), width=80)
    result = asyncio.run(run_demo(site, 8, tmp_path / "demo", console=console))
    assert result.ok is False
    verdicts = {e["meter"]: e["within_allowed"] for e in result.summary["energy"]}
    assert verdicts.pop("main") is False and verdicts.pop("router-1") is False
    assert all(verdicts.values()), verdicts
