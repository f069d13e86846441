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
from pathlib import Path
from typing import Any

from reports.model import STATES, DayRow, JobRow, MachineRow, MemberRow, Report, SessionRow

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
    for f in dataclasses.fields(kind):
        if f.name == "state_h":
            names += [f"state_{state}_h" for state in STATES]
        elif f.name == "thresholds_w":
            names += list(_THRESHOLDS)
        else:
            names.append(f.name)
    return names


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    return str(value)


def _flat(row: Any) -> dict[str, Any]:
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    if "state_h" in values:
        states = values.pop("state_h") or {}
        values.update({f"state_{state}_h": states.get(state) for state in STATES})
    if "thresholds_w" in values:
        thresholds = values.pop("thresholds_w")
        values.update(zip(_THRESHOLDS, thresholds or (None, None, None)))
    return values


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
                for row in getattr(site, attribute):
                    values = _flat(row)
                    writer.writerow([site.site, *(_cell(values[c]) for c in columns)])
        paths.append(path)
    return paths
