"""The monthly report end to end (issue 16): `wattelier demo --history 30d` into the journal and
a real InfluxDB 1.6.7, then `wattelier report` from each store, as real processes; the HTML in
headless Chromium, the PDF read back by pdftotext.

The site is the example site with every meter read every 10 s instead of every 1 to 2 s, so
that a month of history (2 million readings) is written, analysed and forwarded in about a
minute; the report reads results only, which do not depend on the sampling rate's cost."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devices.site import example_site_path
from reports.i18n import Formatter, plain_spaces
from reports.render_pdf import console_messages, screenshot
from tests.cli_process import assert_clear_failure, run_wattelier

DOCS_PICTURE = Path(__file__).resolve().parents[1] / "docs" / "report-page.png"


def _site_text(poll_interval_s: float = 10.0, name: str | None = None) -> str:
    text = example_site_path().read_text(encoding="utf-8")
    text = re.sub(r"(?m)^poll_interval_s = .*\n", "", text)
    text = re.sub(r"(?m)^(\[meters\.[^\]]+\]\n)", rf"\1poll_interval_s = {poll_interval_s}\n", text)
    if name is not None:
        text = text.replace('name = "Manufacture du Canal"', f'name = "{name}"', 1)
    return text


@pytest.fixture(scope="module")
def month(tmp_path_factory, influx_server):
    """A demo with a month of backfilled history, into the journal and into InfluxDB; then
    the history's report written from each store."""
    tmp = tmp_path_factory.mktemp("report-demo")
    site_file = tmp / "canal.toml"
    site_file.write_text(_site_text(), encoding="utf-8")
    influx = ["--influx-url", influx_server.url, "--influx-api", "v1", "--influx-db", "report_demo"]
    demo = run_wattelier("demo", "--seconds", "25", "--history", "30d", "--out", str(tmp / "demo"),
                         "--config", str(site_file), *influx, timeout_s=900)
    assert demo.returncode == 0, demo.output[-3000:]
    summary = json.loads((tmp / "demo" / "summary.json").read_text())
    history = summary["history"]
    window = ["--from", history["start"], "--to", history["end"]]
    reports = {}
    for store, args in (("journal", ["--journal", str(tmp / "demo" / "journal.sqlite")]), ("influxdb", influx)):
        out = tmp / f"report-{store}"
        done = run_wattelier("report", "--config", str(site_file), *args, *window, "--out", str(out),
                             timeout_s=300)
        assert done.returncode == 0, done.output
        reports[store] = out
    return {"tmp": tmp, "site_file": site_file, "summary": summary, "reports": reports,
            "influx": influx, "window": window, "demo_output": demo.output}


def _without_run_times(doc: dict) -> dict:
    for key in ("queried_at", "generated_at", "store"):
        doc["manifest"].pop(key)
    return doc


def test_the_demo_report_is_the_same_from_the_journal_and_influxdb(month):
    history = month["summary"]["history"]
    assert history["jobs"] > 100 and history["sessions"] > 30  # a month of a busy workshop
    docs = {store: json.loads((out / "report.json").read_text()) for store, out in month["reports"].items()}
    (site,) = docs["journal"]["sites"]
    assert site["analysed"] and site["totals"]["jobs"] == history["jobs_found"]
    assert len({d["date"] for d in site["days"]}) >= 30
    assert docs["journal"]["manifest"]["store"].startswith("journal")
    assert docs["influxdb"]["manifest"]["store"].startswith("InfluxDB")
    assert _without_run_times(docs["influxdb"]) == _without_run_times(docs["journal"])
    # and the demo wrote the same report of its history into OUT/report
    demo_doc = json.loads((month["tmp"] / "demo" / "report" / "report.json").read_text())
    assert demo_doc["sites"] == docs["journal"]["sites"]
    assert "impact report (HTML, PDF, CSV, JSON)" in month["demo_output"]


def test_a_rerun_is_byte_identical_apart_from_the_run_times(month, tmp_path):
    again = tmp_path / "again"
    done = run_wattelier("report", "--config", str(month["site_file"]), *month["influx"], *month["window"],
                         "--out", str(again), "--format", "json,csv,html")
    assert done.returncode == 0, done.output
    first = month["reports"]["influxdb"]
    for name in ("machines.csv", "members.csv", "sessions.csv", "jobs.csv", "days.csv"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name
    times = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
    a, b = (json.loads((d / "report.json").read_text()) for d in (again, first))
    assert a["manifest"].pop("queried_at") and b["manifest"].pop("queried_at")
    assert a["manifest"].pop("generated_at") and b["manifest"].pop("generated_at")
    assert a == b
    html_a, html_b = ((d / "report.html").read_text() for d in (again, first))
    generated = re.compile(r"\d{1,2} \w+\.? \d{4}, \d{2}:\d{2}:\d{2} UTC|" + times.pattern)
    assert generated.sub("T", html_a) == generated.sub("T", html_b)


def test_the_report_renders_in_chromium_and_its_pdf_holds_the_json_figures(month, tmp_path):
    out = month["reports"]["journal"]
    doc = json.loads((out / "report.json").read_text())
    (site,) = doc["sites"]
    html = out / "report.html"
    assert console_messages(html) == []
    # the charts are drawn: a screenshot of the page has many coloured pixels
    from PIL import Image

    picture = tmp_path / "report.png"
    screenshot(html, picture, width=1100, height=1500)
    image = Image.open(picture).convert("RGB")
    coloured = sum(1 for r, g, b in image.getdata() if max(r, g, b) - min(r, g, b) > 40)
    assert coloured > 20_000, coloured
    if DOCS_PICTURE.parent.exists() and shutil.os.environ.get("WATTELIER_UPDATE_DOCS") == "1":
        shutil.copy(picture, DOCS_PICTURE)  # the README's picture: WATTELIER_UPDATE_DOCS=1 pytest ...
    text = plain_spaces(subprocess.run(["pdftotext", "-layout", str(out / "report.pdf"), "-"],
                                       capture_output=True, text=True, check=True).stdout)
    fmt = Formatter("fr", site["currency"], site["timezone"])
    totals = site["totals"]
    assert plain_spaces(fmt.kwh(totals["energy_kwh"], totals["energy_uncertainty_kwh"])) in text
    assert plain_spaces(fmt.kg(totals["co2e_kg"], totals["co2e_uncertainty_kg"])) in text
    with (out / "machines.csv").open(encoding="utf-8", newline="") as f:
        rows = {r["machine"]: r for r in csv.DictReader(f)}
    assert set(rows) == {m["machine"] for m in site["machines"]}
    for machine in site["machines"]:
        assert float(rows[machine["machine"]]["energy_kwh"]) == machine["energy_kwh"]
        assert plain_spaces(fmt.kwh(machine["energy_kwh"], machine["energy_uncertainty_kwh"])) in text
    assert sum(m["energy_kwh"] for m in site["machines"]) == pytest.approx(totals["energy_kwh"], rel=1e-12)


def test_a_network_with_a_site_not_analysed_says_so(month, tmp_path):
    other = tmp_path / "vaise.toml"
    other.write_text(_site_text(name="Atelier de Vaise"), encoding="utf-8")
    done = run_wattelier("report", "--config", str(month["site_file"]), "--config", str(other),
                         *month["influx"], *month["window"], "--out", str(tmp_path / "network"),
                         "--format", "json,html")
    assert done.returncode == 0, done.output
    assert "Atelier de Vaise: no stored results for" in done.stderr and "wattelier analyze" in done.stderr
    doc = json.loads((tmp_path / "network" / "report.json").read_text())
    canal, vaise = doc["sites"]
    assert canal["analysed"] and not vaise["analysed"] and vaise["totals"] is None
    assert len(vaise["missing_dates"]) >= 30
    assert doc["network"]["energy_kwh"] == pytest.approx(canal["totals"]["energy_kwh"])
    assert "Atelier de Vaise" in (tmp_path / "network" / "report.html").read_text()


def test_a_window_without_results_is_refused_with_the_command_to_run(month, tmp_path):
    done = run_wattelier("report", "--config", str(month["site_file"]), *month["influx"],
                         "--month", "2025-01", "--out", str(tmp_path / "none"))
    text = assert_clear_failure(done, "no stored results for 31 day(s)", "wattelier analyze", exit_code=2)
    assert "nothing written" in text and not (tmp_path / "none").exists()
