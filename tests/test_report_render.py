"""The report renderers: HTML, SVG charts, PDF and screenshots by the real headless Chromium,
text of the PDF read back by poppler's pdftotext.

One hostile French report (a member named like a script, a machine label full of quotes) is
rendered once per module and read by most tests; Chromium starts about five times in all.
Console errors are found by loading the page with ``--enable-logging=stderr``: Chromium logs
each console message as a ``:CONSOLE`` line (reports.render_pdf.console_messages).
"""

from __future__ import annotations

import html.parser
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy
import pytest
from matplotlib.backends.backend_svg import RendererSVG
from PIL import Image

from reports import charts
from reports.i18n import Formatter, decimals, plain_spaces
from reports.render_html import render_html, safe_name, statement_file_name, write_html, write_statements
from reports.render_pdf import (
    PdfRendererMissing,
    PdfRenderFailed,
    console_messages,
    find_browser,
    screenshot,
    write_pdf,
)
from tests.report_samples import (
    HOSTILE_MACHINE,
    HOSTILE_MEMBER,
    sample_network_report,
    sample_report,
)


class _Elements(html.parser.HTMLParser):
    """Start tags and text of an HTML page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser


def _pdftotext(pdf: Path) -> str:
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext is missing: apt-get install poppler-utils"
    done = subprocess.run([tool, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The hostile French sample rendered once: model, HTML path and text, PDF text."""
    folder = tmp_path_factory.mktemp("report")
    report = sample_report("fr", hostile=True)
    html_path = write_html(report, folder / "report.html")
    pdf_path = folder / "report.pdf"
    write_pdf(html_path, pdf_path)
    return dict(
        report=report,
        folder=folder,
        html_path=html_path,
        html=html_path.read_text(encoding="utf-8"),
        pdf_path=pdf_path,
        pdf_text=plain_spaces(_pdftotext(pdf_path)),
        f=Formatter("fr", "EUR", "Europe/Paris"),
    )


# --- formats -------------------------------------------------------------------------------------


def test_french_numbers_and_month():
    f = Formatter("fr", "EUR")
    assert f.kwh(1234.5) == "1\u202f234,5\u00a0kWh"  # CLDR's narrow no-break space groups
    assert f.kwh(1234.5, 12.34) == "1\u202f234,5\u00a0±\u00a012,3\u00a0kWh"
    assert f.percent(0.1234) == "12,3\u00a0%"
    assert f.money(1234.5) == "1\u202f234,50\u00a0€"
    assert f.change(0.064) == "+6,4\u00a0%" and f.change(-0.03) == "\u22123,0\u00a0%"
    assert f.month(sample_report().period) == "octobre 2026"
    assert plain_spaces(f.kwh(1234.5)) == "1 234,5 kWh"


def test_english_numbers_and_month():
    f = Formatter("en", "EUR")
    assert f.kwh(1234.5) == "1,234.5\u00a0kWh"
    assert f.percent(0.1234) == "12.3%"
    assert f.money(1234.5) == "€1,234.50"
    assert f.month(sample_report("en").period) == "October 2026"


def test_decimal_rule_and_unknown_figures():
    assert [decimals(v) for v in (1234.5, 100.0, 99.99, 1.0, 0.999, 0.0, -150.0)] == [1, 1, 2, 2, 3, 3, 1]
    f = Formatter("en", None)
    assert f.kwh(123.456) == "123.5\u00a0kWh"
    assert f.kwh(12.3456) == "12.35\u00a0kWh"
    assert f.kwh(0.12345) == "0.123\u00a0kWh"
    for text in (f.kwh(None), f.kg(None), f.hours(None), f.percent(None), f.change(None), f.money(12.0)):
        assert text == "—"


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="de"):
        Formatter("de")


# --- HTML ----------------------------------------------------------------------------------------


def test_html_holds_every_section_in_french(rendered):
    page, f, site = rendered["html"], rendered["f"], rendered["report"].sites[0]
    text = "".join(_parse(page).text)
    assert "octobre 2026" in text and "septembre 2026" in text
    totals = site.totals
    for expected in (
        f.kwh(totals.energy_kwh, totals.energy_uncertainty_kwh),
        f.kg(totals.co2e_kg, totals.co2e_uncertainty_kg),
        f.kg(totals.co2e_market_kg, totals.co2e_market_uncertainty_kg),
        f.money(totals.cost, totals.cost_uncertainty),
        f.hours(totals.processing_h),
        f.change(site.change.energy),
        f.kwh(site.balance[-1].main_kwh, site.balance[-1].main_uncertainty_kwh),
        f.percent(site.balance[-1].not_metered_share),
        "JCGM 100:2008",
        "ademe-mix-fr-2023",
        "calibrés sur la distribution de puissance",
        rendered["report"].manifest.results_sha256,
        "2 nov. 2026, 06:00:00 UTC",
    ):
        assert expected in text, expected
    for machine in site.machines:
        for expected in (
            f.kwh(machine.energy_kwh, machine.energy_uncertainty_kwh),
            f.percent(machine.availability),
            f.kwh(machine.standby_saving_per_year_kwh),
            f.percent(machine.coverage_missing),
        ):
            assert expected in text, (machine.machine, expected)
    for member in site.members:
        assert f.kwh(member.energy_kwh, member.energy_uncertainty_kwh) in text
    # the compressor is a service: no availability, shown as "—", never 0
    compressor = re.search(r"Compresseur d'air.*?</tr>", page.split("machines-use")[1], re.S).group(0)
    assert "—" in compressor and "0,0\u00a0%" not in compressor


def test_html_is_self_contained_without_script(rendered):
    page = rendered["html"]
    tags = _parse(page).tags
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert tags.count("svg") == 4
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "@import" not in page and "url(http" not in page
    assert "default-src 'none'" in page


def test_hostile_names_are_text(rendered):
    page = rendered["html"]
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&#34;b&#39;c&amp;d" in page  # table cells (Jinja)
    assert "a\"b'c&amp;d" in page  # chart labels (matplotlib's SVG text)
    text = "".join(_parse(page).text)
    assert HOSTILE_MEMBER in text and HOSTILE_MACHINE in text
    pdf_text = rendered["pdf_text"]
    assert HOSTILE_MEMBER in pdf_text and HOSTILE_MACHINE in pdf_text


def test_dollar_in_a_name_is_not_mathtext():
    report = sample_report("en")
    report.sites[0].members[0].name = "$x^2$ Ltd"
    svg = charts.member_energy(report.sites[0], Formatter("en"), "t")
    assert "$x^2$ Ltd" in svg


def test_same_model_same_bytes():
    first = render_html(sample_report("fr", hostile=True), statements=True)
    second = render_html(sample_report("fr", hostile=True), statements=True)
    assert first == second
    site, f = sample_report().sites[0], Formatter("fr", "EUR")
    one, two = charts.site_charts(site, f, 0), charts.site_charts(site, f, 0)
    assert sorted(one) == ["daily", "members", "standby", "states"]
    for chart_id, svg in one.items():
        assert svg == two[chart_id], chart_id
        assert "<dc:date>" not in svg and "Matplotlib v" not in svg


def test_chart_ids_are_unique_in_a_page(rendered):
    ids = re.findall(r'\sid="([^"]+)"', rendered["html"])
    assert len(ids) == len(set(ids))


def test_english_report(tmp_path):
    report = sample_report("en")
    page = render_html(report)
    text = "".join(_parse(page).text)
    f = Formatter("en", "EUR")
    assert "October 2026" in text and "Monthly impact report" in text
    assert f.kwh(report.sites[0].totals.energy_kwh, report.sites[0].totals.energy_uncertainty_kwh) in text
    assert re.search(r"(?<![\d,.])1,\d{3}\.\d\u00a0±", text)  # "1,045.1 ± …": a comma groups, a point decimals
    assert "octobre" not in text and "Énergie" not in text


def test_network_report_side_by_side_and_not_analysed():
    report = sample_network_report("en", unanalysed=True)
    page = render_html(report)
    f = Formatter("en", "EUR")
    network = page.split('id="network"')[1].split("</section>")[0]
    network_text = "".join(_parse(network).text)
    for site in report.sites[:2]:
        assert site.site in network_text
        assert f.kwh(site.totals.energy_kwh, site.totals.energy_uncertainty_kwh) in network_text
    assert f.kwh(report.network.energy_kwh, report.network.energy_uncertainty_kwh) in network_text
    assert "Not analysed" in network_text and "Network total" in network_text
    unanalysed = page.split('id="site-2"')[1].split("</section>")[0]
    text = "".join(_parse(unanalysed).text)
    assert "wattelier analyze --config manufacture-vaise.toml --from 2026-10-20 --to 2026-10-31" in text
    assert "Oct 20, 2026" in text and "Oct 31, 2026" in text
    assert "kWh" not in text and "<svg" not in unanalysed
    assert page.count("<svg") == 8  # two analysed sites, four charts each


# --- statements ----------------------------------------------------------------------------------


def test_statements_one_file_per_member(tmp_path):
    report = sample_report("fr", hostile=True)
    paths = write_statements(report, tmp_path / "statements")
    site = report.sites[0]
    assert [p.name for p in paths] == sorted(statement_file_name(m.member) for m in site.members)
    f = Formatter("fr", "EUR", "Europe/Paris")
    for member in site.members:
        page = (tmp_path / "statements" / statement_file_name(member.member)).read_text(encoding="utf-8")
        assert "<script" not in page.lower()
        text = "".join(_parse(page).text)
        assert member.name in text
        own = [s for s in site.sessions if s.member == member.member]
        assert own and all(f.kwh(s.energy_kwh, s.energy_uncertainty_kwh) in text for s in own)
        jobs = [j for j in site.jobs if j.member == member.member]
        assert all(f.kwh(j.energy_kwh, j.energy_uncertainty_kwh) in text for j in jobs)
        assert f.kwh(member.energy_kwh, member.energy_uncertainty_kwh) in text


def test_statement_names_are_safe_and_distinct():
    keys = ["m-0001", "../../etc/passwd", "Zoé Blanc", "zoe blanc", "<script>", "", "a/b", "a:b", "CON"]
    names = [safe_name(k) for k in keys]
    assert names[0] == "m-0001"
    assert len(set(names)) == len(keys)
    for name in names:
        assert re.fullmatch(r"[a-z0-9._-]+", name) and not name.startswith(".")


def test_statements_as_sections_of_the_report():
    page = render_html(sample_report("fr"), statements=True)
    assert page.count('class="statement"') == 8
    assert "Relevé de Léa Martin" in page


# --- Chromium ------------------------------------------------------------------------------------


def test_report_loads_without_console_messages(rendered):
    assert console_messages(rendered["html_path"]) == []


def test_console_check_catches_a_script_error(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><p>x</p><script>notDefinedAnywhere();</script>", encoding="utf-8")
    messages = console_messages(broken)
    assert any("Uncaught ReferenceError" in m and "notDefinedAnywhere" in m for m in messages), messages


def test_pdf_text_holds_the_figures_as_the_html_has_them(rendered):
    text, f, site = rendered["pdf_text"], rendered["f"], rendered["report"].sites[0]
    assert rendered["pdf_path"].read_bytes().startswith(b"%PDF-")
    totals = site.totals
    assert "octobre 2026" in text
    for expected in (
        f.kwh(totals.energy_kwh, totals.energy_uncertainty_kwh),
        f.kg(totals.co2e_kg, totals.co2e_uncertainty_kg),
        f.money(totals.cost, totals.cost_uncertainty),
        f.hours(totals.processing_h),
    ):
        assert plain_spaces(expected) in text, expected
    for machine in site.machines:
        expected = plain_spaces(f.kwh(machine.energy_kwh, machine.energy_uncertainty_kwh))
        assert expected in text, (machine.machine, expected)
        assert expected in plain_spaces(rendered["html"])
    assert re.search(r"\b1 \d{3},\d ± ", text)  # French grouping survives as a space


def test_screenshot_shows_the_charts(rendered):
    png = rendered["folder"] / "report.png"
    screenshot(rendered["html_path"], png, width=1000, height=5200)
    image = Image.open(png).convert("RGB")
    assert image.size == (1000, 5200)
    pixels = numpy.asarray(image, dtype=numpy.int16).reshape(-1, 3)
    colourful = pixels[pixels.max(axis=1) - pixels.min(axis=1) > 40]  # text and tables are grey
    assert len(colourful) > 20_000

    def near(color: str) -> int:
        wanted = numpy.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
        return int((numpy.abs(colourful - wanted).max(axis=1) <= 12).sum())

    for index in range(len(rendered["report"].sites[0].machines)):  # each machine's fill is drawn
        assert near(charts.series_style(index).color) > 50, index
    for state in ("processing", "standby"):
        assert near(charts.STATE_STYLES[state].color) > 200, state


def test_missing_browser_is_one_line(tmp_path, monkeypatch, rendered):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PdfRendererMissing) as caught:
        write_pdf(rendered["html_path"], tmp_path / "x.pdf")
    assert str(caught.value) == (
        "no PDF renderer: install chromium (Debian: apt-get install chromium); the other formats were written"
    )


def test_failed_render_is_reported(tmp_path, rendered):
    assert find_browser()
    with pytest.raises(PdfRenderFailed, match="no HTML file"):
        write_pdf(tmp_path / "absent.html", tmp_path / "absent.pdf")
    with pytest.raises(PdfRenderFailed, match="did not finish"):
        write_pdf(rendered["html_path"], tmp_path / "slow.pdf", timeout_s=0.01)
    fake = tmp_path / "bin"
    fake.mkdir()
    chromium = fake / "chromium"
    chromium.write_text("#!/bin/sh\necho 'cannot print' >&2\nexit 3\n")
    chromium.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(fake))
        with pytest.raises(PdfRenderFailed, match="status 3: cannot print"):
            write_pdf(rendered["html_path"], tmp_path / "x.pdf")
        chromium.write_text("#!/bin/sh\nexit 0\n")
        with pytest.raises(PdfRenderFailed, match="wrote no file"):
            write_pdf(rendered["html_path"], tmp_path / "x.pdf")


# --- charts' own layout ------------------------------------------------------------------------


def _long_names_site():
    """The sample site with 24 machines of long names: the daily legend needs columns."""
    report = sample_report("fr", hostile=True)
    site = report.sites[0]
    base = list(site.machines)
    for copy in range(1, 4):
        for machine in base:
            clone = type(machine)(**{**machine.__dict__, "machine": f"{machine.machine}-{copy}",
                                     "label": f"{machine.label or machine.machine} — atelier annexe n° {copy}"})
            site.machines.append(clone)
    site.days.extend(type(day)(**{**day.__dict__, "machine": f"{day.machine}-{copy}"})
                     for copy in range(1, 4) for day in list(site.days) if "-" not in day.machine[-2:])
    return site


@pytest.mark.parametrize("which", ["sample", "long names"])
def test_charts_fit_their_figure_without_a_layout_engine(which):
    """The charts are laid out from measured texts, not by a layout engine: nothing drawn may
    fall outside the figure (tick labels, axis labels, legends, values after the bars)."""
    site = sample_report("fr", hostile=True).sites[0] if which == "sample" else _long_names_site()
    f = Formatter("fr", "EUR", "Europe/Paris")
    for draw in (charts.daily_energy_figure, charts.state_share_figure, charts.member_energy_figure,
                 charts.standby_energy_figure):
        figure = draw(site, f)
        assert figure.get_layout_engine() is None, draw.__name__
        size = figure.bbox_inches
        drawn = figure.get_tightbbox(RendererSVG(size.width * 72, size.height * 72, io.StringIO()))
        tolerance = 0.5 / 72
        assert drawn.x0 >= -tolerance and drawn.y0 >= -tolerance, (draw.__name__, drawn)
        assert drawn.x1 <= size.x1 + tolerance and drawn.y1 <= size.y1 + tolerance, (draw.__name__, drawn)
