"""Days, weeks and months in the site's zone across daylight-saving changes."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics.periods import clipped_periods, local_time_ranges, period_edges
from analytics.pipeline import analyze
from analytics.records import MachineData, Session
from devices.site import parse_site

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def local(*args) -> float:
    return dt.datetime(*args, tzinfo=PARIS).timestamp()


def test_days_across_the_october_change():
    # 2026-10-25: clocks go back at 03:00 CEST -> 02:00 CET: a 25 h day
    edges = period_edges(PARIS, local(2026, 10, 24, 12), local(2026, 10, 26, 12), "day")
    assert_allclose(np.diff(edges), [86400.0, 90000.0, 86400.0])
    assert edges[1] == local(2026, 10, 25)
    assert edges[1] == dt.datetime(2026, 10, 24, 22, tzinfo=dt.timezone.utc).timestamp()
    assert edges[2] == dt.datetime(2026, 10, 25, 23, tzinfo=dt.timezone.utc).timestamp()


def test_days_across_the_march_change():
    # 2026-03-29: 02:00 CET -> 03:00 CEST: a 23 h day
    edges = period_edges("Europe/Paris", local(2026, 3, 29, 1), local(2026, 3, 29, 23), "day")
    assert_allclose(np.diff(edges), [82800.0])


def test_weeks_and_months():
    weeks = period_edges(PARIS, local(2026, 10, 21), local(2026, 10, 28), "week")
    # Monday 19 October to Monday 2 November; the week holding the change is 7 days + 1 h
    assert weeks[0] == local(2026, 10, 19) and weeks[-1] == local(2026, 11, 2)
    assert_allclose(np.diff(weeks), [7 * 86400.0 + 3600.0, 7 * 86400.0])
    months = period_edges(PARIS, local(2026, 12, 15), local(2027, 2, 1), "month")
    assert [dt.datetime.fromtimestamp(x, PARIS).date().isoformat() for x in months] == \
        ["2026-12-01", "2027-01-01", "2027-02-01"]
    with pytest.raises(ValueError):
        period_edges(PARIS, 0.0, 1.0, "year")
    assert len(period_edges(PARIS, 10.0, 10.0)) == 0


def test_clipped_periods():
    start, a, b = clipped_periods(PARIS, local(2026, 10, 24, 22), local(2026, 10, 25, 4))
    assert_allclose(start, [local(2026, 10, 24), local(2026, 10, 25)])
    assert_allclose(a, [local(2026, 10, 24, 22), local(2026, 10, 25)])
    assert_allclose(b, [local(2026, 10, 25), local(2026, 10, 25, 4)])


def test_local_time_ranges_across_the_change():
    # off-peak 22:00-06:00 on the night of the change lasts 9 h (02:00-03:00 happens twice)
    a, b = local_time_ranges(PARIS, local(2026, 10, 24, 12), local(2026, 10, 25, 12),
                             [(dt.time(22), None), (dt.time(0), dt.time(6))])
    assert len(a) == 1
    assert b[0] - a[0] == 9 * 3600.0


SITE = """
[site]
name = "Test"
timezone = "Europe/Paris"
[machines.kiln-1]
kind = "kiln"
rated_power_w = 11000.0
thresholds = { standby_w = 5.0, idle_w = 100.0, processing_w = 500.0 }
"""


def test_session_across_the_october_change():
    """A kiln firing at 1 kW from 22:00 local on 24 October to 04:00 local on 25 October:
    7 real hours (02:00-03:00 happens twice), so 7 kWh; 2 on the 24th, 5 on the 25th."""
    site = parse_site(SITE)
    start = local(2026, 10, 24, 22)  # 20:00Z
    end = local(2026, 10, 25, 4)  # 03:00Z
    assert end - start == 7 * 3600.0
    t = np.arange(start, end + 1, 60.0)
    firing = MachineData("kiln-1", t, np.full(len(t), 1000.0))
    result = analyze([firing], [Session("kiln-1", "chloe", start, end)], site, start, end)
    (session,) = result.sessions
    assert session.energy_kwh == pytest.approx(7.0)
    assert session.processing_s == pytest.approx(7 * 3600.0)
    assert [u.date for u in result.usage] == ["2026-10-24", "2026-10-25"]
    assert [u.energy_kwh for u in result.usage] == pytest.approx([2.0, 5.0])
    assert [u.processing_s for u in result.usage] == pytest.approx([7200.0, 18000.0])
    assert result.usage[1].day_start_s == local(2026, 10, 25)
    doc = result.to_json()
    assert doc["sessions"][0]["start"] == "2026-10-24T20:00:00Z"
    assert doc["sessions"][0]["end"] == "2026-10-25T03:00:00Z"
    assert doc["usage"][1]["day_start"] == "2026-10-24T22:00:00Z"
