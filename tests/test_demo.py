"""The README's first command: `wattelier demo` over real sockets, checked against ground truth."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from devices.site import example_site_path, load_site


def test_demo_collects_every_device_and_matches_ground_truth(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "wattelier.cli", "demo", "--seconds", "20", "--out", str(out)],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
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
        assert abs(e["collector_energy_kwh"] - e["truth_energy_kwh"]) <= e["counter_resolution_kwh"], e
        assert e["within_resolution"] is True
    moving = [e for e in summary["energy"] if e["truth_energy_kwh"] > 0.01]
    assert len(moving) >= 5  # machines really drew energy during the run

    assert summary["write_attempts"] == 0
    assert summary["ok"] is True
    # with seed 1 at pace 60, the example's jobs end 4 s, 18 s and 24 s after the start: a 20 s
    # run (start-up and analysis on top) stops either side of the third
    truth = json.loads((out / "ground_truth.json").read_text())
    assert summary["jobs_completed"] == len(truth["jobs"]) >= 2
    with open(out / "sessions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"machine", "member", "start", "end"}
    assert {r["member"] for r in rows} <= set(site.members)
    assert all(j["energy_kwh"] > 0 for j in truth["jobs"])
    assert "Energy per meter" in proc.stdout
    # the analysis ran over the demo and set its jobs beside the ground truth
    analysis = summary["analysis"]
    assert analysis["result_points_written"] > 0
    assert analysis["jobs_in_window"] == len(analysis["jobs"])
    assert "Jobs: analytics vs simulator ground truth" in proc.stdout


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
                                           "session", "usage"}
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
