"""The site inventory: the example loads; `wattelier check` names every mistake precisely."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.secrets import SecretsError, read_secret, secrets_problem
from devices.site import (PACKED_BYTES_PER_POINT, ROW_BYTES_PER_POINT, JournalSettings, SiteError, example_site_path,
                          load_site, parse_site, site_warnings, url_credentials_problem)
from wattelier.cli import app
from tests.sitefiles import with_own_factor

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
    assert bad.exit_code == 2
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


# ---- issue 14: robust site files -------------------------------------------------------------

def _problems(text: str) -> list[str]:
    with pytest.raises(SiteError) as info:
        parse_site(text, "s.toml")
    return info.value.problems


def test_an_entry_missing_a_required_key_still_counts_for_the_other_checks():
    # The meter without model is still checked (its feeds names no machine), and the
    # controller without endpoint still names its machine: no AttributeError on either.
    text = (EXAMPLE.replace('model = "eastron-sdm630"\nfeeds = "router-1"', 'feeds = "router-9"', 1)
            .replace('endpoint = "opc.tcp://127.0.0.1:14840/wattelier/router"\n', "", 1)
            .replace('machine = "mill-1"', 'machine = "mill-9"', 1))
    assert _problems(text) == [
        "s.toml: meters.router-1.model: missing (this key is required)",
        "s.toml: controllers.router-1-cnc.endpoint: missing (this key is required)",
        "s.toml: meters.router-1.feeds: 'router-9' is not a machine, a service or 'site'",
        "s.toml: controllers.mill-1-cnc.machine: 'mill-9' is not a machine of this site",
    ]


def test_an_incomplete_thresholds_table_of_an_incomplete_machine():
    text = EXAMPLE + "\n[machines.saw.thresholds]\nstandby_w = 5.0\n[meters.saw]\nmodel = 'abb-b23'\nfeeds = 'saw'\nhost = 'h'\n"
    assert _problems(text) == [
        "s.toml: machines.saw.kind: missing (this key is required)",
        "s.toml: machines.saw.rated_power_w: missing (this key is required)",
        "s.toml: machines.saw.thresholds.idle_w: missing (this key is required)",
        "s.toml: machines.saw.thresholds.processing_w: missing (this key is required)",
    ]  # and the meter feeding it is not reported: the machine still counts


def test_a_time_zone_that_zoneinfo_cannot_open_is_a_problem(monkeypatch):
    import zoneinfo

    def name_too_long(key):
        raise OSError(36, "File name too long")

    monkeypatch.setattr(zoneinfo, "ZoneInfo", name_too_long)  # what a tzdata install raises
    problems = _problems(EXAMPLE.replace('timezone = "Europe/Paris"', 'timezone = "Europe/Lyon"', 1))
    assert problems == ["s.toml: site.timezone: unknown time zone 'Europe/Lyon' (use an IANA name "
                        "such as 'Europe/Paris')"]


@pytest.mark.parametrize("zone", ["x" * 65, "Europe/" * 300, "../etc/passwd", "/etc/localtime", "", "Europe/Paris/"])
def test_time_zone_names_of_the_wrong_shape(zone):
    problems = _problems(EXAMPLE.replace('timezone = "Europe/Paris"', f'timezone = "{zone}"', 1))
    assert len(problems) == 1 and problems[0].startswith("s.toml: site.timezone: unknown time zone")
    assert len(problems[0]) < 200


def test_a_byte_order_mark_is_named(tmp_path: Path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.encode("utf-8"))
    with pytest.raises(SiteError) as info:
        load_site(path)
    assert info.value.problems == [f"{path}: starts with a UTF-8 byte order mark; save it as UTF-8 without BOM"]


@pytest.mark.parametrize("ranges,expected", [
    ('["12:30-08:30"]', ["s.toml: opening_hours.monday.0: '12:30-08:30' does not end after it starts; a range "
                         "cannot cross midnight: split it, e.g. '22:00-24:00' on this day and '00:00-06:00' on the next"]),
    ('["08:30-08:30"]', ["s.toml: opening_hours.monday.0: '08:30-08:30' does not end after it starts; a range "
                         "cannot cross midnight: split it, e.g. '22:00-24:00' on this day and '00:00-06:00' on the next"]),
    ('["08:00-18:00", "09:00-10:00", "12:00-13:00"]',
     ["s.toml: opening_hours.monday.1: '09:00-10:00' overlaps '08:00-18:00'; the ranges of a day must not overlap (merge them)",
      "s.toml: opening_hours.monday.2: '12:00-13:00' overlaps '08:00-18:00'; the ranges of a day must not overlap (merge them)"]),
    ('["13:00-14:00", "08:00-12:00", "11:59-12:30"]',
     ["s.toml: opening_hours.monday.2: '11:59-12:30' overlaps '08:00-12:00'; the ranges of a day must not overlap (merge them)"]),
])
def test_impossible_opening_hours_are_refused(ranges, expected):
    text = EXAMPLE.replace('monday = ["08:30-12:30", "13:30-19:00"]', f"monday = {ranges}", 1)
    assert _problems(text) == expected


def test_opening_hours_that_touch_or_fill_the_day_are_valid():
    text = (EXAMPLE.replace('monday = ["08:30-12:30", "13:30-19:00"]', 'monday = ["08:00-12:00", "12:00-24:00"]', 1)
            .replace('saturday = ["10:00-17:00"]', 'saturday = ["00:00-24:00"]', 1))
    site = parse_site(text)
    assert site.opening_hours.ranges(0)[1] == (dt.time(12), None)


def test_warnings_name_the_implausible_and_the_plausible_range(example_site):
    assert site_warnings(example_site) == []
    text = (with_own_factor(EXAMPLE, "52")
            .replace("processing_w = 1800.0", "processing_w = 18000.0", 1))
    assert site_warnings(parse_site(text), "w.toml") == [
        "w.toml: emission_factors.location.kg_co2e_per_kwh: 52 kg CO2e/kWh is implausible for electricity: "
        "plausible is 0 to 1.2 (the most carbon-intensive grids emit about 1 kg/kWh, France about 0.05); "
        "if that is g CO2e/kWh, write 0.052",
        "w.toml: machines.router-1.thresholds.processing_w: 18000 W is above the rated power (9000 W): the "
        "machine would never be seen processing; plausible is below rated_power_w",
    ]
    coal = parse_site(with_own_factor(EXAMPLE, "1.1"))
    assert site_warnings(coal) == []


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_numbers_are_refused(value):
    text = with_own_factor(EXAMPLE.replace("rated_power_w = 9000.0", f"rated_power_w = {value}", 1), value)
    problems = _problems(text)
    assert any(p.startswith("s.toml: machines.router-1.rated_power_w: must be a finite number") for p in problems)
    assert any(p.startswith("s.toml: emission_factors.location.kg_co2e_per_kwh: must be a finite") for p in problems)


@pytest.mark.parametrize("url,expected", [
    ("http://bob:hunter2@influx:8086", "(user:password@host)"),
    ("bob:hunter2@influx:8086", "(user:password@host)"),
    ("http://influx:8086/?u=bob&p=hunter2", "(query parameter p, u)"),
    ("https://influx:8086/write?Token=hunter2", "(query parameter Token)"),
])
def test_credentials_in_a_url_are_refused_and_never_echoed(url, expected):
    problem = url_credentials_problem(url)
    assert problem is not None and expected in problem and "hunter2" not in problem
    assert "username" in problem and "token_env" in problem and "influx_token" in problem
    problems = _problems(EXAMPLE + f'\n[influxdb]\nurl = "{url}"\n')
    assert problems == [f"s.toml: influxdb.url: {problem}"]
    fab = _problems(EXAMPLE + f'\n[fabmanager]\nurl = "{url}"\n')
    assert len(fab) == 1 and "fabmanager_token" in fab[0] and "hunter2" not in fab[0]


def test_urls_without_credentials_pass():
    for url in ("http://127.0.0.1:8086", "https://influx.example.org/prefix", "http://[::1", "not a url"):
        assert url_credentials_problem(url) is None
    ctl = EXAMPLE.replace("opc.tcp://127.0.0.1:14840/", "opc.tcp://op:hunter2@127.0.0.1:14840/", 1)
    problems = _problems(ctl)
    assert len(problems) == 1 and problems[0].startswith("s.toml: controllers.router-1-cnc.endpoint: "
                                                         "credentials do not belong in the URL")
    assert "password_env" in problems[0] and "hunter2" not in problems[0]
    query = _problems(EXAMPLE + '\n[influxdb]\nurl = "http://influx:8086/?db=x"\n')
    assert query == ["s.toml: influxdb.url: must be the server's base address, without ?query or #fragment "
                     "(settings have their own keys: database, bucket, org, username)"]


def test_nesting_too_deep_is_a_problem_not_a_recursion_error():
    for text in ("a = " + "[" * 5000 + "]" * 5000, "machines." + ".".join(["a"] * 3000) + " = 1"):
        problems = _problems(text)
        assert len(problems) == 1 and "nested" in problems[0]


def test_the_journal_bound_fits_a_small_edge_box():
    default = JournalSettings().max_points
    assert default * PACKED_BYTES_PER_POINT <= 5e9  # at most about 3 GB packed
    assert 30 * 86400 * 16 <= default  # a month of 16 meters at 1 Hz
    assert 7 * 86400 * 8 * ROW_BYTES_PER_POINT <= 2.5e9  # a week's outage of the example site as rows
    assert "0.6 GB" in EXAMPLE and "2.1 GB" in EXAMPLE


# ---- the secrets file: one set of rules for check, collect and every reader -------------------

def _site_with_secrets(tmp_path: Path, content: str | bytes, mode: int = 0o600):
    site_file = tmp_path / "site.toml"
    site_file.write_text(EXAMPLE, encoding="utf-8")  # names secrets_file = "secrets.toml"
    secrets = tmp_path / "secrets.toml"
    if isinstance(content, bytes):
        secrets.write_bytes(content)
    else:
        secrets.write_text(content, encoding="utf-8")
    secrets.chmod(mode)
    return load_site(site_file), secrets


def test_a_secrets_file_others_can_read_is_refused_everywhere(tmp_path: Path, monkeypatch):
    site, secrets = _site_with_secrets(tmp_path, 'influx_token = "t0k"\n', 0o640)
    expected = f"{secrets}: secrets file readable by others (mode -rw-r-----); run `chmod 600 {secrets}`"
    assert secrets_problem(site) == expected
    with pytest.raises(SecretsError, match="readable by others"):
        read_secret(site, None, "influx_token")
    secrets.chmod(0o600)
    assert secrets_problem(site) is None
    assert read_secret(site, None, "influx_token") == "t0k"
    monkeypatch.setenv("MY_TOKEN", "from-env")
    assert read_secret(site, "MY_TOKEN", "influx_token") == "from-env"


@pytest.mark.parametrize("content,expected", [
    ("influx_token = 12\n", "influx_token must be a string (in quotes), got a int"),
    ("[controllers.mill-1-cnc]\npassword = true\n", "controllers.mill-1-cnc.password must be a string"),
    ("influx_token = \n", "secrets file is not valid TOML"),
    (b"\xef\xbb\xbfinflux_token = 'x'\n", "starts with a UTF-8 byte order mark"),
    (b"influx_token = '\xff'\n", "secrets file is not UTF-8 text"),
])
def test_a_secrets_file_that_cannot_be_used(tmp_path: Path, content, expected):
    site, secrets = _site_with_secrets(tmp_path, content)
    problem = secrets_problem(site)
    assert problem is not None and problem.startswith(f"{secrets}: ") and expected in problem
    key = "controllers.mill-1-cnc.password" if "controllers" in expected else "influx_token"
    with pytest.raises(SecretsError) as info:
        read_secret(site, None, key)
    assert str(info.value) == problem


def test_no_secrets_file_is_no_problem(example_site):
    assert secrets_problem(example_site) is None  # the example names one that does not exist


def test_problems_stay_one_short_line_whatever_the_file_holds():
    # Found by tests/test_site_fuzz.py: a huge value was echoed whole, a quoted key holding a
    # newline split a problem over two lines.
    huge = EXAMPLE.replace('saturday = ["10:00-17:00"]', f'saturday = ["{"é" * 5000}"]', 1)
    (problem,) = _problems(huge)
    assert problem.startswith("s.toml: opening_hours.saturday.0: must look like '08:30-12:30', got 'ééé")
    assert problem.endswith("... (5000 characters)") and len(problem) < 200
    odd_key = _problems(EXAMPLE + '\n[members."a\\nb"]\nname = "x"\n[members."' + "x" * 500 + '"]\nname = "y"\n')
    assert odd_key[0] == "s.toml: members.a\\nb: names use lower-case letters, digits, '-' and '_' (at most 63 characters)"
    assert "\n" not in odd_key[0] and len(odd_key[1]) < 250 and odd_key[1].startswith("s.toml: members.xxx")


def test_a_drain_longer_than_the_unit_allows_is_a_warning():
    from devices.site import site_warnings

    text = example_site_path().read_text() + '\n[influxdb]\nurl = "http://127.0.0.1:8086"\n'
    assert not [w for w in site_warnings(parse_site(text + "drain_timeout_s = 40\n")) if "drain" in w]
    [warning] = [w for w in site_warnings(parse_site(text + "drain_timeout_s = 41\n")) if "drain" in w]
    assert "influxdb.drain_timeout_s" in warning and "TimeoutStopSec" in warning


def test_an_invalid_value_is_named_once_not_again_as_missing():
    text = with_own_factor(EXAMPLE, '"a"')
    with pytest.raises(SiteError) as err:
        parse_site(text, "s.toml")
    named = [p for p in err.value.problems if p.startswith("s.toml: emission_factors.location.kg_co2e_per_kwh:")]
    assert len(named) == 1 and "valid number" in named[0], err.value.problems
