"""Emission factor tables as data, the vintage a reporting year gets, the site file's
[emission_factors] rules, and what an analysis says about its factor."""

from __future__ import annotations

import datetime as dt
import json
import os
import zoneinfo
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from analytics.carbon import choose_emission_factor
from analytics.pipeline import AnalysisOptions, analyze
from analytics.records import MachineData
from devices.emission_factors import (DATA_DIR, DEFAULT_TABLE, EmissionFactorError, available_tables,
                                      load_table, load_table_file)
from devices.site import SiteError, example_site_path, load_site, parse_site
from tests.cli_process import assert_clear_failure, run_wattelier

EXAMPLE = example_site_path().read_text(encoding="utf-8")
TABLE_LINES = 'table = "ademe-base-empreinte"\nzone = "France continentale"\n'
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
ADEME = load_table(DEFAULT_TABLE)


# ---------------------------------------------------------------------------------------------
# The tables


@pytest.mark.parametrize("name", available_tables())
def test_every_table_file_is_valid(name):
    table = load_table_file(DATA_DIR / f"{name}.toml")
    assert table.table == name and table.sources and all(s.strip() for s in table.sources)
    for zone in table.zones:
        vintages = [f.vintage for f in table.of_zone(zone.zone)]
        assert vintages and vintages == sorted(set(vintages)), vintages  # increasing, each once
        for tz in zone.timezones:
            zoneinfo.ZoneInfo(tz)
    for factor in table.factors:
        assert factor.item.strip() and factor.verification.strip()
        assert factor.verified != factor.verification.startswith("NOT VERIFIED"), factor


def test_the_ademe_table_holds_the_published_values():
    assert available_tables() == ["ademe-base-empreinte"]
    assert ADEME.basis == "location" and ADEME.default_zone == "France continentale"
    values = {f.vintage: f.kg_co2e_per_kwh for f in ADEME.of_zone("France continentale")}
    assert values == {2021: 0.0569, 2022: 0.0520, 2023: 0.0580, 2024: 0.0519, 2025: 0.0461}
    assert {f.vintage for f in ADEME.factors if not f.verified} == {2021, 2025}
    assert ADEME.vintage("France continentale", "2023").item == "Electricité - 2023 - mix moyen - consommation"


@pytest.mark.parametrize("year, vintage, value", [
    (2021, 2021, 0.0569), (2022, 2022, 0.0520), (2023, 2023, 0.0580), (2024, 2024, 0.0519),
    (2025, 2025, 0.0461), (2026, 2025, 0.0461), (2262, 2025, 0.0461), (None, 2025, 0.0461)])
def test_a_year_gets_the_latest_vintage_not_after_it(year, vintage, value):
    factor = ADEME.for_year("France continentale", year)
    assert (factor.vintage, factor.kg_co2e_per_kwh) == (vintage, value)


def test_a_year_before_the_first_vintage_is_refused():
    with pytest.raises(EmissionFactorError) as info:
        ADEME.for_year("France continentale", 2020)
    assert str(info.value).startswith("table 'ademe-base-empreinte' has no vintage for 2020 or before "
                                      "(its first is 2021, for France continentale): give the site's own factor")
    with pytest.raises(EmissionFactorError, match="has no vintage '2019'"):
        ADEME.vintage("France continentale", "2019")


GOOD = """table = "t"
publisher = "P"
title = "T, item"
basis = "location"
unit = "kg CO2e/kWh"
sources = ["P, T"]
[[zones]]
zone = "Z"
timezones = ["Europe/Paris"]
[[factors]]
zone = "Z"
vintage = 2021
kg_co2e_per_kwh = 0.05
item = "i"
verified = true
verification = "where"
[[factors]]
zone = "Z"
vintage = 2022
kg_co2e_per_kwh = 0.06
item = "i"
verified = true
verification = "where"
"""


@pytest.mark.parametrize("old, new, message", [
    ("vintage = 2022", "vintage = 2021", "factors.1: vintage 2021 of 'Z' must come after 2021"),
    ('sources = ["P, T"]', "sources = []", "sources: List should have at least 1 item"),
    ('sources = ["P, T"]', 'sources = ["  "]', "sources.0: must not be empty or blank"),
    ('verification = "where"', 'verification = ""', "factors.0.verification: must not be empty"),
    ("kg_co2e_per_kwh = 0.06", "kg_co2e_per_kwh = 60.0", "factors.1.kg_co2e_per_kwh: must be 0 to 1.2"),
    ('zone = "Z"\nvintage = 2022', 'zone = "Y"\nvintage = 2022', "factors.1: zone 'Y' is not in zones (Z)"),
    ('basis = "location"', 'basis = "market"', "basis: Input should be 'location'"),
    ('table = "t"', 'table = "other"', "table = 'other' must equal the file name"),
])
def test_the_loader_refuses_a_broken_table(tmp_path: Path, old, new, message):
    assert old in GOOD
    path = tmp_path / "t.toml"
    path.write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(EmissionFactorError, match="^" + str(path).replace(".", r"\.")) as info:
        load_table_file(path)
    assert message in str(info.value)
    path.write_text(GOOD, encoding="utf-8")
    assert [f.vintage for f in load_table_file(path).factors] == [2021, 2022]


# ---------------------------------------------------------------------------------------------
# The site file's [emission_factors]


def _with_factor(lines: str, timezone: str = "Europe/Paris") -> str:
    assert TABLE_LINES in EXAMPLE
    return (EXAMPLE.replace(TABLE_LINES, lines, 1)
            .replace('timezone = "Europe/Paris"', f'timezone = "{timezone}"', 1))


def _problems(text: str) -> list[str]:
    with pytest.raises(SiteError) as info:
        parse_site(text, "s.toml")
    return info.value.problems


OWN = 'kg_co2e_per_kwh = 0.05\nsource = "ADEME Base Empreinte, item"\nvintage = "2025"\nzone = "France continentale"\n'


def test_the_example_site_uses_the_table():
    site = load_site(example_site_path())
    (name, factor), = site.emission_factors.items()
    assert name == "location" and factor.table == "ademe-base-empreinte" and factor.vintage is None
    assert factor.kg_co2e_per_kwh is None and factor.source is None
    assert "0.052" not in EXAMPLE.split("[emission_factors.location]")[1].split("\n[journal]")[0].replace(
        "# kg_co2e_per_kwh = 0.012", "")


@pytest.mark.parametrize("lines, expected", [
    (OWN.replace('"ADEME Base Empreinte, item"', '""'),
     "s.toml: emission_factors.location.source: must not be empty or blank: say who publishes the factor and "
     "which item"),
    (OWN.replace('"ADEME Base Empreinte, item"', '"  \\t"'),
     "s.toml: emission_factors.location.source: must not be empty or blank"),
    (OWN.replace('source = "ADEME Base Empreinte, item"\n', ""),
     "s.toml: emission_factors.location.source: missing: without table, give the site's own factor: "
     "kg_co2e_per_kwh, source, vintage and zone"),
    (OWN.replace('zone = "France continentale"\n', ""), "s.toml: emission_factors.location.zone: missing"),
    (OWN.replace("0.05", "nan"), "s.toml: emission_factors.location.kg_co2e_per_kwh: must be a finite number, "
     "0 or more, got nan"),
    (OWN.replace("0.05", "-0.05"), "s.toml: emission_factors.location.kg_co2e_per_kwh: must be a finite number"),
    (OWN + 'basis = "market"\n', "s.toml: emission_factors.location.evidence: missing: a market-based "
     "factor needs its evidence, the supplier contract, guarantees of origin or supplier disclosure"),
    (OWN + 'evidence = "contract 14"\n', "s.toml: emission_factors.location.evidence: evidence is for a "
     "supplier's (market-based) factor: set basis = \"market\", or remove evidence"),
    (OWN + 'basis = "marketplace"\n', "s.toml: emission_factors.location.basis: must be 'location'"),
    (TABLE_LINES + "kg_co2e_per_kwh = 0.05\n", "s.toml: emission_factors.location.kg_co2e_per_kwh: table "
     "'ademe-base-empreinte' gives the value and its source: remove kg_co2e_per_kwh"),
    (TABLE_LINES + 'basis = "market"\n', "s.toml: emission_factors.location.basis: table "
     "'ademe-base-empreinte' is location-based"),
    (TABLE_LINES + 'vintage = "2019"\n', "s.toml: emission_factors.location.vintage: table "
     "'ademe-base-empreinte' has no vintage '2019' for France continentale (it has: 2021, 2022, 2023, 2024, 2025)"),
    ('table = "ademe"\n', "s.toml: emission_factors.location.table: unknown emission factor table 'ademe'; "
     "known: ademe-base-empreinte"),
    ('table = "ademe-base-empreinte"\nzone = "Corse"\n', "s.toml: emission_factors.location.zone: table "
     "'ademe-base-empreinte' has no factor for zone 'Corse' (it has: France continentale); without table, "
     "give the site's own factor"),
])
def test_check_names_what_is_wrong_with_a_factor(lines, expected):
    problems = _problems(_with_factor(lines))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_site_outside_continental_france_must_give_its_own_factor():
    problems = _problems(_with_factor(TABLE_LINES, "Indian/Reunion"))
    assert problems == ["s.toml: emission_factors.location.zone: the site's time zone 'Indian/Reunion' is not in "
                        "France continentale (time zone Europe/Paris), where table 'ademe-base-empreinte' applies; "
                        "without table, give the site's own factor: kg_co2e_per_kwh, source, vintage and zone "
                        "(e.g. zone = \"Corse\" with ADEME's factor for Corsica)"]
    no_factor = EXAMPLE.split("[emission_factors.location]")[0].replace(
        'timezone = "Europe/Paris"', 'timezone = "America/Martinique"', 1)
    assert _problems(no_factor) == [
        "s.toml: emission_factors: the site's time zone 'America/Martinique' is outside France continentale, "
        "where the default factors (ADEME Base Empreinte) apply: add [emission_factors.location] with the "
        "factor of the site's grid (kg_co2e_per_kwh, source, vintage, zone)"]
    own = parse_site(_with_factor(OWN.replace("France continentale", "La Réunion"), "Indian/Reunion"))
    assert own.emission_factors["location"].zone == "La Réunion"


def test_a_market_factor_with_evidence_is_accepted_beside_the_table():
    text = EXAMPLE + ('\n[emission_factors.supplier]\nbasis = "market"\nkg_co2e_per_kwh = 0.012\n'
                      'source = "Supplier X, 2025 fuel mix disclosure"\nvintage = "2025"\n'
                      'zone = "France continentale"\nevidence = "contract 2025-014; guarantees of origin"\n')
    site = parse_site(text)
    assert site.emission_factors["supplier"].evidence == "contract 2025-014; guarantees of origin"
    assert site.emission_factors["location"].table == "ademe-base-empreinte"


# ---------------------------------------------------------------------------------------------
# What an analysis says about its factor


def _laser(start_s: float, hours: float = 2.0) -> MachineData:
    t = np.arange(start_s, start_s + hours * 3600 + 1, 60.0)
    return MachineData("laser-1", t, np.full(len(t), 1000.0), rated_power_w=3500.0)


def _local(*args) -> float:
    return dt.datetime(*args, tzinfo=PARIS).timestamp()


def test_the_json_names_factor_vintage_zone_basis_and_source():
    site = load_site(example_site_path())
    start = _local(2026, 3, 10, 9)
    doc = analyze([_laser(start)], [], site, start, start + 7200, AnalysisOptions()).to_json()
    assert doc["emission_factor"] == {
        "name": "location", "kg_co2e_per_kwh": 0.0461, "basis": "location", "vintage": "2025",
        "zone": "France continentale", "evidence": None,
        "source": "ADEME Base Empreinte, Electricité - 2025 - mix moyen - consommation, France continentale; "
                  "value not verified against the publisher's data"}
    (laser,) = [m for m in doc["machines"] if m["machine"] == "laser-1"]
    assert laser["co2e_kg"] == pytest.approx(2.0 * 0.0461)
    old = analyze([_laser(_local(2023, 3, 10, 9))], [], site, _local(2023, 3, 10, 9), _local(2023, 3, 10, 11),
                  AnalysisOptions()).to_json()
    assert old["emission_factor"]["vintage"] == "2023" and old["emission_factor"]["kg_co2e_per_kwh"] == 0.0580
    assert "verified" not in old["emission_factor"]["source"]


def test_a_window_across_new_year_takes_the_start_year_and_says_so():
    site = load_site(example_site_path())
    start, end = _local(2024, 12, 31, 22), _local(2025, 1, 1, 2)
    result = analyze([_laser(start, 4.0)], [], site, start, end, AnalysisOptions())
    assert result.emission_factor.vintage == "2024"
    assert ["the window spans 2024 to 2025: CO2e uses the factor for 2024 (0.0519 kg CO2e/kWh, vintage 2024) "
            "throughout, 2025 has 0.0461 (vintage 2025); analyse each year on its own for each year's factor"] == [
        w for w in result.warnings if "window spans" in w]
    # a window ending exactly at midnight of New Year lies in one year: no warning
    inside = analyze([_laser(start, 2.0)], [], site, start, _local(2025, 1, 1), AnalysisOptions())
    assert not [w for w in inside.warnings if "window spans" in w]


def test_a_window_before_the_first_vintage_is_refused():
    start = _local(2020, 6, 1, 9)
    with pytest.raises(ValueError, match="no vintage for 2020 or before"):
        analyze([_laser(start)], [], None, start, start + 3600, AnalysisOptions())
    given = analyze([_laser(start)], [], None, start, start + 3600,
                    AnalysisOptions(emission_factor_kg_per_kwh=0.06))
    assert given.emission_factor.kg_co2e_per_kwh == 0.06


# ---------------------------------------------------------------------------------------------
# As real processes


@pytest.mark.parametrize("lines, expected", [
    (OWN.replace('"ADEME Base Empreinte, item"', '"   "'), "emission_factors.location.source: must not be empty"),
    (OWN + 'basis = "market"\n', "emission_factors.location.evidence: missing: a market-based factor needs"),
])
def test_check_refuses_a_blank_source_and_a_market_factor_without_evidence(tmp_path: Path, lines, expected):
    site = tmp_path / "site.toml"
    site.write_text(_with_factor(lines), encoding="utf-8")
    done = run_wattelier("check", str(site), cwd=tmp_path)
    assert_clear_failure(done, f"{site}: {expected}", "1 problem(s)", exit_code=2, one_line=False)


def test_analyze_json_names_the_factor(tmp_path: Path):
    power = tmp_path / "power.csv"
    start = int(_local(2026, 3, 10, 9))
    power.write_text("time,machine,power_w\n" + "".join(f"{start + 60 * k},laser-1,1000\n" for k in range(61)),
                     encoding="utf-8")
    done = run_wattelier("analyze", "--power", str(power), "--config", str(example_site_path()), "--json",
                         cwd=tmp_path)
    assert done.returncode == 0, done.output
    factor = json.loads(done.stdout)["emission_factor"]
    assert (factor["name"], factor["vintage"], factor["zone"], factor["basis"]) == (
        "location", "2025", "France continentale", "location")
    assert factor["source"].startswith("ADEME Base Empreinte, Electricité - 2025 - mix moyen - consommation")


# ---------------------------------------------------------------------------------------------
# Fuzz: any [emission_factors] entry gives a usable site or one-line problems, and a usable
# site's factor is found for any year from the table's first vintage on

FACTOR_VALUES = {
    "table": st.sampled_from(["ademe-base-empreinte", "ademe", "", " ", "ademe-base-empreinte\n"]),
    "kg_co2e_per_kwh": st.sampled_from([0.0, 0.05, 52.0, -1.0, float("nan")]) | st.floats(allow_nan=False),
    "basis": st.sampled_from(["location", "market", "Market", ""]),
    "source": st.sampled_from(["ADEME Base Empreinte, item", "", "   ", "\t", "x" * 300]),
    "vintage": st.sampled_from(["2021", "2022", "2025", "2019", "", "2024 ", "deux mille"]),
    "zone": st.sampled_from(["France continentale", "Corse", "", "La Réunion"]),
    "evidence": st.sampled_from(["contract 14, guarantees of origin", "", "  "]),
}
FUZZ_EXAMPLES = int(os.environ.get("WATTELIER_FUZZ_EXAMPLES", 200))


FACTOR_TEMPLATES = [  # valid entries, which the draws then spoil a little or not at all
    {"table": "ademe-base-empreinte"},
    {"table": "ademe-base-empreinte", "vintage": "2023", "zone": "France continentale"},
    {"kg_co2e_per_kwh": 0.05, "source": "ADEME Base Empreinte, item", "vintage": "2025", "zone": "Corse"},
    {"basis": "market", "kg_co2e_per_kwh": 0.012, "source": "supplier disclosure", "vintage": "2025",
     "zone": "France continentale", "evidence": "contract 14, guarantees of origin"},
]


@st.composite
def factor_sections(draw) -> str:
    lines = []
    for name in draw(st.lists(st.sampled_from(["location", "supplier", "b"]), max_size=3, unique=True)):
        entry = dict(draw(st.sampled_from(FACTOR_TEMPLATES)))
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            key = draw(st.sampled_from(sorted(FACTOR_VALUES)))
            if draw(st.booleans()) and key in entry:
                del entry[key]
            else:
                entry[key] = draw(FACTOR_VALUES[key])
        lines.append(f"[emission_factors.{name}]")
        lines += [f"{key} = {json.dumps(value) if isinstance(value, str) else _toml_float(value)}"
                  for key, value in entry.items()]
    return "\n".join(lines) + "\n"


def _toml_float(value: float) -> str:
    return "nan" if value != value else ("inf" if value == float("inf") else "-inf" if value == -float("inf")
                                         else repr(value))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(factor_sections(), st.sampled_from(["Europe/Paris", "Europe/Paris", "Indian/Reunion", "UTC"]),
       st.integers(1970, 2262), st.sampled_from(["location", "market"]))
def test_any_factor_section_gives_a_site_or_one_line_problems(sections, timezone, year, basis):
    text = f'[site]\nname = "w"\ntimezone = "{timezone}"\n' + sections
    try:
        site = parse_site(text, "f.toml")
    except SiteError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.startswith("f.toml: ") and "\n" not in problem and len(problem) < 600, problem
        event("SiteError")
        return
    try:
        factor = choose_emission_factor(site, basis, year=year)
    except ValueError as exc:  # no factor of that basis, or a year before the table's first vintage
        assert (basis == "market" and "no market-based" in str(exc)) or (year < 2021 and "no vintage" in str(exc)), exc
        event(f"refused: {'market' if 'market' in str(exc) else 'year'}")
        return
    event(f"factor: {basis}, {'table' if 'Base Empreinte, Electricité' in factor.source else 'own'}")
    if factor.name == "default":
        assert (factor.vintage, factor.zone) == (str(min(max(year, 2021), 2025)), "France continentale")
    assert factor.basis == basis and factor.source.strip() and factor.vintage.strip() and factor.zone.strip()
    assert 0 <= factor.kg_co2e_per_kwh < float("inf")
    assert (factor.evidence is not None) == (basis == "market")


def test_analyze_refuses_a_window_before_the_first_vintage(tmp_path: Path):
    power = tmp_path / "power.csv"
    power.write_text("time,machine,power_w\n2020-06-01T09:00:00Z,laser-1,100\n2020-06-01T10:00:00Z,laser-1,100\n",
                     encoding="utf-8")
    done = run_wattelier("analyze", "--power", str(power), cwd=tmp_path)
    assert_clear_failure(done, "cannot analyse: table 'ademe-base-empreinte' has no vintage for 2020 or before",
                         "or --emission-factor", exit_code=2)


def test_an_unknown_table_with_a_huge_name_is_named_in_one_short_line():
    """Found by tests/test_site_fuzz.py: a table name of 1 000 characters made a 1 099-character
    problem line."""
    (problem,) = _problems(_with_factor('table = "' + "é" * 1000 + '"\n'))
    assert "unknown emission factor table" in problem and "(1000 characters)" in problem
    assert len(problem) < 200 and "\n" not in problem


@pytest.mark.parametrize("key, words", [("zone", "has no factor for zone"), ("vintage", "has no vintage")])
def test_an_unknown_zone_or_vintage_with_a_huge_name_is_named_in_one_short_line(key, words):
    """Found by tests/test_site_fuzz.py: a zone name of 1 000 characters made a 1 267-character
    problem line (the table's zones and the way out are still said)."""
    (problem,) = _problems(_with_factor(f'table = "ademe-base-empreinte"\n{key} = "' + "é" * 1000 + '"\n'))
    assert words in problem and "(1000 characters)" in problem
    assert len(problem) <= 400 and "\n" not in problem
