"""`wattelier report` as a real process (issue 16): bad input ends in one line and no traceback,
a missing PDF renderer costs only the PDF, --analyze stores what the window lacks first."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from devices.site import example_site_path, load_site
from tests.cli_process import assert_clear_failure, run_wattelier
from wattelier.history import backfill_history


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """One site-local day of simulated history (every meter every 10 s) in a journal, not
    analysed yet; the site file beside it."""
    tmp = tmp_path_factory.mktemp("report-cli")
    text = example_site_path().read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines():
        if line.startswith("poll_interval_s"):
            continue
        lines.append(line)
        if line.startswith("[meters."):
            lines.append("poll_interval_s = 10.0")
    site_file = tmp / "site.toml"
    site_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    site = load_site(site_file)
    start = dt.datetime(2026, 10, 14, tzinfo=site.tz).timestamp()
    journal = tmp / "journal.sqlite"
    backfill_history(site, start, start + 86400.0, journal, seed=3)
    return {"site": str(site_file), "journal": str(journal), "day": ["--from", "2026-10-14", "--to", "2026-10-15"]}


def test_an_unanalysed_day_is_refused_then_analysed_with_analyze(stored, tmp_path):
    journal = tmp_path / "journal.sqlite"  # a copy: the other tests analyse the module's journal
    shutil.copy(stored["journal"], journal)
    base = ["report", "--config", stored["site"], "--journal", str(journal), *stored["day"]]
    done = run_wattelier(*base, "--out", str(tmp_path / "before"))
    assert_clear_failure(done, "no stored results for 1 day(s) (2026-10-14)",
                         f"wattelier analyze --config {stored['site']} --journal {journal}",
                         exit_code=2)
    assert not (tmp_path / "before").exists()
    done = run_wattelier(*base, "--analyze", "--out", str(tmp_path / "after"), "--format", "json,csv")
    assert done.returncode == 0, done.output
    assert "analysing Manufacture du Canal over the report's window first" in done.stdout
    doc = json.loads((tmp_path / "after" / "report.json").read_text())
    assert doc["sites"][0]["analysed"] and doc["sites"][0]["totals"]["jobs"] > 0
    assert doc["language"] == "fr" and doc["period"]["month"] is None
    assert sorted(p.name for p in (tmp_path / "after").iterdir()) == [
        "days.csv", "jobs.csv", "machines.csv", "members.csv", "report.json", "sessions.csv"]


def test_without_chromium_every_other_format_is_written(stored, tmp_path):
    run_wattelier("analyze", "--config", stored["site"], "--journal", stored["journal"], *stored["day"])
    bare = tmp_path / "bin"  # a PATH with python only: no chromium
    bare.mkdir()
    os.symlink(sys.executable, bare / "python3")
    done = run_wattelier("report", "--config", stored["site"], "--journal", stored["journal"], *stored["day"],
                         "--out", str(tmp_path / "out"), "--lang", "en", env={"PATH": str(bare)})
    assert done.returncode == 0, done.output
    assert "Traceback" not in done.output
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no PDF renderer: install chromium" in warnings[0]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "report.pdf" not in written and {"report.html", "report.json", "machines.csv"} <= set(written)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["language"] == "en"


@pytest.mark.parametrize("args, expected", [
    (["--month", "2026-13"], "--month 2026-13: give a month as YYYY-MM"),
    (["--month", "2026-10", "--from", "2026-10-01"], "give --month, or --from and --to, not both"),
    (["--from", "2026-10-01"], "give both --from and --to"),
    (["--from", "2026-10-02", "--to", "2026-10-01"], "--to must be after --from"),
    (["--from", "yesterday", "--to", "2026-10-01"], "--from/--to:"),
    (["--month", "2026-10", "--format", "html,docx"], "--format html,docx: give one or more of json,csv,html,pdf"),
    (["--month", "2026-10", "--lang", "de"], "--lang de: give fr or en"),
])
def test_bad_options_end_in_one_line(stored, tmp_path, args, expected):
    done = run_wattelier("report", "--config", stored["site"], "--journal", stored["journal"], *args,
                         "--out", str(tmp_path / "out"))
    assert_clear_failure(done, expected, exit_code=2)
    assert not (tmp_path / "out").exists()


def test_stores_that_cannot_be_read_end_in_one_line(stored, tmp_path):
    done = run_wattelier("report", "--config", stored["site"], "--journal", str(tmp_path / "none.sqlite"),
                         "--month", "2026-10", "--out", str(tmp_path / "out"))
    assert_clear_failure(done, "none.sqlite", "no journal here", exit_code=2)
    from devices.sim.ports import free_port

    done = run_wattelier("report", "--config", stored["site"], "--influx-url", f"http://127.0.0.1:{free_port()}",
                         "--influx-api", "v1", "--influx-db", "nothing", "--month", "2026-10",
                         "--out", str(tmp_path / "out"))
    assert_clear_failure(done, "cannot read InfluxDB", exit_code=2)
    twice = run_wattelier("report", "--config", stored["site"], "--config", stored["site"], "--month", "2026-10",
                          "--influx-url", "http://127.0.0.1:9", "--out", str(tmp_path / "out"))
    assert_clear_failure(twice, "is given twice", exit_code=2)
    other = tmp_path / "other.toml"
    other.write_text(example_site_path().read_text(encoding="utf-8").replace(
        'name = "Manufacture du Canal"', 'name = "Atelier de Vaise"', 1), encoding="utf-8")
    several = run_wattelier("report", "--config", stored["site"], "--config", str(other),
                            "--journal", stored["journal"], "--month", "2026-10", "--out", str(tmp_path / "out"))
    assert_clear_failure(several, "central InfluxDB", exit_code=2)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    done = run_wattelier("report", "--config", stored["site"], "--journal", stored["journal"], *stored["day"],
                         "--out", str(a_file))
    assert_clear_failure(done, "is a file, not a folder", exit_code=2)


def test_the_example_journal_path_is_the_default_store(tmp_path):
    """Without --journal or --influx-url the site file's journal: here none exists yet."""
    site = tmp_path / "site.toml"
    shutil.copy(example_site_path(), site)
    done = run_wattelier("report", "--config", str(site), "--month", "2026-10", "--out", str(tmp_path / "out"),
                         cwd=tmp_path)
    assert_clear_failure(done, "no journal here", exit_code=2)
