"""The site inventory: the example loads; `wattelier check` names every mistake precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.site import SiteError, example_site_path, load_site, parse_site
from wattelier.cli import app

EXAMPLE = example_site_path().read_text(encoding="utf-8")


def test_example_site_is_valid(example_site):
    assert example_site.site.timezone == "Europe/Paris"
    kinds = {m.kind for m in example_site.machines.values()}
    assert {"cnc_router", "cnc_mill", "laser_cutter", "printer_bench", "kiln", "embroidery"} <= kinds
    assert {c.node_map for c in example_site.controllers.values()} == {"umati-machinetool", "opc40502-cnc"}
    assert "site" in {m.feeds for m in example_site.meters.values()}
    assert "extraction" in example_site.services
    assert 8 <= len(example_site.members) <= 12


BROKEN = [
    # (replace this, with this, expected message fragment)
    ("port = 15020\nunit_id = 1", "port = 15020\nunit_id = 0",
     "meters.router-1.unit_id: must be 1..247, got 0"),
    ("rated_power_w = 15000.0", "rated_pwer_w = 15000.0",
     "machines.mill-1.rated_pwer_w: unknown key"),
    ("rated_power_w = 3500.0", "", "machines.laser-1.rated_power_w: missing"),
    ('timezone = "Europe/Paris"', 'timezone = "Europe/Pariss"', "site.timezone: unknown time zone 'Europe/Pariss'"),
    ('feeds = "kiln-1"', 'feeds = "kiln-2"', "meters.kiln-1.feeds: 'kiln-2' is not a machine, a service or 'site'"),
    ('model = "abb-b23"', 'model = "abb-b99"', "meters.embroidery-1.model: unknown meter model 'abb-b99'"),
    ('machine_browse_name = "Router1"', 'machine_browse_name = "Router1"\npassword = "hunter2"',
     "controllers.router-1-cnc.password: secrets never live in the site file"),
    ('saturday = ["10:00-17:00"]', 'saturday = ["10h-17h"]', "opening_hours.saturday.0: must look like '08:30-12:30'"),
    ('security_policy = "None"\nallow_insecure = true', 'security_policy = "None"',
     "controllers.router-1-cnc.security_policy: 'None' sends everything in clear"),
    ("thresholds = { standby_w = 40.0, idle_w = 350.0, processing_w = 1800.0 }",
     "thresholds = { standby_w = 400.0, idle_w = 350.0, processing_w = 1800.0 }",
     "machines.router-1.thresholds: must satisfy standby_w <= idle_w <= processing_w"),
    ("port = 15023", "port = 70000", "meters.embroidery-1.port: must be 1..65535, got 70000"),
    ('model = "schneider-iem3155"', 'model = "schneider-iem3155"\npoll_interval_s = "fast"',
     "meters.mill-1.poll_interval_s: Input should be a valid number"),
    ('port = 15022\nunit_id = 3', 'port = 15022\nunit_id = 2',
     "meters.kiln-1.unit_id: unit id 2 is already used by meter 'printers-1' on the same line"),
]


def _broken_text() -> str:
    text = EXAMPLE
    for old, new, _ in BROKEN:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_each_mistake_is_named_precisely():
    with pytest.raises(SiteError) as info:
        parse_site(_broken_text(), "broken.toml")
    problems = info.value.problems
    for _, _, expected in BROKEN:
        matching = [p for p in problems if expected in p]
        assert matching, f"no message contains {expected!r}; got:\n" + "\n".join(problems)
        assert all(p.startswith("broken.toml: ") for p in matching)


@pytest.mark.parametrize("old,new,expected", BROKEN, ids=[b[2].split(":")[0] for b in BROKEN])
def test_single_mistake(old, new, expected):
    with pytest.raises(SiteError) as info:
        parse_site(EXAMPLE.replace(old, new, 1), "one.toml")
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_toml_syntax_error_gives_line(tmp_path: Path):
    path = tmp_path / "site.toml"
    path.write_text('[site]\nname = "x"\n[machines.a\nkind="k"\n', encoding="utf-8")
    with pytest.raises(SiteError) as info:
        load_site(path)
    assert str(path) in info.value.problems[0] and "line 3" in info.value.problems[0]


def test_missing_file(tmp_path: Path):
    with pytest.raises(SiteError) as info:
        load_site(tmp_path / "nope.toml")
    assert "cannot read" in info.value.problems[0]


def test_cli_check_ok_and_broken(tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(example_site_path())])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output
    bad_path = tmp_path / "broken.toml"
    bad_path.write_text(_broken_text(), encoding="utf-8")
    bad = runner.invoke(app, ["check", str(bad_path)])
    assert bad.exit_code == 1
    for _, _, expected in BROKEN:
        assert expected in bad.output
    assert f"{len(BROKEN)} problem(s)" in bad.output or "problem(s)" in bad.output


def test_a_fab_manager_id_names_one_machine_and_one_member():
    text = (EXAMPLE.replace("rated_power_w = 15000.0", "rated_power_w = 15000.0\nfabmanager_id = 7", 1)
            .replace("rated_power_w = 3500.0", "rated_power_w = 3500.0\nfabmanager_id = 7", 1)
            .replace('name = "Amélie Durand (ébéniste)"', 'name = "Amélie Durand (ébéniste)"\nfabmanager_user_id = 42')
            .replace('name = "Chloé Martin (céramiste)"', 'name = "Chloé Martin (céramiste)"\nfabmanager_user_id = 42')
            .replace('name = "Bastien Leroy (menuisier)"', 'name = "Bastien Leroy (menuisier)"\nfabmanager_user_id = 43'))
    with pytest.raises(SiteError) as info:
        parse_site(text, "ids.toml")
    problems = [p for p in info.value.problems if "Fab-manager id" in p]
    assert problems == [
        "ids.toml: machines.laser-1.fabmanager_id: Fab-manager id 7 is already given to machines.mill-1: "
        "each id names one machine, or its bookings would count twice",
        "ids.toml: members.chloe.fabmanager_user_id: Fab-manager id 42 is already given to members.amelie: "
        "each id names one member, or its bookings would count twice",
    ], info.value.problems
    assert len(info.value.problems) == 2
