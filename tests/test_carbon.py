"""CO2e and cost: factors with source, vintage and zone, hourly factors, peak/off-peak tariffs."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics.carbon import (FactorInfo, choose_emission_factor, choose_tariff, co2e_curve, co2e_kg,
                              cost_curve, default_emission_factor, reporting_year, tariff_pieces)
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
    site = load_site(example_site_path())  # table = "ademe-base-empreinte", no vintage
    factor = choose_emission_factor(site, year=2026)
    assert factor.kg_co2e_per_kwh == 0.0461 and factor.basis == "location"
    assert factor.vintage == "2025" and factor.zone == "France continentale" and factor.name == "location"
    assert factor.source.startswith("ADEME Base Empreinte, Electricité - 2025 - mix moyen - consommation")
    assert choose_emission_factor(site, year=2023).kg_co2e_per_kwh == 0.0580
    assert choose_emission_factor(site).vintage == "2025"  # no year: the latest
    override = choose_emission_factor(site, override_kg_per_kwh=0.08, year=2026)
    assert override.kg_co2e_per_kwh == 0.08 and override.source == "given on the command line"
    with pytest.raises(ValueError, match="no market-based emission factor in the site file: add"):
        choose_emission_factor(site, basis="market")
    with pytest.raises(ValueError, match="no vintage for 2020 or before"):
        choose_emission_factor(site, year=2020)
    assert choose_emission_factor(None, year=2024) == default_emission_factor(2024)
    assert default_emission_factor(2024).kg_co2e_per_kwh == 0.0519
    market = parse_site('[site]\nname = "x"\n[emission_factors.contract]\nkg_co2e_per_kwh = 0.01\n'
                        'basis = "market"\nsource = "supplier disclosure 2025"\nvintage = "2025"\n'
                        'zone = "France continentale"\nevidence = "contract 14, guarantees of origin 2025"\n')
    chosen = choose_emission_factor(market, basis="market", year=2026)
    assert chosen.kg_co2e_per_kwh == 0.01 and chosen.evidence == "contract 14, guarantees of origin 2025"
    assert chosen.to_json() == {"name": "contract", "kg_co2e_per_kwh": 0.01, "basis": "market",
                                "source": "supplier disclosure 2025", "vintage": "2025",
                                "zone": "France continentale",
                                "evidence": "contract 14, guarantees of origin 2025"}
    # no location-based factor of its own: the table's, for the year
    assert choose_emission_factor(market, year=2026) == default_emission_factor(2026)
    pinned = parse_site('[site]\nname = "x"\n[emission_factors.location]\ntable = "ademe-base-empreinte"\n'
                        'vintage = "2022"\n')
    assert choose_emission_factor(pinned, year=2026).kg_co2e_per_kwh == 0.0520


def test_reporting_year_is_the_window_start_in_the_site_zone():
    # 2025-12-31T23:30Z is already 2026 in Paris
    assert reporting_year(PARIS, dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.timezone.utc).timestamp()) == 2026
    assert reporting_year(PARIS, local(2025, 12, 31, 23, 59)) == 2025


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
