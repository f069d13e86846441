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

import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.markers import TICKDOWN, TICKLEFT
from matplotlib.patches import PathPatch
from matplotlib.path import Path
from matplotlib.textpath import text_to_path
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

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
    # add_artist, not add_patch: the limits are set by the caller, and add_patch's data limits
    # walk the path curve by curve in Python (10 % of a site's charts)
    ax.add_artist(patch)


def to_svg(figure: Figure, salt: str) -> str:
    """``figure`` as an SVG element to put inline in HTML: no XML prolog, no fixed size (it
    scales to its box through its viewBox), the same bytes for the same figure and salt.

    Drawn once: the figures are laid out beforehand (``_Layout``), so there is no layout engine
    and no ``bbox_inches="tight"``; each of those makes matplotlib draw the whole figure once
    more to measure it (measured on the sample site: 296 ms for the four charts with both,
    267 ms without "tight", 137 ms with neither)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none", "svg.id": salt}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', text, count=1)
    # matplotlib numbers its groups (figure_1, patch_3, text_12) alike in every figure: prefixed
    # with the salt, ids stay unique in a page of many charts (references use salted hashes).
    text = _GROUP_ID.sub(lambda match: f'id="{salt}-{match.group(1)}"', text)
    return text.strip() + "\n"


_GROUP_ID = re.compile(r'id="([A-Za-z][A-Za-z0-9.]*(?:_[A-Za-z0-9]+)*_[0-9]+)"')

# Sizes [pt] of matplotlib's defaults that the layout below must add up like matplotlib does.
_PAD = 3.0
"""Free border around a chart [pt] (constrained layout's default pad)."""
_TICK = 3.5 + 3.5
"""Tick length plus the gap between tick and label [pt] (xtick/ytick.major.size and pad)."""
_LABELPAD = 4.0
"""Gap between tick labels and the axis label [pt] (axes.labelpad)."""
_FONT_PT = 8.0
_LEGEND_PT = 7.0


def text_size(texts: Sequence[str], size: float = _FONT_PT) -> tuple[float, float]:
    """Largest width and height [pt] of ``texts`` as matplotlib lays them out in the SVG
    (the same FreeType measure its SVG backend uses; a line reaches at least as low as "lp", as
    in Text._get_layout). About 0.1 ms a text: the layout of a chart measures its texts once,
    where a layout engine measured every text of the figure in an extra draw."""
    width, height, low = _measure("lp", size)
    for text in texts:
        if text:
            w, h, d = _measure(text, size)
            width, height = max(width, w), max(height, h - d + max(d, low))
    return (width if any(texts) else 0.0), height


@functools.lru_cache(maxsize=4096)
def _measure(text: str, size: float) -> tuple[float, float, float]:
    """Width, height and descent [pt] of one text; kept, since a network report measures the
    same day and number labels for every site."""
    prop = FontProperties(family=_RC["font.family"], size=size)
    return text_to_path.get_text_width_height_descent(text, prop, ismath=False)


def _ticks(low: float, high: float, length_pt: float, per_label_pt: float) -> list[float]:
    """The ticks matplotlib's AutoLocator would put on an axis of ``length_pt`` from ``low`` to
    ``high`` (its 'auto' bin count: one bin per ``per_label_pt``, at most 9), fixed beforehand so
    that their labels can be measured for the layout."""
    bins = max(min(int(length_pt // per_label_pt), 9), 1)
    locator = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10])
    span = high - low
    return [v for v in locator.tick_values(low, high) if low - 1e-9 * span <= v <= high + 1e-9 * span]


@dataclass(frozen=True)
class _Legend:
    """A legend's columns and size [pt], computed as matplotlib packs it (Legend._init_legend_box:
    columns of handle + gap + text, rows of the tallest text, border pads) with its rc defaults."""

    ncols: int
    width: float
    height: float

    @classmethod
    def fit(cls, labels: Sequence[str], max_width: float, max_height: float, max_cols: int) -> _Legend:
        """The legend with the most columns (at most ``max_cols``) no wider than ``max_width``,
        then the fewest columns no taller than ``max_height``."""
        fs = _LEGEND_PT
        rc = matplotlib.rcParams
        _, row = text_size(labels, fs)
        row = max(row, rc["legend.handleheight"] * fs)
        entry = [rc["legend.handlelength"] * fs + rc["legend.handletextpad"] * fs + text_size([label], fs)[0]
                 for label in labels]
        border = 2 * rc["legend.borderpad"] * fs

        def size(ncols: int) -> tuple[float, float]:
            columns = [c for c in _split(entry, ncols) if c]
            rows = max(len(c) for c in columns)
            width = border + sum(max(c) for c in columns) + (len(columns) - 1) * rc["legend.columnspacing"] * fs
            return width, border + rows * row + (rows - 1) * rc["legend.labelspacing"] * fs

        ncols = max(1, min(max_cols, len(labels)))
        while ncols > 1 and size(ncols)[0] > max_width:
            ncols -= 1
        while size(ncols)[1] > max_height and ncols < len(labels):
            ncols += 1
        return cls(ncols, *size(ncols))


def _split(items: Sequence[float], parts: int) -> list[list[float]]:
    """``items`` in ``parts`` columns as numpy.array_split makes them (the first get one more)."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for part in range(parts):
        stop = start + size + (1 if part < extra else 0)
        out.append(list(items[start:stop]))
        start = stop
    return out


def _figure(height_in: float, left: float, right: float, bottom: float, top: float) -> tuple[Figure, Axes]:
    """A chart's figure, 72 dpi (points are pixels, as in the SVG backend), with one axes inside
    the given margins [pt]; no layout engine."""
    figure = Figure(figsize=(_WIDTH_IN, height_in), dpi=72)
    width, height = _WIDTH_IN * 72, height_in * 72
    ax = figure.add_axes((left / width, bottom / height, 1 - (left + right) / width, 1 - (bottom + top) / height))
    return figure, ax


def _axis_marks(ax: Axes, which: str, positions: Sequence[float], labels: Sequence[str], *,
                grid: bool, rotation: float = 0.0) -> None:
    """An axis's ticks as one line of tick marks, one text per label and one collection of grid
    lines, where matplotlib's ``Axis`` makes a ``Tick`` of three lines and two texts for each
    (about 1 ms a tick to make and draw, against 0.3 ms for a text: 31 labelled days took 30 ms of
    the daily chart's 61 ms). Looks as matplotlib's ticks do (rc sizes, label alignments)."""
    figure = ax.get_figure()
    if which == "x":
        ax.set_xticks([])
        base = ax.get_xaxis_transform()
        marks = Line2D(positions, [0.0] * len(positions), marker=TICKDOWN)
        shift = ScaledTranslation(0.0, -_TICK / 72, figure.dpi_scale_trans)
        align = dict(ha="center", va="top", rotation=rotation)
        segments = [((p, 0.0), (p, 1.0)) for p in positions]
    else:
        ax.set_yticks([])
        base = ax.get_yaxis_transform()
        marks = Line2D([0.0] * len(positions), positions, marker=TICKLEFT)
        shift = ScaledTranslation(-_TICK / 72, 0.0, figure.dpi_scale_trans)
        align = dict(ha="right", va="center_baseline", rotation=rotation)
        segments = [((0.0, p), (1.0, p)) for p in positions]
    marks.set(transform=base, linestyle="none", markersize=3.5, markeredgewidth=0.8, color="black",
              clip_on=False)
    ax.add_line(marks)
    for position, label in zip(positions, labels):
        x, y = (position, 0.0) if which == "x" else (0.0, position)
        ax.text(x, y, plain_text(label), transform=base + shift, clip_on=False, **align)
    if grid:
        ax.add_collection(LineCollection(segments, transform=base, colors=_RC["grid.color"],
                                         linewidths=_RC["grid.linewidth"], zorder=0.5), autolim=False)


def _axis_label(ax: Axes, which: str, text: str, distance: float) -> None:
    """The axis label ``distance`` [pt] away from the axes, as its ticks are not matplotlib's."""
    shift = ScaledTranslation(0.0, -distance / 72, ax.get_figure().dpi_scale_trans) if which == "x" else \
        ScaledTranslation(-distance / 72, 0.0, ax.get_figure().dpi_scale_trans)
    if which == "x":
        ax.set_xlabel(text)
        ax.xaxis.set_label_coords(0.5, 0.0, transform=ax.transAxes + shift)
    else:
        ax.set_ylabel(text)
        ax.yaxis.set_label_coords(0.0, 0.5, transform=ax.transAxes + shift)


def _x_axis_height(xlabel: str) -> float:
    """Room [pt] below the axes for horizontal tick labels and an axis label."""
    _, tick_h = text_size(["0123456789"])
    _, label_h = text_size([xlabel])
    return _TICK + tick_h + _LABELPAD + label_h + _PAD


def daily_energy_figure(site: SiteReport, fmt: Formatter) -> Figure | None:
    """Energy per site-local day [kWh], stacked by machine (services included); None without days."""
    if not site.days:
        return None
    dates = sorted({day.date for day in site.days})
    index = {d: i for i, d in enumerate(dates)}
    keys = [m.machine for m in site.machines] or sorted({day.machine for day in site.days})
    for key in sorted({day.machine for day in site.days} - set(keys)):
        keys.append(key)
    names = [machine_name(site, key) for key in keys]
    series = []
    for key in keys:
        values = [0.0] * len(dates)
        for day in site.days:
            if day.machine == key:
                values[index[day.date]] += day.energy_kwh
        series.append(values)
    totals = [sum(day) for day in zip(*series)]
    top_kwh = max(totals + [1e-9]) * 1.05
    step = max(1, len(dates) // 16)
    day_labels = [fmt.day(d) for d in dates[::step]]
    ylabel = fmt.t("axis_kwh")

    # one legend column beside the axes; a site with more machines than fit gets a taller chart
    legend = _Legend.fit(names, _WIDTH_IN * 72, float("inf"), 1)
    gap = matplotlib.rcParams["legend.borderaxespad"] * _LEGEND_PT
    _, tick_h = text_size(["0"])
    top = _PAD + tick_h / 2
    height_in = max(3.4, (top + gap + legend.height + _PAD) / 72)
    bottom = _PAD + text_size(day_labels)[0] + _TICK  # labels turned a quarter
    axes_h = height_in * 72 - top - bottom
    yticks = _ticks(0.0, top_kwh, axes_h, 2 * _FONT_PT)
    number_labels = [fmt.number(v, 0) for v in yticks]
    left = _PAD + text_size([ylabel])[1] + _LABELPAD + text_size(number_labels)[0] + _TICK
    with matplotlib.rc_context(_RC):
        figure, ax = _figure(height_in, left, gap + legend.width + _PAD, bottom, top)
        bottoms = [0.0] * len(dates)
        for number, (name, values) in enumerate(zip(names, series)):
            _bars(ax, range(len(dates)), values, list(bottoms), style=series_style(number),
                  label=name, horizontal=False)
            bottoms = [b + v for b, v in zip(bottoms, values)]
        ax.set_xlim(-0.6, len(dates) - 0.4)
        ax.set_ylim(0, top_kwh)
        _axis_marks(ax, "x", range(0, len(dates), step), day_labels, grid=False, rotation=90)
        _axis_marks(ax, "y", yticks, number_labels, grid=True)
        _axis_label(ax, "y", ylabel, _TICK + text_size(number_labels)[0] + _LABELPAD)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=_LEGEND_PT, ncols=legend.ncols)
    return figure


def state_share_figure(site: SiteReport, fmt: Formatter) -> Figure | None:
    """Share of the period's time [%] in each state, one horizontal stacked bar per machine."""
    machines = [m for m in site.machines if m.state_h]
    if not machines:
        return None
    totals = [sum(m.state_h.values()) or 1.0 for m in machines]
    shares = {state: [100.0 * m.state_h.get(state, 0.0) / total for m, total in zip(machines, totals)]
              for state in STATES}
    states = [state for state in STATES if any(shares[state])]
    labels = [fmt.t("state_" + state) for state in states]
    names = [m.label or m.machine for m in machines]
    xlabel = fmt.t("axis_share")

    height_in = 0.9 + 0.32 * len(machines)
    left = _PAD + text_size(names)[0] + _TICK
    xticks = _ticks(0.0, 100.0, _WIDTH_IN * 72 - left, 3 * _FONT_PT)
    right = _PAD + text_size([fmt.number(xticks[-1], 0)])[0] / 2
    centre = (left + _WIDTH_IN * 72 - right) / 2  # the legend is centred over the axes
    legend = _Legend.fit(labels, 2 * min(centre, _WIDTH_IN * 72 - centre) - 2 * _PAD, height_in * 72, 6)
    gap = matplotlib.rcParams["legend.borderaxespad"] * _LEGEND_PT
    with matplotlib.rc_context(_RC):
        figure, ax = _figure(height_in, left, right, _x_axis_height(xlabel), _PAD + legend.height + gap)
        positions = list(range(len(machines)))[::-1]
        starts = [0.0] * len(machines)
        for state, label in zip(states, labels):
            _bars(ax, positions, shares[state], list(starts), style=STATE_STYLES[state],
                  label=label, horizontal=True, thickness=0.62)
            starts = [a + b for a, b in zip(starts, shares[state])]
        ax.set_xlim(0, 100)
        ax.set_ylim(-0.6, len(machines) - 0.4)
        _axis_marks(ax, "y", positions, names, grid=False)
        _axis_marks(ax, "x", xticks, [fmt.number(v, 0) for v in xticks], grid=True)
        _axis_label(ax, "x", xlabel, _TICK + text_size(["0123456789"])[1] + _LABELPAD)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=legend.ncols, frameon=False,
                  fontsize=_LEGEND_PT)
    return figure


def _horizontal(names: Sequence[str], values: Sequence[float], errors: Sequence[float] | None,
                fmt: Formatter) -> Figure:
    """Bars of ``values`` [kWh] (with ``errors`` as error bars), each named and valued in text."""
    ends = [v + e for v, e in zip(values, errors)] if errors is not None else list(values)
    high = max(ends + [1e-9]) * 1.18  # room for the values written after the bars
    xlabel = fmt.t("axis_kwh")
    height_in = 0.7 + 0.28 * len(names)
    _, tick_h = text_size(["0"])
    left = _PAD + text_size(names)[0] + _TICK
    xticks = _ticks(0.0, high, _WIDTH_IN * 72 - left, 3 * _FONT_PT)
    right = _PAD + text_size([fmt.number(v, 0) for v in xticks])[0] / 2
    with matplotlib.rc_context(_RC):
        figure, ax = _figure(height_in, left, right, _x_axis_height(xlabel), _PAD + tick_h / 2)
        positions = list(range(len(names)))[::-1]
        _bars(ax, positions, values, [0.0] * len(values), style=SeriesStyle(_FILLS[0], "", "#ffffff"),
              label="", horizontal=True, thickness=0.62)
        if errors is not None:
            ax.errorbar(values, positions, xerr=errors, fmt="none", ecolor="#1a1a1a", elinewidth=0.8, capsize=2)
        for position, value, end in zip(positions, values, ends):
            ax.annotate(fmt.number(value, 1), (end, position),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set_xlim(0, high)
        _axis_marks(ax, "y", positions, names, grid=False)
        _axis_marks(ax, "x", xticks, [fmt.number(v, 0) for v in xticks], grid=True)
        _axis_label(ax, "x", xlabel, _TICK + text_size(["0123456789"])[1] + _LABELPAD)
    return figure


def member_energy_figure(site: SiteReport, fmt: Formatter) -> Figure | None:
    """Energy per member [kWh] with its uncertainty, largest first; None without members."""
    members = sorted(site.members, key=lambda m: (-m.energy_kwh, m.member))
    if not members:
        return None
    return _horizontal([m.name or m.member for m in members], [m.energy_kwh for m in members],
                       [m.energy_uncertainty_kwh for m in members], fmt)


def standby_energy_figure(site: SiteReport, fmt: Formatter) -> Figure | None:
    """Standby energy outside opening hours per machine [kWh]; None where no machine has one."""
    machines = [m for m in site.machines if m.standby_outside_opening_kwh is not None]
    if not machines:
        return None
    return _horizontal([m.label or m.machine for m in machines],
                       [m.standby_outside_opening_kwh or 0.0 for m in machines], None, fmt)


def _svg_of(figure: Figure | None, salt: str) -> str | None:
    return None if figure is None else to_svg(figure, salt)


def daily_energy(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """``daily_energy_figure`` as SVG."""
    return _svg_of(daily_energy_figure(site, fmt), salt)


def state_share(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """``state_share_figure`` as SVG."""
    return _svg_of(state_share_figure(site, fmt), salt)


def member_energy(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """``member_energy_figure`` as SVG."""
    return _svg_of(member_energy_figure(site, fmt), salt)


def standby_energy(site: SiteReport, fmt: Formatter, salt: str) -> str | None:
    """``standby_energy_figure`` as SVG."""
    return _svg_of(standby_energy_figure(site, fmt), salt)


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
