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
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import orjson

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
"""Annotations of the model's numbers (reports.build computes them), which _table writes
with orjson."""


def _cells(kind: type) -> Callable[[Any], list[str]]:
    """A row of `kind` -> its cells in _columns(kind) order, each through _cell: read by one
    attrgetter made per table, never dataclasses.fields and a dict per row; hours per state
    and thresholds spread into their columns. For the machines table (a few rows per site)
    and for numbers orjson does not take (_table)."""
    names = field_names(kind)
    get = attrgetter(*names)

    def cells(row: Any) -> list[str]:
        out: list[str] = []
        for name, value in zip(names, get(row)):
            if name == "state_h":
                states = value or {}
                out += [_cell(states.get(state)) for state in STATES]
            elif name == "thresholds_w":
                out += [_cell(v) for _, v in zip(_THRESHOLDS, value or (None, None, None))]
            else:
                out.append(_cell(value))
        return out
    return cells


def _table(kind: type, rows: list[Any]) -> list[list[Any]]:
    """The cells of rows of `kind`, in _columns(kind) order, the same texts _cell gives.

    The numbers of all rows are written by orjson in one call and split, instead of a repr
    per float by the csv module (which was most of the CSV's time: the example site's 2 012
    jobs' 20 000 floats in 6 ms by repr, 1 ms by orjson). Both write the shortest text that
    reads back as the same float; they differ only in the form of numbers below 1e-4 or from
    1e16 on (an exponent, or more zeros), which is seen in the text ("e", "0.0000") and written
    again by _cell, and in non-finite ones (null), so null is read as None only when the
    table holds as many None as nulls. A table with spread columns (machines: hours per
    state, thresholds), or whose numbers orjson does not take, goes through _cells."""
    names = field_names(kind)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    numbers = [k for k, name in enumerate(names) if fields[name].type in _NUMBERS]
    texts = [k for k in range(len(names)) if k not in numbers]
    if not rows or len(numbers) < 2 or len(texts) < 2 or any(
            names[k] in ("state_h", "thresholds_w") for k in numbers):
        return list(map(_cells(kind), rows))
    values = list(map(attrgetter(*(names[k] for k in numbers)), rows))
    try:
        body = orjson.dumps(values).decode()
    except orjson.JSONEncodeError:
        return list(map(_cells(kind), rows))
    if '"' in body or "{" in body or body.count("[") != len(values) + 1:
        return list(map(_cells(kind), rows))  # a text or a container where a number goes
    nulls_are_none = body.count("null") == sum(v.count(None) for v in values)
    if nulls_are_none:
        body = body.replace("null", "")
    # (number texts, text cells) -> cells in column order
    order = itemgetter(*(numbers.index(k) if k in numbers else len(numbers) + texts.index(k)
                         for k in range(len(names))))
    get_texts = attrgetter(*(names[k] for k in texts))
    out = []
    for line, numbers_of, row in zip(body[2:-2].split("],["), values, rows):
        items = line.split(",")
        if not nulls_are_none or "e" in line or "0.0000" in line:
            for k, text in enumerate(items):
                if "e" in text or "n" in text or text.startswith(("0.0000", "-0.0000")):
                    items[k] = _cell(numbers_of[k])
        out.append(order(items + [_cell(v) for v in get_texts(row)]))
    return out


def write_csvs(report: Report, out_dir: str | Path) -> list[Path]:
    """Write the five tables into out_dir (made if needed); return their paths, in TABLES order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, attribute, kind in TABLES:
        columns = _columns(kind)
        path = out_dir / file_name
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["site", *columns])
            for site in report.sites:
                name = site.site
                writer.writerows([name, *cells] for cells in _table(kind, getattr(site, attribute)))
        paths.append(path)
    return paths
