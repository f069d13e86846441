"""The report's charts as inline SVG texts, drawn by matplotlib from a site's report model.

Four charts per analysed site: daily energy stacked by machine, the share of time in each state
per machine, energy per member, standby energy outside opening hours per machine. Each is a
``matplotlib.figure.Figure`` saved by the SVG backend (no pyplot, no global state: settings
go through ``rc_context``), so charts can be drawn in worker threads.

- Text stays text (``svg.fonttype = "none"``): names are searchable and selectable in the PDF
  Chromium prints, the SVG is several times smaller than with glyph paths, and the font is the
  one matplotlib laid out with (DejaVu Sans, which Debian's Chromium uses too). matplotlib
  escapes text in SVG (``&lt;``, ``&amp;``, quotes), so a name cannot become markup; a "$" is
  escaped here so that a name is never read as mathtext.
- Grey printing: every series has a fill whose lightness differs from its neighbours' and a
  hatch of its own, so stacked series stay apart without colour.
- Deterministic: the same model gives the same bytes (``svg.hashsalt`` set per chart, which also
  keeps clip-path and hatch ids unique between the charts of one HTML page; no date or creator
  in the metadata).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path
from matplotlib.ticker import FuncFormatter

from reports.i18n import Formatter
from reports.model import STATES, SiteReport


@dataclass(frozen=True)
class SeriesStyle:
    """How one series is filled: colour, hatch and the hatch's colour (dark on light fills)."""

    color: str
    hatch: str
    hatch_color: str


# Ordered so that neighbours differ in lightness (L* in CIELAB about 30, 75, 55, 90, 35, 80, 45,
# 65, 25, 85): stacked neighbours stay apart in grey even before the hatches.
_FILLS = (
    "#1f3b73",
    "#f2a93b",
    "#3f8f8a",
    "#f4e98c",
    "#7b2d26",
    "#a9cbe8",
    "#6b4c9a",
    "#b6c96b",
    "#2b2b2b",
    "#e6b8c9",
)
_HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--", "||", "**")
STATE_STYLES: dict[str, SeriesStyle] = {
    "processing": SeriesStyle("#1f3b73", "", "#ffffff"),
    "idle": SeriesStyle("#6f9fd8", "//", "#1a1a1a"),
    "standby": SeriesStyle("#f2a93b", "..", "#1a1a1a"),
    "off": SeriesStyle("#eeeeee", "", "#1a1a1a"),
    "setup": SeriesStyle("#3f8f8a", "xx", "#ffffff"),
    "fault": SeriesStyle("#7b2d26", "\\\\", "#ffffff"),
}
"""One style per machine state (reports.model.STATES)."""

_RC = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "hatch.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d0d0d0",
    "grid.linewidth": 0.5,
    "axes.axisbelow": True,
}
_WIDTH_IN = 7.2
"""Chart width [in]: the A4 text width at 15 mm margins."""


def series_style(index: int) -> SeriesStyle:
    """The style of the ``index``-th series: fills cycle, hatches shift after each cycle so that
    no two series of up to 100 share both fill and hatch."""
    color = _FILLS[index % len(_FILLS)]
    hatch = _HATCHES[(index + index // len(_FILLS)) % len(_HATCHES)]
    return SeriesStyle(color, hatch, "#ffffff" if _is_dark(color) else "#1a1a1a")


def _is_dark(color: str) -> bool:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue < 110


def plain_text(name: str) -> str:
    """A name as matplotlib must be given it to draw it literally (no mathtext)."""
    return name.replace("$", r"\$")


def machine_name(site: SiteReport, key: str) -> str:
    """A machine's label, or its key without one."""
    for machine in site.machines:
        if machine.machine == key:
            return machine.label or machine.machine
    return key


def _bars(ax, positions, sizes, starts, *, style: SeriesStyle, label: str, horizontal: bool,
          thickness: float = 0.78) -> None:
    """One series of bars in ``style`` as one compound path: bar ``i`` spans ``starts[i]`` to
    ``starts[i] + sizes[i]`` at ``positions[i]``. One path per series, not one per bar, because
    Chromium's PDF writes a pattern object for every hatched shape (31 days x 6 machines made a
    7 MB PDF; one path per series keeps it small)."""
    vertices: list[tuple[float, float]] = []
    codes: list[int] = []
    half = thickness / 2.0
    for position, size, start in zip(positions, sizes, starts):
        if not size:
            continue
        low, high = start, start + size
        if horizontal:
            corners = [(low, position - half), (high, position - half), (high, position + half), (low, position + half)]
        else:
            corners = [(position - half, low), (position + half, low), (position + half, high), (position - half, high)]
        vertices.extend(corners + [corners[0]])
        codes.extend([Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY])
    patch = PathPatch(
        Path(vertices or [(0.0, 0.0)], codes or None),
        facecolor=style.color,
        hatch=style.hatch or None,
        edgecolor="#ffffff",
        linewidth=0.4,
        label=plain_text(label),
    )
    patch.set_hatchcolor(style.hatch_color)
    if not vertices:
        patch.set_visible(False)
    ax.add_patch(patch)


def to_svg(figure: Figure, salt: str) -> str:
    """``figure`` as an SVG element to put inline in HTML: no XML prolog, no fixed size (it
    scales to its box through its viewBox), the same bytes for the same figure and salt."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none", "svg.id": salt}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', text, count=1)
    # matplotlib numbers its groups (figure_1, patch_3, text_12) alike in every figure: prefixed
    # with the salt, ids stay unique in a page of many charts (references use salted hashes).
    text = _GROUP_ID.sub(lambda match: f'id="{salt}-{match.group(1)}"', text)
    return text.strip() + "\n"


_GROUP_ID = re.compile(r'id="([A-Za-z][A-Za-z0-9.]*(?:_[A-Za-z0-9]+)*_[0-9]+)"')


def _figure(height_in: float) -> Figure:
    return Figure(figsize=(_WIDTH_IN, height_in), layout="constrained")


def _number_axis(axis, fmt: Formatter, places: int = 0) -> None:
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: fmt.number(value, places)))


def daily_energy(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """Energy per site-local day [kWh], stacked by machine (services included); None without days."""
    if not site.days:
        return None
    dates = sorted({day.date for day in site.days})
    index = {d: i for i, d in enumerate(dates)}
    keys = [m.machine for m in site.machines] or sorted({day.machine for day in site.days})
    for key in sorted({day.machine for day in site.days} - set(keys)):
        keys.append(key)
    with matplotlib.rc_context(_RC):
        figure = _figure(3.4)
        ax = figure.add_subplot()
        bottom = [0.0] * len(dates)
        for number, key in enumerate(keys):
            values = [0.0] * len(dates)
            for day in site.days:
                if day.machine == key:
                    values[index[day.date]] += day.energy_kwh
            _bars(ax, range(len(dates)), values, list(bottom), style=series_style(number),
                  label=machine_name(site, key), horizontal=False)
            bottom = [b + v for b, v in zip(bottom, values)]
        step = max(1, len(dates) // 16)
        ax.set_xticks(range(0, len(dates), step), [fmt.day(d) for d in dates[::step]], rotation=90)
        ax.set_xlim(-0.6, len(dates) - 0.4)
        ax.set_ylim(0, max(bottom + [1e-9]) * 1.05)
        ax.set_ylabel(fmt.t("axis_kwh"))
        _number_axis(ax.yaxis, fmt)
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)
    return to_svg(figure, salt)


def state_share(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """Share of the period's time [%] in each state, one horizontal stacked bar per machine."""
    machines = [m for m in site.machines if m.state_h]
    if not machines:
        return None
    with matplotlib.rc_context(_RC):
        figure = _figure(0.9 + 0.32 * len(machines))
        ax = figure.add_subplot()
        positions = list(range(len(machines)))[::-1]
        totals = [sum(m.state_h.values()) or 1.0 for m in machines]
        left = [0.0] * len(machines)
        for state in STATES:
            values = [100.0 * m.state_h.get(state, 0.0) / total for m, total in zip(machines, totals)]
            if not any(values):
                continue
            _bars(ax, positions, values, list(left), style=STATE_STYLES[state],
                  label=fmt.t("state_" + state), horizontal=True, thickness=0.62)
            left = [a + b for a, b in zip(left, values)]
        ax.set_yticks(positions, [plain_text(m.label or m.machine) for m in machines])
        ax.set_xlim(0, 100)
        ax.set_ylim(-0.6, len(machines) - 0.4)
        ax.set_xlabel(fmt.t("axis_share"))
        _number_axis(ax.xaxis, fmt)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=6, frameon=False, fontsize=7)
    return to_svg(figure, salt)


def _horizontal(names: Sequence[str], values: Sequence[float], errors: Sequence[float] | None,
                fmt: Formatter, salt: str) -> str:
    with matplotlib.rc_context(_RC):
        figure = _figure(0.7 + 0.28 * len(names))
        ax = figure.add_subplot()
        positions = list(range(len(names)))[::-1]
        _bars(ax, positions, values, [0.0] * len(values), style=SeriesStyle(_FILLS[0], "", "#ffffff"),
              label="", horizontal=True, thickness=0.62)
        if errors is not None:
            ax.errorbar(values, positions, xerr=errors, fmt="none", ecolor="#1a1a1a", elinewidth=0.8, capsize=2)
        ends = [v + e for v, e in zip(values, errors)] if errors is not None else list(values)
        for position, value, end in zip(positions, values, ends):
            ax.annotate(fmt.number(value, 1), (end, position),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set_yticks(positions, [plain_text(n) for n in names])
        ax.set_xlabel(fmt.t("axis_kwh"))
        ax.set_xlim(0, max(ends + [1e-9]) * 1.18)
        _number_axis(ax.xaxis, fmt)
        ax.grid(axis="y", visible=False)
    return to_svg(figure, salt)


def member_energy(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """Energy per member [kWh] with its uncertainty, largest first; None without members."""
    members = sorted(site.members, key=lambda m: (-m.energy_kwh, m.member))
    if not members:
        return None
    return _horizontal([m.name or m.member for m in members], [m.energy_kwh for m in members],
                       [m.energy_uncertainty_kwh for m in members], fmt, salt)


def standby_energy(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """Standby energy outside opening hours per machine [kWh]; None where no machine has one."""
    machines = [m for m in site.machines if m.standby_outside_opening_kwh is not None]
    if not machines:
        return None
    return _horizontal([m.label or m.machine for m in machines],
                       [m.standby_outside_opening_kwh or 0.0 for m in machines], None, fmt, salt)


CHARTS = (
    ("daily", "chart_daily", daily_energy),
    ("states", "chart_states", state_share),
    ("members", "chart_members", member_energy),
    ("standby", "chart_standby", standby_energy),
)
"""The charts of a site: id, title label, function."""


def site_charts(site: SiteReport, fmt: Formatter, site_index: int) -> dict[str, str]:
    """The SVG texts of an analysed site's charts by id ("daily", "states", "members",
    "standby"); a chart with nothing to show is left out."""
    charts: dict[str, str] = {}
    for chart_id, _title, draw in CHARTS:
        svg = draw(site, fmt, f"wattelier-s{site_index}-{chart_id}")
        if svg is not None:
            charts[chart_id] = svg
    return charts
