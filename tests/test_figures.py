"""Every figure with its uncertainty, coverage split, factor and the site's balance: the
uncertainty model pinned by hand, and what the analysis JSON holds for the example site."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.energy import CounterCurve, EnergyCurve, GapFilledCurve
from analytics.pipeline import AnalysisOptions, analyze
from analytics.records import MachineData, Session
from analytics.uncertainty import UNKNOWN_CLASS_SHARE, carried, expanded_uncertainty_kwh
from devices.site import example_site_path, load_site, parse_site
from tests.analytics_sim import machine_data, sessions, weekday_morning, workshop

K = 2.0 / math.sqrt(3.0)  # expanded (k = 2) standard uncertainty of a rectangular limit of 1


def test_class_and_resolution_combine_as_the_gum_says():
    """10 kWh on a class 1 meter (1 %), counter step 0.01 kWh at both edges: limits 0.1 and
    0.005 + 0.005 (rectangular), U = 2 / sqrt(3) x sqrt(0.1^2 + 2 x 0.005^2) = 0.11576 kWh."""
    u = expanded_uncertainty_kwh([10.0], 0.01, 0.01, [True], [0.0], [0.0])
    assert u[0] == pytest.approx(K * math.sqrt(0.01 + 2 * 0.005 ** 2), rel=1e-12)
    assert u[0] == pytest.approx(0.11576, abs=1e-5)
    # no counter at the edges: the class alone; an unknown class: UNKNOWN_CLASS_SHARE
    assert expanded_uncertainty_kwh([10.0], 0.01, 0.01, [False], [0.0], [0.0])[0] == pytest.approx(K * 0.1)
    assert expanded_uncertainty_kwh([10.0], None, None, [False], [0.0], [0.0])[0] == pytest.approx(
        K * 10.0 * UNKNOWN_CLASS_SHARE)
    # a placement limit of 0.3 and a missing-share limit of 0.4 add in squares
    u = expanded_uncertainty_kwh([10.0], 0.01, None, [False], [0.3], [0.4])
    assert u[0] == pytest.approx(K * math.sqrt(0.1 ** 2 + 0.3 ** 2 + 0.4 ** 2))


def test_carried_uncertainty_follows_the_mean_rate():
    assert carried([0.2], [1.5], [10.0])[0] == pytest.approx(0.03)
    assert carried([0.2], [0.0], [0.0], fallback_rate=0.25)[0] == pytest.approx(0.05)


def _gap_curve() -> GapFilledCurve:
    """Power 3600 W from 0 to 100 s and from 200 to 300 s (1 Hz), nothing between; the counter
    reads 0 at 100 s and 1.0 kWh at 200 s: the gap holds 1 kWh."""
    t = np.concatenate([np.arange(0.0, 101.0), np.arange(200.0, 301.0)])
    power = EnergyCurve(t, np.full(len(t), 3600.0), max_gap_s=5.0)
    counter = CounterCurve(np.array([0.0, 100.0, 200.0, 300.0]), np.array([-0.1, 0.0, 1.0, 1.1]))
    return GapFilledCurve(power, counter)


def test_placement_limit_of_a_partly_covered_gap():
    curve = _gap_curve()
    limit = curve.placement_limit_kwh([0.0, 150.0, 120.0, 150.0, 100.0], [300.0, 300.0, 140.0, 150.0, 200.0])
    # whole gap: exact; half of it: the true part in [0, 1]: 0.5; a fifth inside: max(0.2, 0.8)
    assert limit == pytest.approx([0.0, 0.5, 0.8, 1.0, 0.0])
    # two gaps cut by one interval's two edges add in squares
    t = np.concatenate([np.arange(0.0, 11.0), np.arange(20.0, 31.0), np.arange(40.0, 51.0)])
    power = EnergyCurve(t, np.full(len(t), 0.0), max_gap_s=5.0)
    counter = CounterCurve(np.array([10.0, 20.0, 30.0, 40.0]), np.array([0.0, 1.0, 1.0, 3.0]))
    two = GapFilledCurve(power, counter)
    # [15, 35): half of the 1 kWh gap (0.5) and half of the 2 kWh gap (limit 1.0)
    assert two.placement_limit_kwh([15.0], [35.0])[0] == pytest.approx(math.hypot(0.5, 1.0))


def test_coverage_split_of_a_gap_backed_by_the_counter():
    measured, counter_only = _gap_curve().shares([0.0, 100.0], [300.0, 200.0])
    assert measured == pytest.approx([200 / 300, 0.0])
    assert counter_only == pytest.approx([100 / 300, 1.0])


@pytest.fixture(scope="module")
def example_doc():
    """Four hours of the simulated example site with its main meter and bookings, analysed."""
    site = load_site(example_site_path())
    start = weekday_morning(site)
    end = start + 4 * 3600.0
    w = workshop(site, start, end, seed=3)
    machines = machine_data(site, w, start, end, step_s=2.0)
    for md in machines:
        md.relative_accuracy = 0.01
        md.accuracy = "IEC 62053-21 class 1"
    times = np.arange(start - 2.0, end + 2.0, 2.0)
    main = w.meter_values_series("main", times)
    machines.append(MachineData("site", times, main["power_w"], counter_time_s=times,
                                energy_import_kwh=main["energy_import_kwh"], is_main=True))
    booked = sessions(w, end)
    # one session cut by each edge of the window
    booked += [Session("laser-1", "amelie", start - 1800.0, start + 600.0, "csv", "early"),
               Session("kiln-1", "bastien", end - 600.0, end + 1800.0, "csv", "late")]
    result = analyze(machines, booked, site, start, end, AnalysisOptions(merge_gap_s=60.0))
    return site, result.to_json()


RECORD_KINDS = ("machines", "jobs", "sessions", "members", "usage")


def test_every_record_names_its_factor_and_carries_an_uncertainty(example_doc):
    _, doc = example_doc
    factor = doc["emission_factor"]
    for kind in RECORD_KINDS:
        assert doc[kind], kind
        for record in doc[kind]:
            where = f"{kind}: {record}"
            assert record["factor"] == factor["name"] and record["factor_vintage"] == factor["vintage"], where
            assert record["factor_basis"] == "location", where
            u = record["energy_uncertainty_kwh"]
            assert u >= 0 and (u > 0 or record["energy_kwh"] == 0), where
            assert record["co2e_uncertainty_kg"] == pytest.approx(u * factor["kg_co2e_per_kwh"], abs=1e-12), where
            shares = record["coverage_power"] + record["coverage_counter"] + record["coverage_missing"]
            assert shares == pytest.approx(1.0, abs=1e-9), where
            assert record["coverage"] == pytest.approx(record["coverage_power"] + record["coverage_counter"]), where
            assert record["co2e_market_kg"] is None and record["co2e_grid_hourly_kg"] is None, where
            if record["cost"] is not None and record["energy_kwh"] > 0:
                assert record["cost_uncertainty"] > 0, where


def test_the_uncertainty_is_about_the_meters_class(example_doc):
    """Dense 0.5 Hz power and a counter: U = 2/sqrt(3) x sqrt((1 % E)^2 + 2 (r/2)^2)."""
    _, doc = example_doc
    for record in doc["machines"]:
        if record["is_service"] or record["energy_kwh"] < 1.0:
            continue
        share = record["energy_uncertainty_kwh"] / record["energy_kwh"]
        assert K * 0.01 <= share <= K * 0.0102, record
        assert record["accuracy"] == "IEC 62053-21 class 1"


def test_sessions_cut_by_the_window_are_marked(example_doc):
    _, doc = example_doc
    by_id = {s["booking_id"]: s for s in doc["sessions"]}
    assert by_id["early"]["window_cut"] == "start" and by_id["late"]["window_cut"] == "end"
    inside = [s for s in doc["sessions"] if s["booking_id"] not in ("early", "late")]
    assert inside and all(s["window_cut"] is None for s in inside
                          if s["start"] >= doc["start"] and s["end"] <= doc["end"])
    for job in doc["jobs"]:
        assert (job["window_cut"] == "end") == (job["outcome"] == "open"), job


def test_the_site_balance_of_the_example_site(example_doc):
    """The main meter against the machines and services it feeds: the unmetered part is the
    site's base load (lighting, heating, sockets: devices/data/sim_profiles.toml)."""
    _, doc = example_doc
    balance = doc["balance"]
    assert [b["period"] for b in balance] == ["window", "2026-03-10"]
    window = balance[0]
    metered = sum(m["energy_kwh"] for m in doc["machines"])
    assert window["metered_kwh"] == pytest.approx(metered, rel=1e-12)
    assert window["not_metered_kwh"] == pytest.approx(window["main_kwh"] - metered, rel=1e-12)
    assert 0.0 < window["not_metered_share"] < 1.0
    assert window["not_metered_uncertainty_kwh"] > 0
    # one day inside the window: the day's figures are the window's
    assert balance[1]["main_kwh"] == pytest.approx(window["main_kwh"], rel=1e-9)
    assert balance[1]["metered_kwh"] == pytest.approx(window["metered_kwh"], rel=1e-9)


def test_market_factor_reported_beside_the_location_one():
    text = example_site_path().read_text(encoding="utf-8") + (
        '\n[emission_factors.supplier]\nbasis = "market"\nkg_co2e_per_kwh = 0.012\n'
        'source = "Supplier X, 2025 fuel mix disclosure"\nvintage = "2025"\n'
        'zone = "France continentale"\nevidence = "contract 2025-014; guarantees of origin"\n')
    site = parse_site(text)
    start = weekday_morning(site)
    t = np.arange(start, start + 3601.0, 10.0)
    md = MachineData("laser-1", t, np.full(len(t), 1800.0), rated_power_w=3500.0)
    doc = analyze([md], [Session("laser-1", "amelie", start, start + 3600.0)], site, start,
                  start + 3600.0).to_json()
    assert doc["emission_factor"]["basis"] == "location"
    assert doc["emission_factor_market"]["kg_co2e_per_kwh"] == 0.012
    for kind in ("machines", "sessions", "members"):
        record = doc[kind][0]
        assert record["co2e_market_kg"] == pytest.approx(record["energy_kwh"] * 0.012)
        assert record["factor_market"] == "supplier" and record["factor_market_vintage"] == "2025"
        assert record["co2e_kg"] == pytest.approx(record["energy_kwh"] * doc["emission_factor"]["kg_co2e_per_kwh"])
