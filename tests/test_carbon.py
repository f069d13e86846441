"""CO2e and cost: factors with source and vintage, hourly factors, peak/off-peak tariffs."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics.carbon import (DEFAULT_EMISSION_FACTOR, FactorInfo, choose_emission_factor,
                              choose_tariff, co2e_curve, co2e_kg, cost_curve, tariff_pieces)
from analytics.energy import EnergyCurve
from devices.site import Tariff, example_site_path, load_site, parse_site

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def local(*args) -> float:
    return dt.datetime(*args, tzinfo=PARIS).timestamp()


def one_kw(start_s: float, end_s: float) -> EnergyCurve:
    t = np.arange(start_s, end_s + 1, 60.0)
    return EnergyCurve(t, np.full(len(t), 1000.0))  # 1 kWh per hour


def test_co2e_is_energy_times_factor():
    assert_allclose(co2e_kg(10.0, 0.052), 0.52)
    assert_allclose(co2e_kg([1.0, 2.0], 0.1), [0.1, 0.2])
    assert co2e_kg([], 0.1).shape == (0,)


def test_choose_emission_factor():
    site = load_site(example_site_path())
    factor = choose_emission_factor(site)
    assert factor.kg_co2e_per_kwh == 0.052 and factor.basis == "location"
    assert "ADEME" in factor.source and factor.vintage == "2022" and factor.name == "location"
    override = choose_emission_factor(site, override_kg_per_kwh=0.08)
    assert override.kg_co2e_per_kwh == 0.08 and override.source == "given on the command line"
    with pytest.raises(ValueError, match="market"):
        choose_emission_factor(site, basis="market")
    assert choose_emission_factor(None) == DEFAULT_EMISSION_FACTOR
    market = parse_site('[site]\nname = "x"\n[emission_factors.contract]\nkg_co2e_per_kwh = 0.01\n'
                        'basis = "market"\nsource = "supplier guarantee of origin"\nvintage = "2025"\n')
    assert choose_emission_factor(market, basis="market").kg_co2e_per_kwh == 0.01
    assert choose_emission_factor(market).source == DEFAULT_EMISSION_FACTOR.source


def test_hourly_factors():
    t0 = 1_790_000_000.0
    energy = one_kw(t0, t0 + 3 * 3600.0)
    factor = FactorInfo(0.05, "location", "test", "2026")
    curve = co2e_curve(energy, factor, [t0, t0 + 3600.0], [0.1, 0.3])
    # hour 1 at 0.1, hour 2 at 0.3, hour 3 outside the series at 0.05
    assert_allclose(curve.at(t0 + 3 * 3600.0) - curve.at(t0), 0.45)
    # half of hour 1 and half of hour 2: 0.05 + 0.15
    assert_allclose(curve.at(t0 + 5400.0) - curve.at(t0 + 1800.0), 0.2)
    constant = co2e_curve(energy, factor)
    assert_allclose(constant.at(t0 + 3600.0) - constant.at(t0), 0.05)


def test_peak_offpeak_cost():
    tariff = Tariff(price_per_kwh=0.25, offpeak_price_per_kwh=0.20,
                    offpeak_hours=["22:00-24:00", "00:00-06:00"])
    start, end = local(2026, 3, 10, 20), local(2026, 3, 11, 0)
    energy = one_kw(start, end)
    cost = cost_curve(energy, tariff, PARIS, start, end)
    # 20:00-22:00 at 0.25 + 22:00-24:00 at 0.20: 0.5 + 0.4
    assert_allclose(cost.at(end) - cost.at(start), 0.9)
    flat = cost_curve(energy, Tariff(price_per_kwh=0.25), PARIS, start, end)
    assert_allclose(flat.at(end) - flat.at(start), 1.0)


def test_offpeak_night_of_the_october_change():
    # 22:00 on the 24th to 06:00 on the 25th is 9 real hours, all off-peak: 9 kWh x 0.20
    tariff = Tariff(price_per_kwh=0.25, offpeak_price_per_kwh=0.20,
                    offpeak_hours=["22:00-24:00", "00:00-06:00"])
    start, end = local(2026, 10, 24, 21), local(2026, 10, 25, 7)
    edges, prices = tariff_pieces(tariff, PARIS, start, end)
    assert_allclose(edges, [start, local(2026, 10, 24, 22), local(2026, 10, 25, 6), end])
    assert_allclose(prices, [0.25, 0.20, 0.25])
    cost = cost_curve(one_kw(start, end), tariff, PARIS, start, end)
    assert_allclose(cost.at(end) - cost.at(start), 0.25 + 9 * 0.20 + 0.25)


def test_choose_tariff():
    site = load_site(example_site_path())
    name, tariff = choose_tariff(site)
    assert name == "default" and tariff.offpeak_price_per_kwh == 0.2068
    assert choose_tariff(None) is None
    with pytest.raises(ValueError, match="no tariff"):
        choose_tariff(site, "night")
