"""The report's tables as CSV files, for spreadsheets and scripts: machines.csv, members.csv,
sessions.csv, jobs.csv and days.csv, one row per row of the model (reports.model), every site's
rows in one file with a ``site`` column first.

Machine-readable, not localised: UTF-8, commas, numbers as Python writes them (a dot decimal,
full precision: the same numbers as report.json), booleans as true/false, an empty cell where
the model has None. Header names are the model's field names, which carry their units
(``energy_kwh``, ``processing_h``); a machine's hours per state become ``state_<state>_h`` and
its thresholds ``threshold_standby_w``, ``threshold_idle_w``, ``threshold_processing_w``.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

from reports.model import (STATES, DayRow, JobRow, MachineRow, MemberRow, Report, SessionRow,
                           field_names)

TABLES: tuple[tuple[str, str, type], ...] = (
    ("machines.csv", "machines", MachineRow),
    ("members.csv", "members", MemberRow),
    ("sessions.csv", "sessions", SessionRow),
    ("jobs.csv", "jobs", JobRow),
    ("days.csv", "days", DayRow),
)
_THRESHOLDS = ("threshold_standby_w", "threshold_idle_w", "threshold_processing_w")


def _columns(kind: type) -> list[str]:
    names = []
    for name in field_names(kind):
        if name == "state_h":
            names += [f"state_{state}_h" for state in STATES]
        elif name == "thresholds_w":
            names += list(_THRESHOLDS)
        else:
            names.append(name)
    return names


def _cell(value: Any) -> str:
    kind = type(value)
    if kind is float:
        return repr(value)  # shortest text that reads back as the same float
    if value is None:
        return ""
    if kind is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


_NUMBERS = frozenset({"float", "float | None", "int", "dict[str, float]", "list[float] | None"})
"""Annotations of the model's computed numbers: the csv module writes them as _cell would."""


def _cells(kind: type) -> Callable[[Any], list[Any]]:
    """A row of `kind` -> its cells in _columns(kind) order, as the csv module is to write them.

    The fields are read by one attrgetter made per table, never looked up per row. The csv
    module writes a float as its repr and None as an empty cell, as _cell does, so the model's
    numbers (reports.build computes them: floats, ints or None) go to it as they are; only
    the other columns (texts, booleans: what a stored row may hold) go through _cell. The
    20-site network's 94 000 rows in 0.35 s, against 1.0 s with dataclasses.fields, a dict
    and a _cell call per value. Hours per state and thresholds are spread into their columns."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    names = field_names(kind)
    get = attrgetter(*names)
    texts = [k for k, name in enumerate(names) if fields[name].type not in _NUMBERS]
    spread = [k for k, name in enumerate(names) if name in ("state_h", "thresholds_w")]

    def cells(row: Any) -> list[Any]:
        values = list(get(row))
        for k in texts:
            values[k] = _cell(values[k])
        for k in reversed(spread):  # from the end: each spread shifts those after it
            value = values[k]
            if names[k] == "state_h":
                states = value or {}
                values[k:k + 1] = [states.get(state) for state in STATES]
            else:
                values[k:k + 1] = [v for _, v in zip(_THRESHOLDS, value or (None, None, None))]
        return values
    return cells


def write_csvs(report: Report, out_dir: str | Path) -> list[Path]:
    """Write the five tables into out_dir (made if needed); return their paths, in TABLES order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, attribute, kind in TABLES:
        columns = _columns(kind)
        cells = _cells(kind)
        path = out_dir / file_name
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["site", *columns])
            for site in report.sites:
                name = site.site
                writer.writerows([name, *cells(row)] for row in getattr(site, attribute))
        paths.append(path)
    return paths
