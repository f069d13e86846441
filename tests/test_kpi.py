"""ISO 22400-2 KPIs: formulas, zero denominators, and per day through the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import kpi
from analytics.pipeline import analyze
from analytics.records import MachineData, Session
from devices.site import parse_site

T0 = 1_773_126_000.0  # 2026-03-10T07:00:00Z, Tuesday 08:00 in Paris


def test_ratios():
    # APT 1 h, AUBT 1.5 h, PBT 2 h
    assert_allclose(kpi.availability(3600.0, 7200.0), 0.5)
    assert_allclose(kpi.utilisation_efficiency(3600.0, 5400.0), 2 / 3)
    assert_allclose(kpi.allocation_efficiency(5400.0, 7200.0), 0.75)
    # arrays, and a closed day (PBT = 0) gives NaN, not an error
    assert_allclose(kpi.availability([3600.0, 0.0], [7200.0, 0.0]), [0.5, np.nan])
    assert np.isnan(kpi.utilisation_efficiency(10.0, 0.0))
    # work outside opening hours is not clipped
    assert_allclose(kpi.availability(7200.0, 3600.0), 2.0)
    assert_allclose(kpi.energy_per_processing_hour(3.0, 7200.0), 1.5)
    assert_allclose(kpi.non_processing_share(4.0, 3.0), 0.25)
    assert kpi.availability([], []).shape == (0,)


SITE = """
[site]
name = "Test"
timezone = "Europe/Paris"
[opening_hours]
tuesday = ["09:00-11:00"]
[machines.laser-1]
kind = "laser_cutter"
rated_power_w = 3500.0
thresholds = { standby_w = 5.0, idle_w = 100.0, processing_w = 1000.0 }
"""


def test_daily_kpis_in_the_pipeline():
    site = parse_site(SITE)
    # 08:00-12:00 local: standby 20 W, processing 2000 W from 09:00:05 to 10:00:05 local
    t = np.arange(T0, T0 + 4 * 3600.0 + 1, 10.0)
    p = np.where((t >= T0 + 3610.0) & (t <= T0 + 7200.0), 2000.0, 20.0)
    # sessions 09:00-10:30 local (1.5 h)
    session = Session("laser-1", "amelie", T0 + 3600.0, T0 + 9000.0)
    result = analyze([MachineData("laser-1", t, p)], [session], site, T0, T0 + 4 * 3600.0)
    (day,) = result.usage
    assert day.date == "2026-03-10"
    assert day.day_start_s == pytest.approx(T0 - 8 * 3600.0)  # local midnight, 23:00Z
    # processing from the midpoint 3605 s to 7205 s: exactly one hour
    assert day.processing_s == pytest.approx(3600.0)
    assert day.planned_busy_s == pytest.approx(7200.0)   # 09:00-11:00
    assert day.busy_s == pytest.approx(5400.0)
    assert day.availability == pytest.approx(0.5)
    assert day.utilisation_efficiency == pytest.approx(2 / 3)
    assert day.allocation_efficiency == pytest.approx(0.75)
    assert day.energy_kwh == pytest.approx(result.machines[0].energy_kwh)
