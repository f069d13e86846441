"""`wattelier check` and `wattelier collect --config` as real processes on broken site files:
exit 2, the file and key path named, no traceback, and collect writes no journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.site import example_site_path
from tests.cli_process import assert_clear_failure, run_wattelier
from tests.sitefiles import with_own_factor

EXAMPLE = example_site_path().read_text(encoding="utf-8")
SECRET = "hunter2-never-printed"


def _without(line: str) -> str:
    assert line + "\n" in EXAMPLE, line
    return EXAMPLE.replace(line + "\n", "", 1)


BROKEN = {
    # case: (site text, the problems named, one line each)
    "meter-without-model": (_without('model = "eastron-sdm630"'), "meters.router-1.model: missing"),
    "meter-without-feeds": (_without('feeds = "router-1"'), "meters.router-1.feeds: missing"),
    "controller-without-machine": (_without('machine = "router-1"'),
                                   "controllers.router-1-cnc.machine: missing"),
    "controller-without-endpoint": (_without('endpoint = "opc.tcp://127.0.0.1:14840/wattelier/router"'),
                                    "controllers.router-1-cnc.endpoint: missing"),
    "controller-without-node-map": (_without('node_map = "umati-machinetool"'),
                                    "controllers.router-1-cnc.node_map: missing"),
    "thresholds-without-kind": (EXAMPLE + "\n[machines.bandsaw.thresholds]\nstandby_w = 5.0\n"
                                "idle_w = 50.0\nprocessing_w = 500.0\n",
                                ("machines.bandsaw.kind: missing", "machines.bandsaw.rated_power_w: missing")),
    "long-time-zone": (EXAMPLE.replace('timezone = "Europe/Paris"', f'timezone = "{"Europe/" * 2000}"', 1),
                       "site.timezone: unknown time zone"),
    "byte-order-mark": ("\ufeff" + EXAMPLE, "starts with a UTF-8 byte order mark; save it as UTF-8 without BOM"),
    "credentials-in-influx-url": (EXAMPLE + f'\n[influxdb]\nurl = "http://wattelier:{SECRET}@127.0.0.1:8086"\n',
                                  "influxdb.url: credentials do not belong in the URL"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_and_collect_name_the_key_and_exit_2(case: str, tmp_path: Path):
    text, expected = BROKEN[case]
    expected = (expected,) if isinstance(expected, str) else expected
    site = tmp_path / "site.toml"
    site.write_text(text, encoding="utf-8")
    journal = tmp_path / "journal.sqlite"
    for args in (("check", str(site)), ("collect", "--config", str(site), "--journal", str(journal))):
        done = run_wattelier(*args, cwd=tmp_path)
        assert_clear_failure(done, *expected, exit_code=2, one_line=False)
        problems = [line for line in done.stderr.splitlines() if line.startswith(f"{site}: ")]
        assert len(problems) == len(expected), done.stderr
        for line, fragment in zip(problems, expected):
            assert fragment in line and len(line) < 400, line  # a huge value is not echoed whole
        assert SECRET not in done.output
    assert not journal.exists()


def test_an_opening_range_that_ends_before_it_starts_is_refused(tmp_path: Path):
    site = tmp_path / "site.toml"
    site.write_text(EXAMPLE.replace('monday = ["08:30-12:30", "13:30-19:00"]',
                                    'monday = ["12:30-08:30", "13:30-19:00", "18:00-20:00"]', 1),
                    encoding="utf-8")
    done = run_wattelier("check", str(site), cwd=tmp_path)
    assert_clear_failure(done, f"{site}: opening_hours.monday.0: '12:30-08:30' does not end after it starts",
                         "'22:00-24:00' on this day and '00:00-06:00' on the next",
                         f"{site}: opening_hours.monday.2: '18:00-20:00' overlaps '13:30-19:00'",
                         "2 problem(s)", exit_code=2, one_line=False)


def test_an_implausible_emission_factor_is_a_warning_and_check_passes(tmp_path: Path):
    site = tmp_path / "site.toml"
    site.write_text(with_own_factor(EXAMPLE, "52"), encoding="utf-8")
    done = run_wattelier("check", str(site), cwd=tmp_path)
    assert done.returncode == 0, done.output
    assert "Traceback" not in done.output
    assert "OK" in done.stdout and "(1 warning(s))" in done.stdout
    assert (f"warning: {site}: emission_factors.location.kg_co2e_per_kwh: 52 kg CO2e/kWh is implausible "
            "for electricity: plausible is 0 to 1.2") in done.stderr
    assert "write 0.052" in done.stderr


def test_a_secrets_file_others_can_read_is_refused_by_check_and_collect(tmp_path: Path):
    site = tmp_path / "site.toml"  # the example names secrets_file = "secrets.toml", beside it
    site.write_text(EXAMPLE, encoding="utf-8")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'influx_token = "{SECRET}"\n', encoding="utf-8")
    secrets.chmod(0o644)
    journal = tmp_path / "journal.sqlite"
    check = run_wattelier("check", str(site), cwd=tmp_path)
    assert_clear_failure(check, f"{secrets}: secrets file readable by others (mode -rw-r--r--)",
                         f"chmod 600 {secrets}", exit_code=2, one_line=False)
    collect = run_wattelier("collect", "--config", str(site), "--journal", str(journal), cwd=tmp_path)
    assert_clear_failure(collect, f"refusing to start: {secrets}: secrets file readable by others",
                         exit_code=2)
    assert SECRET not in check.output + collect.output
    assert not journal.exists()
    secrets.chmod(0o600)
    assert run_wattelier("check", str(site), cwd=tmp_path).returncode == 0


def test_credentials_in_the_influx_url_option_are_refused(tmp_path: Path):
    journal = tmp_path / "journal.sqlite"
    done = run_wattelier("collect", "--journal", str(journal), "--influx-url",
                         f"http://wattelier:{SECRET}@127.0.0.1:8086", cwd=tmp_path)
    assert_clear_failure(done, "refusing to start: --influx-url: credentials do not belong in the URL",
                         "token_env", "influx_token", exit_code=2)
    assert SECRET not in done.output
    assert not journal.exists()
